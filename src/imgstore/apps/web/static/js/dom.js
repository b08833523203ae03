// A small helper for building the page.

// A new element: attributes (text: its text), appended to parent when given.
export function el(tag, attrs = {}, parent = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  if (parent) parent.appendChild(e);
  return e;
}

// "12.5 s", "3 min 20 s", "2 h 5 min", "1 d 3 h" for a duration in seconds.
export function humanSeconds(s) {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${+s.toFixed(3)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}
