// Extra data as time series (uPlot, vendored): one small chart per column, a cursor line at the
// frame shown, click to go to the frame nearest that time, drag to zoom (the server sends the
// zoomed window at full detail, at most max_points per column, min/max kept), double-click to
// see everything again.

import { getJSON } from './api.js';
import { el } from './dom.js';

const POINTS = 2000;

function tzDateFor(tz) {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return (ts) => uPlot.tzDate(new Date(ts * 1e3), tz);
  } catch (e) {
    return (ts) => new Date(ts * 1e3);
  }
}

export class Plots {
  constructor(parent, onSeekTime) {
    this.root = el('div', { class: 'plots' }, parent);
    this.onSeekTime = onSeekTime;
    this.charts = []; // {u, sid, name, line}
    this.cursorTime = new Map(); // store id -> time of its frame shown
    this.busy = 0;
  }

  async add(store) {
    const data = await getJSON(`api/stores/${store.id}/extra`, { max_points: POINTS });
    if (!data.columns.length) return;
    const box = el('div', { class: 'plot-group', 'data-store': store.id }, this.root);
    el('div', { class: 'plot-title', text: `Extra data of store ${store.id}: ${store.name}` }, box);
    for (const col of data.columns) this.chart(box, store, col);
  }

  chart(box, store, col) {
    const holder = el('div', { class: 'plot', 'data-column': col.name, 'data-store': store.id }, box);
    const width = Math.max(300, this.root.clientWidth - 20);
    const entry = { sid: store.id, name: col.name, holder };
    const opts = {
      width, height: 130,
      tzDate: tzDateFor(store.timezone),
      cursor: { sync: { key: 'imgstore' }, drag: { x: true, y: false, setScale: false },
        bind: { dblclick: () => () => { this.zoom(null, null); return null; } } },
      scales: { x: { time: true } },
      legend: { live: true },
      series: [{}, { label: `${col.name} (${col.samples} samples)`, stroke: '#3a7bd5', width: 1,
        points: { show: false } }],
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 3) return;
          const a = u.posToVal(u.select.left, 'x');
          const b = u.posToVal(u.select.left + u.select.width, 'x');
          u.setSelect({ width: 0, height: 0 }, false);
          this.zoom(a, b);
        }],
        setScale: [(u, key) => { if (key === 'x') this.placeLine(entry); }],
      },
    };
    entry.u = new uPlot(opts, [col.time, col.value], holder);
    entry.line = el('div', { class: 'plot-cursor' }, entry.u.over);
    this.clickToSeek(entry);
    this.charts.push(entry);
    this.placeLine(entry);
  }

  clickToSeek(entry) {
    let down = null;
    entry.u.over.addEventListener('mousedown', (e) => { down = e.clientX; });
    entry.u.over.addEventListener('mouseup', (e) => {
      if (down !== null && Math.abs(e.clientX - down) < 3) {
        const r = entry.u.over.getBoundingClientRect();
        this.onSeekTime(entry.sid, entry.u.posToVal(e.clientX - r.left, 'x'));
      }
      down = null;
    });
  }

  // Every chart shows [a, b] (null: everything), with the samples of that window.
  async zoom(a, b) {
    this.busy++;
    try {
      const bySid = new Map();
      for (const c of this.charts) {
        if (!bySid.has(c.sid)) {
          const q = { max_points: POINTS };
          if (a !== null) { q.start = a; q.stop = b; }
          bySid.set(c.sid, getJSON(`api/stores/${c.sid}/extra`, q));
        }
      }
      for (const c of this.charts) {
        const data = await bySid.get(c.sid);
        const col = data.columns.find((x) => x.name === c.name);
        if (!col) continue;
        c.u.setData([col.time, col.value], a === null);
        if (a !== null) c.u.setScale('x', { min: a, max: b });
        c.holder.dataset.points = col.time.length;
      }
    } finally {
      this.busy--;
    }
  }

  // The cursor lines at the frames shown: time per store id.
  setTimes(times) {
    this.cursorTime = times;
    for (const c of this.charts) this.placeLine(c);
  }

  placeLine(c) {
    const t = this.cursorTime.get(c.sid);
    if (!c.line || t === undefined || !Number.isFinite(t)) { if (c.line) c.line.style.display = 'none'; return; }
    const x = c.u.valToPos(t, 'x');
    const inside = x >= 0 && x <= c.u.over.clientWidth;
    c.line.style.display = inside ? 'block' : 'none';
    c.line.style.left = `${x}px`;
  }

  resize() {
    const width = Math.max(300, this.root.clientWidth - 20);
    for (const c of this.charts) c.u.setSize({ width, height: 130 });
  }
}
