// One store's picture: its frame on a canvas at full resolution, zoomed with the wheel and panned by
// dragging ('fit' and '1:1' buttons), gray levels for gray stores, and a status line.

import { el } from './dom.js';

export class View {
  constructor(parent, store, onLevels) {
    this.store = store;
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.fitMode = true;
    this.onLevels = onLevels;
    this.lastFrame = null;
    this.root = el('section', { class: 'view', 'data-store': store.id, 'data-index': '-1' }, parent);
    const head = el('div', { class: 'view-head' }, this.root);
    el('span', { class: 'view-name', title: store.location, text: store.name }, head);
    el('span', { class: 'view-shape', text: `${store.image_shape.join('×')} ${store.dtype} ${store.format}` }, head);
    el('button', { type: 'button', text: 'fit', title: 'fit the frame into the view' }, head)
      .addEventListener('click', () => this.fit());
    el('button', { type: 'button', text: '1:1', class: 'one-to-one', title: 'one screen pixel per frame pixel' }, head)
      .addEventListener('click', () => this.oneToOne());
    if (!store.color) this.levelControls(head);
    this.viewport = el('div', { class: 'viewport' }, this.root);
    this.canvas = el('canvas', { class: 'frame', width: store.image_shape[1], height: store.image_shape[0] },
      this.viewport);
    this.ctx = this.canvas.getContext('2d');
    this.note = el('div', { class: 'view-note' }, this.viewport);
    this.status = el('div', { class: 'view-status', text: '…' }, this.root);
    this.panZoom();
    new ResizeObserver(() => { if (this.fitMode) this.fit(); }).observe(this.viewport);
  }

  levelControls(head) {
    const [lo, hi] = this.store.value_range || [0, 1];
    const box = el('span', { class: 'levels', title: 'gray levels shown black and white' }, head);
    el('span', { text: 'levels' }, box);
    this.lo = el('input', { type: 'number', class: 'level-lo', value: lo, step: 'any' }, box);
    this.hi = el('input', { type: 'number', class: 'level-hi', value: hi, step: 'any' }, box);
    const apply = () => this.setLevels([Number(this.lo.value), Number(this.hi.value)]);
    this.lo.addEventListener('change', apply);
    this.hi.addEventListener('change', apply);
    el('button', { type: 'button', text: 'auto', title: "this frame's darkest and brightest value" }, box)
      .addEventListener('click', () => {
        const f = this.lastFrame;
        if (f && f.meta.max > f.meta.min) this.setLevels([f.meta.min, f.meta.max]);
      });
    el('button', { type: 'button', text: 'full', title: 'the whole range of the dtype' }, box)
      .addEventListener('click', () => this.setLevels([lo, hi]));
    this.png = el('input', { type: 'checkbox', class: 'lossless', title: 'lossless (PNG) instead of JPEG' }, box);
    el('span', { text: 'PNG' }, box);
    this.png.addEventListener('change', () => this.onLevels(this.currentLevels()));
  }

  // [lo, hi] to ask the server for (null: the server's default for this dtype).
  currentLevels() {
    if (!this.lo) return null;
    const lv = [Number(this.lo.value), Number(this.hi.value)];
    const full = this.store.value_range;
    if (full && this.store.dtype === 'uint8' && lv[0] === full[0] && lv[1] === full[1]) return null;
    return lv;
  }

  get format() { return this.png && this.png.checked ? 'png' : 'jpeg'; }

  setLevels([lo, hi]) {
    if (!(hi > lo)) return;
    this.lo.value = lo;
    this.hi.value = hi;
    this.onLevels(this.currentLevels());
  }

  // The levels the server chose for the first frame become the view's (they stay put while playing).
  adoptLevels(f) {
    if (this.lo && !this.levelsAdopted && this.store.dtype !== 'uint8' && f.meta.max > f.meta.min) {
      this.levelsAdopted = true;
      this.lo.value = f.meta.min;
      this.hi.value = f.meta.max;
      return true;
    }
    this.levelsAdopted = true;
    return false;
  }

  show(f, statusText) {
    this.lastFrame = f;
    this.ctx.drawImage(f.bitmap, 0, 0);
    this.note.textContent = '';
    this.root.dataset.index = f.meta.index;
    this.root.dataset.number = f.meta.number;
    this.status.textContent = statusText;
  }

  showMissing(text) {
    this.lastFrame = null;
    this.ctx.fillStyle = '#222';
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.note.textContent = text;
    this.root.dataset.index = '-1';
    this.root.dataset.number = '';
    this.status.textContent = text;
  }

  // ------------------------------------------------------------------ zoom and pan
  apply() {
    this.canvas.style.transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.scale})`;
    this.canvas.classList.toggle('pixelated', this.scale >= 2);
    this.root.dataset.scale = String(this.scale);
  }

  fit() {
    const vw = this.viewport.clientWidth;
    const vh = this.viewport.clientHeight;
    const [h, w] = this.store.image_shape;
    if (!vw || !vh) return;
    this.fitMode = true;
    this.scale = Math.min(1, vw / w, vh / h);
    this.tx = Math.round((vw - w * this.scale) / 2);
    this.ty = Math.round((vh - h * this.scale) / 2);
    this.apply();
  }

  oneToOne() {
    this.fitMode = false;
    this.scale = 1;
    const [h, w] = this.store.image_shape;
    this.tx = Math.max(0, Math.round((this.viewport.clientWidth - w) / 2));
    this.ty = Math.max(0, Math.round((this.viewport.clientHeight - h) / 2));
    this.apply();
  }

  zoomAt(factor, x, y) {
    const s = Math.min(32, Math.max(0.05, this.scale * factor));
    this.tx = x - ((x - this.tx) * s) / this.scale;
    this.ty = y - ((y - this.ty) * s) / this.scale;
    this.scale = s;
    this.fitMode = false;
    this.apply();
  }

  panZoom() {
    this.viewport.addEventListener('wheel', (e) => {
      e.preventDefault();
      const r = this.viewport.getBoundingClientRect();
      this.zoomAt(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    let drag = null;
    this.viewport.addEventListener('pointerdown', (e) => {
      drag = { x: e.clientX, y: e.clientY, tx: this.tx, ty: this.ty };
      this.viewport.setPointerCapture(e.pointerId);
    });
    this.viewport.addEventListener('pointermove', (e) => {
      if (!drag) return;
      this.tx = drag.tx + e.clientX - drag.x;
      this.ty = drag.ty + e.clientY - drag.y;
      this.fitMode = false;
      this.apply();
    });
    const end = () => { drag = null; };
    this.viewport.addEventListener('pointerup', end);
    this.viewport.addEventListener('pointercancel', end);
    this.viewport.addEventListener('dblclick', () => (this.fitMode ? this.oneToOne() : this.fit()));
  }
}
