"""Byte ranges of a chunk file: ``pread`` on a descriptor kept open locally; remotely, range requests
behind a bounded cache of fetched spans, many spans merged and fetched concurrently."""

from __future__ import annotations

import bisect
import collections
import concurrent.futures
import os
import threading

from ...errors import CorruptChunkError
from ...storage.base import Storage

#: bytes of fetched spans a remote reader keeps
DEFAULT_SPAN_CACHE = 32 << 20
#: gaps up to this many bytes between spans wanted together are fetched with them (one request)
MERGE_GAP = 4096

_io_pool: concurrent.futures.ThreadPoolExecutor | None = None
_io_pool_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _io_pool, _io_pool_lock
    _io_pool = None
    _io_pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _io_executor() -> concurrent.futures.ThreadPoolExecutor:
    global _io_pool
    with _io_pool_lock:
        if _io_pool is None:
            _io_pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="imgstore-io")
        return _io_pool


def merge_spans(spans, gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    """Sorted, merged ``(start, stop)`` spans: overlapping ones, and ones at most *gap* bytes apart."""
    out: list[list[int]] = []
    for a, b in sorted((int(a), int(b)) for a, b in spans if b > a):
        if out and a <= out[-1][1] + gap:
            if b > out[-1][1]:
                out[-1][1] = b
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


class PacketSource:
    """Byte ranges of one chunk file.

    Local chunks: ``os.pread`` on a descriptor kept open until :meth:`close`.
    Remote chunks: ``storage.read_range``; fetched spans are kept (up to
    *cache_bytes*, least recently used out first), a read fetches only the
    parts of its range that are not kept, and :meth:`prefetch` fetches many
    spans at once (merged, concurrently). Thread-safe.

    Instrumentation: ``requests`` and ``bytes_fetched`` (remote only).
    """

    def __init__(self, storage: Storage, key: str, *, cache_bytes: int = DEFAULT_SPAN_CACHE) -> None:
        self.storage = storage
        self.key = key
        self.filename = storage.describe(key)
        self.path = storage.local_path(key)
        self.cache_bytes = int(cache_bytes)
        self.requests = 0
        self.bytes_fetched = 0
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._starts: list[int] = []  # sorted starts of kept spans (remote)
        self._spans: dict[int, bytes] = {}
        self._lru: collections.OrderedDict = collections.OrderedDict()
        self._kept = 0
        self._closed = False

    @property
    def local(self) -> bool:
        return self.path is not None

    # -- local ---------------------------------------------------------------------------
    def _pread(self, a: int, b: int) -> bytes:
        with self._lock:
            if self._closed:
                raise ValueError(f"{self.filename}: reader is closed")
            if self._fd is None:
                try:
                    self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except FileNotFoundError:
                    raise FileNotFoundError(f"{self.filename}: no such chunk") from None
            fd = self._fd
        n = b - a
        data = os.pread(fd, n, a)
        if len(data) < n:
            parts = [data]
            got = len(data)
            while got < n:
                more = os.pread(fd, n - got, a + got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        return data

    # -- remote --------------------------------------------------------------------------
    def _fetch(self, a: int, b: int) -> bytes:
        data = self.storage.read_range(self.key, a, b)
        with self._lock:
            self.requests += 1
            self.bytes_fetched += len(data)
        return data

    def _keep(self, a: int, data: bytes) -> None:
        """Remember span [a, a + len(data)) (caller holds the lock; the span overlaps none kept)."""
        if not data or len(data) > self.cache_bytes:
            return
        bisect.insort(self._starts, a)
        self._spans[a] = data
        self._lru[a] = None
        self._kept += len(data)
        while self._kept > self.cache_bytes and self._lru:
            old, _ = self._lru.popitem(last=False)
            d = self._spans.pop(old)
            self._kept -= len(d)
            i = bisect.bisect_left(self._starts, old)
            del self._starts[i]

    def _pieces(self, a: int, b: int):
        """Kept spans overlapping [a, b) and the gaps between them (caller holds the lock):
        a list of ``(start, stop, data_or_None)`` covering [a, b) in order."""
        out = []
        i = bisect.bisect_right(self._starts, a) - 1
        if i < 0:
            i = 0
        cur = a
        while i < len(self._starts) and cur < b:
            s = self._starts[i]
            d = self._spans[s]
            e = s + len(d)
            if e <= cur:
                i += 1
                continue
            if s >= b:
                break
            if s > cur:
                out.append((cur, s, None))
                cur = s
            stop = min(e, b)
            out.append((cur, stop, (s, d)))
            self._lru.move_to_end(s)
            cur = stop
            i += 1
        if cur < b:
            out.append((cur, b, None))
        return out

    def _remote_read(self, a: int, b: int) -> bytes:
        with self._lock:
            pieces = self._pieces(a, b)
        gaps = [(s, e) for s, e, d in pieces if d is None]
        fetched = self._fetch_many(gaps)
        parts = []
        for s, e, d in pieces:
            if d is None:
                data = fetched[(s, e)]
            else:
                base, buf = d
                data = buf[s - base:e - base]
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _fetch_many(self, gaps) -> dict:
        """Fetch *gaps* (disjoint spans), concurrently if several; keep them; ``{span: bytes}``."""
        out = {}
        if not gaps:
            return out
        if len(gaps) == 1:
            results = [self._fetch(*gaps[0])]
        else:
            ex = _io_executor()
            futs = [ex.submit(self._fetch, a, b) for a, b in gaps]
            results = []
            err = None
            for f in futs:
                try:
                    results.append(f.result())
                except BaseException as e:  # noqa: BLE001 - the first error wins, after all finished
                    if err is None:
                        err = e
                    results.append(None)
            if err is not None:
                raise err
        with self._lock:
            for (a, b), data in zip(gaps, results):
                if len(data) != b - a:
                    raise CorruptChunkError(
                        f"{self.filename}: asked for bytes {a}..{b} and got {len(data)} (file changed or cut short?)")
                out[(a, b)] = data
                # only keep what is still missing (another thread may have fetched it meanwhile)
                for s, e, d in self._pieces(a, b):
                    if d is None:
                        self._keep(s, data[s - a:e - a] if (s, e) != (a, b) else data)
        return out

    # -- public --------------------------------------------------------------------------
    def read(self, a: int, b: int) -> bytes:
        """Bytes ``[a, b)`` of the chunk file (all of them, or CorruptChunkError)."""
        a, b = int(a), int(b)
        if b <= a:
            return b""
        data = self._pread(a, b) if self.local else self._remote_read(a, b)
        if len(data) != b - a:
            raise CorruptChunkError(f"{self.filename}: bytes {a}..{b} not in the file (got {len(data)})")
        return data

    def prefetch(self, spans) -> None:
        """Make the remote bytes of *spans* ``[(start, stop), ...]`` kept: merged, and fetched
        concurrently where they are distinct. Nothing to do for a local file."""
        if self.local:
            return
        merged = merge_spans(spans)
        gaps = []
        with self._lock:
            for a, b in merged:
                gaps += [(s, e) for s, e, d in self._pieces(a, b) if d is None]
        # as few requests as possible: gaps that touch are one request
        self._fetch_many(merge_spans(gaps, gap=0))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd is not None:
                try:
                    os.close(self._fd)
                except OSError:
                    pass
                self._fd = None
            self._starts.clear()
            self._spans.clear()
            self._lru.clear()
            self._kept = 0
