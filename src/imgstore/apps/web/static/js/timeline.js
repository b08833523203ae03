// The timeline: a slider over the lead store's frame index, with its gaps marked under it
// (red: frame-number jumps, orange: time gaps).

import { el } from './dom.js';

export class Timeline {
  constructor(parent, count, onSeek) {
    this.count = count;
    this.root = el('div', { class: 'timeline' }, parent);
    this.slider = el('input', {
      type: 'range', class: 'slider', min: 0, max: Math.max(count - 1, 0), step: 1, value: 0,
      'aria-label': 'frame index',
    }, this.root);
    this.marks = el('canvas', { class: 'gap-marks', height: 10 }, this.root);
    this.gaps = [];
    this.slider.addEventListener('input', () => onSeek(Number(this.slider.value)));
    new ResizeObserver(() => this.drawMarks()).observe(this.root);
  }

  setPosition(i) {
    if (Number(this.slider.value) !== i) this.slider.value = i;
  }

  setGaps(gaps) {
    this.gaps = gaps;
    this.drawMarks();
  }

  drawMarks() {
    const c = this.marks;
    const w = this.slider.clientWidth || this.root.clientWidth;
    if (!w) return;
    c.width = w;
    const ctx = c.getContext('2d');
    ctx.clearRect(0, 0, c.width, c.height);
    const thumb = 16; // the slider's thumb: its track runs from half a thumb to the other end
    const span = Math.max(this.count - 1, 1);
    for (const g of this.gaps) {
      const x = Math.round(thumb / 2 + ((w - thumb) * g.index) / span);
      ctx.fillStyle = g.kind.includes('number') ? '#e0413a' : '#f0a020';
      ctx.fillRect(x - 1, 0, 2, c.height);
    }
  }
}
