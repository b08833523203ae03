// The server's HTTP API as seen from the page: JSON, single frames, and batches of frames
// streamed as multipart/mixed (one part per frame, each with its own X-Frame-* headers).

const TOKEN = new URLSearchParams(location.search).get('token');

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The URL of an API path (relative to the page, so a proxy prefix keeps working), with the token.
export function apiUrl(path, query = {}) {
  const u = new URL(path, location.href);
  u.hash = '';
  u.search = '';
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
  }
  if (TOKEN) u.searchParams.set('token', TOKEN);
  return u.toString();
}

async function check(resp) {
  if (resp.ok) return resp;
  let msg = `${resp.status} ${resp.statusText}`;
  try { msg = (await resp.json()).error || msg; } catch (e) { /* not JSON */ }
  throw new ApiError(resp.status, msg);
}

export async function getJSON(path, query, signal) {
  const resp = await check(await fetch(apiUrl(path, query), { signal }));
  return resp.json();
}

function num(h, name) {
  const v = h.get(name);
  return v === null || v === '' ? NaN : Number(v);
}

// What the X-Frame-* headers (of a response or of a multipart part) say about a frame.
export function frameMeta(h) {
  return {
    index: num(h, 'X-Frame-Index'),
    number: num(h, 'X-Frame-Number'),
    time: num(h, 'X-Frame-Time'),
    datetime: h.get('X-Frame-Datetime') || '',
    min: num(h, 'X-Frame-Min'),
    max: num(h, 'X-Frame-Max'),
  };
}

// One frame: {meta, blob}.
export async function fetchFrame(sid, query, signal) {
  const resp = await check(await fetch(apiUrl(`api/stores/${sid}/frame`, query), { signal }));
  return { meta: frameMeta(resp.headers), blob: await resp.blob() };
}

const CRLF2 = [13, 10, 13, 10];

function findHeaderEnd(buf) {
  const n = Math.min(buf.length - 3, 8192);
  for (let i = 0; i < n; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

function concat(a, b) {
  if (!a.length) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

// Frames of a batch request, each {meta, blob} as soon as its part has arrived.
export async function* streamFrames(sid, query, signal) {
  const resp = await check(await fetch(apiUrl(`api/stores/${sid}/frames`, query), { signal }));
  const m = /boundary=([^;]+)/.exec(resp.headers.get('Content-Type') || '');
  if (!m) throw new ApiError(500, 'batch answer without a multipart boundary');
  const closing = `--${m[1]}--`;
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = new Uint8Array(0);
  let done = false;
  const more = async () => {
    if (done) return false;
    const r = await reader.read();
    if (r.done) { done = true; return false; }
    buf = concat(buf, r.value);
    return true;
  };
  try {
    for (;;) {
      let end;
      while ((end = findHeaderEnd(buf)) < 0) {
        if (dec.decode(buf.subarray(0, closing.length)) === closing) {
          while (await more()); // the end of the answer: read to its end rather than abort it
          return;
        }
        if (!(await more())) return;
      }
      const lines = dec.decode(buf.subarray(0, end)).split('\r\n');
      const headers = new Headers();
      for (const line of lines.slice(1)) {
        const k = line.indexOf(':');
        if (k > 0) headers.set(line.slice(0, k).trim(), line.slice(k + 1).trim());
      }
      const len = Number(headers.get('Content-Length'));
      const start = end + CRLF2.length;
      while (buf.length < start + len + 2) {
        if (!(await more())) return;
      }
      const blob = new Blob([buf.slice(start, start + len)], { type: headers.get('Content-Type') || '' });
      buf = buf.slice(start + len + 2);
      yield { meta: frameMeta(headers), blob };
    }
  } finally {
    if (!done) reader.cancel().catch(() => {});
  }
}
