// The page: wires the views, the timeline, the controls, the keys (those of imgstore-view),
// the URL fragment (#index=..., #number=..., #time=...), the panels and the plots together.

import { ApiError, getJSON } from './api.js';
import { el } from './dom.js';
import { gapsPanel, metadataPanel } from './panels.js';
import { Player, SPEEDS } from './player.js';
import { Plots } from './plots.js';
import { Timeline } from './timeline.js';
import { View } from './view.js';

const $ = (id) => document.getElementById(id);

function say(text) {
  const m = $('message');
  m.textContent = text;
  m.dataset.shownAt = String(performance.now());
}

function parseFragment() {
  const h = new URLSearchParams(location.hash.slice(1));
  for (const k of ['index', 'number', 'time']) if (h.has(k)) return { [k]: h.get(k) };
  return null;
}

class Page {
  constructor(config, stores) {
    this.stores = stores;
    this.views = stores.map((s) => new View($('views'), s, () => this.encodingChanged(s.id)));
    this.player = new Player(stores, this.views, config);
    this.timeline = new Timeline($('timeline-holder'), stores[0].frame_count, (i) => this.player.seek(i));
    this.plots = new Plots($('plots-holder'), (sid, t) => this.goTo({ time: t }, sid));
    this.lastFragment = 0;
    this.controls(config);
    this.player.addEventListener('position', () => this.positionChanged());
    this.player.addEventListener('shown', () => this.frameShown());
    this.player.addEventListener('state', () => this.stateChanged());
    window.addEventListener('keydown', (e) => this.key(e), true);
    window.addEventListener('hashchange', () => { const q = parseFragment(); if (q) this.goTo(q); });
    window.addEventListener('resize', () => this.plots.resize());
    this.stateChanged();
  }

  async start() {
    await this.goTo(parseFragment() || { index: 0 });
    for (const s of this.stores) metadataPanel($('panels'), s);
    await Promise.all(this.stores.map((s) => this.loadGaps(s)));
    for (const s of this.stores) {
      if (s.has_extra_data) await this.plots.add(s).catch((e) => say(`extra data of store ${s.id}: ${e.message}`));
    }
    this.frameShown();
    document.body.dataset.ready = '1';
  }

  async loadGaps(s) {
    try {
      const resp = await fetch(new URL(`api/stores/${s.id}/gaps${location.search}`, location.href));
      const gaps = await resp.json();
      const total = Number(resp.headers.get('X-Gaps-Total') || gaps.length);
      gapsPanel($('panels'), s, gaps, total, (sid, i) => this.goTo({ index: i }, sid));
      if (s.id === 0) this.timeline.setGaps(gaps);
    } catch (e) {
      say(`gaps of store ${s.id}: ${e.message}`);
    }
  }

  // Go to {index}, {number} or {time} of store sid (the lead store follows).
  async goTo(query, sid = 0) {
    const p = this.player;
    try {
      if (sid === 0 && 'index' in query) {
        const i = Number(query.index);
        if (!Number.isInteger(i) || i < 0 || i >= p.count) say(`no frame index ${query.index}: showing the nearest`);
        await p.seek(Number.isFinite(i) ? i : 0);
        return;
      }
      let i;
      try {
        i = await p.locate(query, sid);
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 404 && 'number' in query)) throw e;
        i = await p.locate({ ...query, exact: 0 }, sid);
        say(`no frame #${query.number}: showing the nearest frame number`);
      }
      if (i < 0) say(`store ${sid} has no frame aligned to the first store there`);
      else await p.seek(i);
    } catch (e) {
      say(e.message);
    }
  }

  encodingChanged(sid) {
    const v = this.views[sid];
    this.player.sources[sid].setEncoding(v.format, v.currentLevels());
    this.player.refresh();
  }

  frameShown() {
    this.views.forEach((v, j) => {
      if (v.lastFrame && v.adoptLevels(v.lastFrame)) this.player.sources[j].setEncoding(v.format, v.currentLevels());
    });
    this.plots.setTimes(new Map(this.views.map((v) => [v.store.id, v.lastFrame ? v.lastFrame.meta.time : NaN])));
    this.stateChanged();
  }

  positionChanged() {
    const p = this.player;
    this.timeline.setPosition(p.pos);
    const now = performance.now();
    if (!p.playing || now - this.lastFragment > 500) {
      this.lastFragment = now;
      history.replaceState(null, '', `#index=${p.pos}`);
    }
  }

  shownFps() {
    const d = this.player.stats.draws;
    const now = performance.now();
    let n = 0;
    for (let k = d.length - 1; k >= 0 && now - d[k] <= 1000; k--) n++;
    return n;
  }

  stateChanged() {
    const p = this.player;
    $('play').textContent = p.playing ? '❚❚' : '▶';
    $('play').dataset.playing = p.playing ? '1' : '0';
    $('speed').value = String(p.speed);
    const f = p.current;
    const where = f ? `#${f.meta.number} · index ${f.meta.index} / ${p.count - 1} · ${f.meta.datetime.replace('T', ' ')}` : '';
    const state = p.playing ? `playing ×${p.speed} · ${this.shownFps()} fps shown` : 'paused';
    $('status').textContent = `${where}   [${state}]`;
  }

  controls(config) {
    const p = this.player;
    const click = (id, fn) => $(id).addEventListener('click', (e) => { fn(); e.currentTarget.blur(); });
    click('first', () => { p.pause(); p.seek(0); });
    click('back10', () => p.step(-10));
    click('back1', () => p.step(-1));
    click('play', () => p.toggle());
    click('fwd1', () => p.step(1));
    click('fwd10', () => p.step(10));
    click('last', () => { p.pause(); p.seek(p.count - 1); });
    for (const s of SPEEDS) el('option', { value: String(s), text: `×${s}` }, $('speed'));
    $('speed').addEventListener('change', (e) => { p.setSpeed(Number(e.target.value)); e.target.blur(); });
    if (this.stores.length > 1) {
      $('align-box').hidden = false;
      for (const m of config.align_modes) el('option', { value: m, text: m.replace('_', ' ') }, $('align'));
      $('align').value = config.align;
      $('align').addEventListener('change', (e) => { p.setAlign(e.target.value); e.target.blur(); });
    }
    for (const k of ['number', 'index', 'time']) {
      $(`jump-${k}`).addEventListener('submit', (e) => {
        e.preventDefault();
        const v = e.target.elements[0].value.trim();
        if (v) this.goTo({ [k]: v });
      });
    }
  }

  key(e) {
    const t = e.target;
    if (t.matches && t.matches('input:not([type=range]), select, textarea') && e.key !== 'Escape') return;
    const p = this.player;
    const keys = {
      ' ': () => p.toggle(),
      ArrowRight: () => p.step(e.shiftKey ? 10 : 1),
      ArrowLeft: () => p.step(e.shiftKey ? -10 : -1),
      PageDown: () => p.step(10),
      PageUp: () => p.step(-10),
      Home: () => { p.pause(); p.seek(0); },
      End: () => { p.pause(); p.seek(p.count - 1); },
      '+': () => p.faster(1),
      '=': () => p.faster(1),
      '-': () => p.faster(-1),
      Escape: () => { p.pause(); if (t.blur) t.blur(); },
      q: () => p.pause(),
    };
    const fn = keys[e.key];
    if (!fn || e.ctrlKey || e.metaKey || e.altKey) return;
    e.preventDefault();
    fn();
  }
}

async function boot() {
  try {
    const [config, stores] = await Promise.all([getJSON('api/config'), getJSON('api/stores')]);
    document.title = `imgstore: ${stores.map((s) => s.name).join(', ')}`;
    const page = new Page(config, stores);
    window.imgstoreViewer = {
      page, player: page.player, stores,
      goTo: (q, sid) => page.goTo(q, sid),
      stats: () => ({ ...page.player.stats, fps: page.shownFps() }),
    };
    await page.start();
  } catch (e) {
    say(`cannot show the stores: ${e.message}`);
    document.body.dataset.ready = 'error';
  }
}

boot();
