// The side panels: each store's metadata, and its gaps (click one to go there).

import { el, humanSeconds } from './dom.js';

const GAPS_SHOWN = 1000;

export function metadataPanel(parent, store) {
  const box = el('details', { class: 'panel metadata', 'data-store': store.id, open: '' }, parent);
  el('summary', { text: `Store ${store.id}: ${store.name}` }, box);
  const rows = [
    ['location', store.location],
    ['format', store.format],
    ['frame shape', `${store.image_shape.join(' × ')} ${store.dtype}`],
    ['frames', `${store.frame_count} (numbers ${store.frame_min} … ${store.frame_max})`],
    ['chunks', `${store.chunks} (chunk size ${store.chunksize})`],
    ['fps', store.fps ? store.fps.toFixed(3) : '?'],
    ['duration', humanSeconds(store.duration)],
    ['start', store.datetime_min.replace('T', ' ')],
    ['end', store.datetime_max.replace('T', ' ')],
    ['time zone', store.timezone],
    ['created (UTC)', store.created_utc.replace('T', ' ')],
  ];
  const um = store.user_metadata || {};
  for (const [k, v] of Object.entries(um)) rows.push([k, typeof v === 'object' ? JSON.stringify(v) : String(v)]);
  const table = el('table', {}, box);
  rows.forEach(([k, v], n) => {
    const tr = el('tr', { class: n >= rows.length - Object.keys(um).length ? 'user' : '' }, table);
    el('th', { text: k }, tr);
    el('td', { text: v }, tr);
  });
  if (!Object.keys(um).length) el('p', { class: 'muted', text: 'no user metadata' }, box);
  return box;
}

// The gaps of a store, listed; onPick(store id, frame index) when one is clicked.
export function gapsPanel(parent, store, gaps, total, onPick) {
  const box = el('details', { class: 'panel gaps', 'data-store': store.id, 'data-gaps': total }, parent);
  const jumps = gaps.filter((g) => g.kind.includes('number')).length;
  const late = gaps.filter((g) => g.kind.includes('time')).length;
  el('summary', { text: `Gaps in store ${store.id}: ${total} (frame-number jumps: ${jumps}, time gaps: ${late})` }, box);
  if (!total) { el('p', { class: 'muted', text: 'no dropped frames' }, box); return box; }
  box.open = true;
  const table = el('table', { class: 'gap-list' }, box);
  const head = el('tr', {}, table);
  ['index', 'frame numbers', 'missing', 'gap', 'kind'].forEach((h) => el('th', { text: h }, head));
  for (const g of gaps.slice(0, GAPS_SHOWN)) {
    const tr = el('tr', { class: 'gap', 'data-index': g.index }, table);
    el('td', { text: g.index }, tr);
    el('td', { text: `${g.frame_number_before} → ${g.frame_number}` }, tr);
    el('td', { text: g.missing_numbers }, tr);
    el('td', { text: g.seconds === null ? '?' : humanSeconds(g.seconds) }, tr);
    el('td', { text: g.kind.join(', ') }, tr);
    tr.addEventListener('click', () => onPick(store.id, g.index));
  }
  if (total > GAPS_SHOWN) el('p', { class: 'muted', text: `first ${GAPS_SHOWN} of ${total} shown` }, box);
  return box;
}
