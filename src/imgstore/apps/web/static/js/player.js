// Where the page is in the recording, and playback. The first store leads: the timeline is its
// frame index; the other stores show their frame aligned to the lead's (by frame number or time).
// Seeking draws exactly the frame asked for; playback follows the recorded frame times at the
// chosen speed, from frames fetched ahead in batches (the server decodes them sequentially).

import { getJSON } from './api.js';
import { FrameSource, range } from './frames.js';

export const SPEEDS = [0.25, 0.5, 1, 2, 4, 8];
const DISPLAY_FPS = 60; // frames drawn per second at most; faster playback skips frames
const AHEAD_SECONDS = 1.5;
const DECODE_AHEAD = 6;
const MAX_GAP_SECONDS = 1; // a longer pause in the recording is played as one frame interval
const IDLE_MS = 250; // paused this long: the next IDLE_PREFETCH frames are fetched
const IDLE_PREFETCH = 10;

export class Player extends EventTarget {
  constructor(stores, views, config) {
    super();
    this.stores = stores;
    this.views = views;
    this.sources = stores.map((s) => new FrameSource(s));
    this.align = config.align;
    this.alignMaps = stores.map(() => new Map()); // lead index -> frame index in store j (-1: none)
    this.followers = stores.map(() => Promise.resolve()); // each store's batches, one after the other
    this.epoch = 0;
    this.pos = 0;
    this.shown = -1;
    this.playing = false;
    this.speed = 1;
    this.fps = stores[0].fps || 30;
    this.due = 0;
    this.stats = { seeks: [], draws: [], played: 0 };
  }

  get count() { return this.stores[0].frame_count; }

  get stride() { return Math.max(1, Math.floor((this.fps * this.speed) / DISPLAY_FPS)); }

  clamp(i) { return Math.min(Math.max(Math.round(i), 0), Math.max(this.count - 1, 0)); }

  emit(name) { this.dispatchEvent(new Event(name)); }

  // ------------------------------------------------------------------ seeking
  seek(i) {
    i = this.clamp(i);
    this.pos = i;
    this.seekAt = { index: i, t: performance.now() };
    if (!this.sources[0].has(i)) { // batches asked for before the seek are of no use now
      this.epoch++;
      this.sources.forEach((s) => s.abortBatches());
    }
    this.due = performance.now();
    this.emit('position');
    return this.renderLoop();
  }

  step(n) {
    this.pause();
    this.seek(this.pos + n);
  }

  // Frame index in the lead store of {index}, {number} or {time} in store sid (-1: none).
  async locate(query, sid = 0) {
    const r = await getJSON('api/align', { store: sid, by: this.align, count: 1, ...query });
    return r.stores[0][0];
  }

  // Draws until the frame shown is the one at pos; resolves then.
  renderLoop() {
    if (!this.rendering) {
      this.rendering = (async () => {
        try {
          while (this.shown !== this.pos) await this.render(this.pos);
        } finally {
          this.rendering = null;
        }
        this.prefetchWhenIdle();
      })();
    }
    return this.rendering;
  }

  async render(i) {
    try {
      const [lead, others] = await Promise.all([this.sources[0].get(i), this.alignedFrames(i)]);
      this.draw(i, lead, others);
    } catch (e) {
      this.shown = i;
      this.views[0].showMissing(`frame index ${i}: ${e.message}`);
      this.emit('shown');
    }
  }

  // Paused and left alone for a moment: fetch the next frames, so that stepping on is instant.
  prefetchWhenIdle() {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      const i = this.pos + 1;
      if (this.playing || this.rendering || i >= this.count || this.sources[0].has(i)) return;
      this.fetchBatch(i, Math.min(IDLE_PREFETCH, this.count - i), 1);
    }, IDLE_MS);
  }

  async alignedFrames(i) {
    if (this.stores.length < 2) return [];
    if (!this.alignMaps[1].has(i)) await this.alignRange(i, 1, 1);
    return Promise.all(this.sources.slice(1).map((src, k) => {
      const j = this.alignMaps[k + 1].get(i);
      return j === undefined || j < 0 ? null : src.get(j);
    }));
  }

  async alignRange(index, count, step) {
    if (this.stores.length < 2) return;
    const r = await getJSON('api/align', { store: 0, index, count, step, by: this.align });
    r.stores[0].forEach((li, k) => {
      for (let j = 1; j < r.stores.length; j++) {
        if (this.alignMaps[j].size > 200000) this.alignMaps[j].clear();
        this.alignMaps[j].set(li, r.stores[j][k]);
      }
    });
  }

  setAlign(mode) {
    this.align = mode;
    this.alignMaps.forEach((m) => m.clear());
    this.shown = -1;
    this.seek(this.pos);
  }

  // Frames encoded differently from now on (levels, format): the shown frames are fetched again.
  refresh() {
    this.shown = -1;
    this.seek(this.pos);
  }

  draw(i, lead, others) {
    this.shown = i;
    this.current = lead;
    this.views[0].show(lead, statusText(lead, this.stores[0]));
    others.forEach((f, k) => {
      const v = this.views[k + 1];
      if (f) v.show(f, statusText(f, this.stores[k + 1]));
      else v.showMissing(`no frame aligned to #${lead.meta.number} (by ${this.align.replace('_', ' ')})`);
    });
    const now = performance.now();
    if (this.seekAt && this.seekAt.index === i) {
      this.stats.seeks.push(now - this.seekAt.t);
      this.seekAt = null;
    }
    this.stats.draws.push(now);
    if (this.stats.draws.length > 2000) this.stats.draws.splice(0, 1000);
    this.emit('shown');
  }

  // ------------------------------------------------------------------ playback
  play() {
    if (this.playing || !this.count) return;
    if (this.pos >= this.count - 1) this.seek(0);
    this.playing = true;
    this.due = performance.now();
    this.emit('state');
    requestAnimationFrame((t) => this.tick(t));
  }

  pause() {
    if (!this.playing) return;
    this.playing = false;
    this.emit('state');
    this.emit('position');
  }

  toggle() { if (this.playing) this.pause(); else this.play(); }

  setSpeed(s) {
    this.speed = s;
    this.due = performance.now();
    this.emit('state');
  }

  faster(dir) {
    const k = SPEEDS.indexOf(this.speed);
    const next = SPEEDS[Math.min(Math.max((k < 0 ? 2 : k) + dir, 0), SPEEDS.length - 1)];
    this.setSpeed(next);
  }

  tick(now) {
    if (!this.playing) return;
    if (this.shown === this.pos && !this.rendering) this.advance(now);
    if (this.playing) {
      this.fill();
      requestAnimationFrame((t) => this.tick(t));
    }
  }

  // Move on to the latest frame that is due, if it is ready.
  advance(now) {
    if (this.pos >= this.count - 1) { this.pause(); return; }
    let next = null;
    let prev = this.current;
    for (;;) {
      const i = Math.min(this.pos + this.stride, this.count - 1);
      if (i === this.pos) break;
      const cand = this.readyAt(i);
      if (!cand) { this.due = Math.max(this.due, now - 1000 / DISPLAY_FPS); break; }
      const at = this.due + (interval(prev, cand.lead, this.fps) * 1000) / this.speed;
      if (now < at) break;
      this.due = now - at > 250 ? now : at;
      this.pos = i;
      prev = cand.lead;
      next = cand;
    }
    if (next) {
      this.draw(this.pos, next.lead, next.others);
      this.stats.played++;
      this.emit('position');
    }
  }

  // Lead frame i and the aligned frames of the other stores, if all are decoded.
  readyAt(i) {
    const lead = this.sources[0].ready(i);
    if (!lead) { this.sources[0].decodeSoon(i); return null; }
    const others = [];
    for (let j = 1; j < this.stores.length; j++) {
      const a = this.alignMaps[j].get(i);
      if (a === undefined) return null;
      if (a < 0) { others.push(null); continue; }
      const f = this.sources[j].ready(a);
      if (!f) { this.sources[j].decodeSoon(a); return null; }
      others.push(f);
    }
    return { lead, others };
  }

  // Keep about AHEAD_SECONDS of frames fetched ahead, and the next few decoded.
  fill() {
    const st = this.stride;
    const ahead = Math.min(150, Math.max(16, Math.ceil(((this.fps * this.speed) / st) * AHEAD_SECONDS)));
    for (let k = 1; k <= DECODE_AHEAD; k++) {
      const i = this.pos + k * st;
      if (i >= this.count) break;
      this.sources[0].decodeSoon(i);
      for (let j = 1; j < this.stores.length; j++) {
        const a = this.alignMaps[j].get(i);
        if (a >= 0) this.sources[j].decodeSoon(a);
      }
    }
    // one batch at a time: the server reads it on from where the last one ended (sequential decoding)
    if (this.sources[0].batchesInFlight) return;
    let i = this.pos + st;
    let k = 0;
    while (k < ahead && i < this.count && this.sources[0].has(i)) { i += st; k++; }
    if (k >= ahead * 0.6 || i >= this.count) return;
    this.fetchBatch(i, k < 8 ? 8 : Math.min(Math.max(ahead - k, 16), 64), st);
  }

  async fetchBatch(index, count, step) {
    const lead = this.sources[0].prefetch({ index, count, step });
    if (this.stores.length > 1) {
      try {
        await this.alignRange(index, count, step);
      } catch (e) {
        console.warn('alignment failed:', e.message);
      }
      const leadIdx = range(index, count, step, this.count);
      for (let j = 1; j < this.stores.length; j++) {
        const want = [...new Set(leadIdx.map((li) => this.alignMaps[j].get(li)))]
          .filter((a) => a >= 0 && !this.sources[j].has(a)).sort((a, b) => a - b);
        for (let s = 0; s < want.length; s += 200) {
          const part = want.slice(s, s + 200);
          const epoch = this.epoch;
          this.followers[j] = this.followers[j]
            .then(() => (epoch === this.epoch ? this.sources[j].prefetch({ indices: part }) : null));
        }
      }
    }
    await lead;
  }
}

// Recorded seconds from frame a to frame b (their frame intervals where the times say nothing useful).
function interval(a, b, fps) {
  const steps = a ? b.meta.index - a.meta.index : 1;
  const dt = a ? b.meta.time - a.meta.time : NaN;
  if (Number.isFinite(dt) && dt > 0 && dt <= MAX_GAP_SECONDS * Math.max(steps, 1)) return dt;
  return Math.max(steps, 1) / fps;
}

export function statusText(f, store) {
  const m = f.meta;
  return `#${m.number}   index ${m.index} / ${store.frame_count - 1}   ${m.datetime.replace('T', ' ')}`;
}
