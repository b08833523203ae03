// Frames of one store in the page: encoded frames kept by index (a byte budget, least recently
// used dropped first), a few of them decoded for drawing, and batches fetched ahead for playback.

import { fetchFrame, streamFrames } from './api.js';

const BLOB_BUDGET = 256 * 1024 * 1024; // encoded frames kept
const BITMAPS = 32; // decoded frames kept

export class FrameSource {
  constructor(store) {
    this.store = store;
    this.sid = store.id;
    this.format = 'jpeg';
    this.levels = null; // [lo, hi] or null: the server's default
    this.frames = new Map(); // index -> {meta, blob, bitmap, decoding}
    this.bytes = 0;
    this.decoded = new Set(); // frames holding a bitmap, least recently used first
    this.waiting = new Map(); // index -> [resolve, ...] for frames of a batch still on the way
    this.batches = new Set(); // AbortControllers of batches on the way
    this.generation = 0;
  }

  query() {
    const q = { format: this.format };
    if (this.levels) q.levels = `${this.levels[0]},${this.levels[1]}`;
    return q;
  }

  // New encoding settings: every frame kept so far is dropped.
  setEncoding(format, levels) {
    const same = format === this.format && JSON.stringify(levels) === JSON.stringify(this.levels);
    this.format = format;
    this.levels = levels;
    if (!same) this.clear();
  }

  clear() {
    this.abortBatches();
    for (const f of this.frames.values()) if (f.bitmap) f.bitmap.close();
    this.frames.clear();
    this.decoded.clear();
    this.bytes = 0;
    this.generation++;
  }

  has(i) { return this.frames.has(i) || this.waiting.has(i); }

  // The frame if it is kept and decoded (for drawing now), else null.
  ready(i) {
    const f = this.frames.get(i);
    if (!f || !f.bitmap) return null;
    this.decoded.delete(f);
    this.decoded.add(f);
    return f;
  }

  // Start decoding frame i if it is kept; true when it is decoded already.
  decodeSoon(i) {
    const f = this.frames.get(i);
    if (!f) return false;
    if (!f.bitmap && !f.decoding) this.decode(f);
    return !!f.bitmap;
  }

  // Frame i, decoded: kept, on its way in a batch, or fetched now.
  async get(i) {
    let f = this.frames.get(i);
    if (!f && this.waiting.has(i)) f = await new Promise((res) => this.waiting.get(i).push(res));
    if (!f) {
      const gen = this.generation;
      const got = await fetchFrame(this.sid, { index: i, ...this.query() });
      f = gen === this.generation ? this.put(got) : { ...got, bitmap: null, decoding: null };
    }
    if (!f.bitmap) await this.decode(f);
    this.touch(f);
    return f;
  }

  put({ meta, blob }) {
    let f = this.frames.get(meta.index);
    if (!f) {
      f = { meta, blob, bitmap: null, decoding: null };
      this.frames.set(meta.index, f);
      this.bytes += blob.size;
      this.evict();
    }
    const w = this.waiting.get(meta.index);
    if (w) { this.waiting.delete(meta.index); w.forEach((res) => res(f)); }
    return f;
  }

  touch(f) {
    if (this.frames.get(f.meta.index) !== f) return;
    this.frames.delete(f.meta.index);
    this.frames.set(f.meta.index, f);
    if (f.bitmap) { this.decoded.delete(f); this.decoded.add(f); }
  }

  decode(f) {
    if (!f.decoding) {
      f.decoding = createImageBitmap(f.blob).then((bmp) => {
        f.bitmap = bmp;
        if (this.frames.get(f.meta.index) === f) {
          this.decoded.add(f);
          this.limitBitmaps();
        }
        return f;
      });
    }
    return f.decoding;
  }

  // Close the bitmaps used longest ago beyond BITMAPS (the frames stay, encoded).
  limitBitmaps() {
    for (const f of this.decoded) {
      if (this.decoded.size <= BITMAPS) break;
      this.decoded.delete(f);
      if (f.bitmap) f.bitmap.close();
      f.bitmap = null;
      f.decoding = null;
    }
  }

  evict() {
    for (const [i, f] of this.frames) {
      if (this.bytes <= BLOB_BUDGET) break;
      if (f.bitmap) f.bitmap.close();
      this.decoded.delete(f);
      this.frames.delete(i);
      this.bytes -= f.blob.size;
    }
  }

  // Fetch frames ahead in one batch: {index, count, step} or {indices: [...]}. Resolves when done.
  async prefetch(query) {
    const ctl = new AbortController();
    const wanted = query.indices || range(query.index, query.count, query.step || 1, this.store.frame_count);
    const mine = wanted.filter((i) => !this.has(i));
    if (!mine.length) return;
    mine.forEach((i) => this.waiting.set(i, []));
    const q = query.indices ? { indices: mine.join(',') } : query;
    this.batches.add(ctl);
    try {
      const gen = this.generation;
      for await (const part of streamFrames(this.sid, { ...q, ...this.query() }, ctl.signal)) {
        if (gen !== this.generation) break;
        this.put(part);
      }
    } catch (e) {
      if (e.name !== 'AbortError') console.warn(`store ${this.sid}: batch failed:`, e.message);
    } finally {
      this.batches.delete(ctl);
      for (const i of mine) { // not delivered: whoever waits fetches it alone
        const w = this.waiting.get(i);
        if (w) { this.waiting.delete(i); w.forEach((res) => res(null)); }
      }
    }
  }

  abortBatches() {
    for (const ctl of this.batches) ctl.abort();
    this.batches.clear();
  }

  get batchesInFlight() { return this.batches.size; }
}

export function range(start, count, step, n) {
  const out = [];
  for (let k = 0, i = start; k < count && i < n; k++, i += step) out.push(i);
  return out;
}
