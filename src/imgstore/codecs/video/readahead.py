"""Decoding ahead of a sequential reader: inter-frame chunks on one thread that takes the reader's
walker over, intra-only chunks on the shared pool (one decoder per worker thread)."""

from __future__ import annotations

import os
import queue
import threading

from . import pools
from .pixels import _sws_release
from .walker import _Walker

#: frames decoded ahead of a sequential reader (inter codecs: by one thread; intra codecs: per worker x 2)
READ_AHEAD = 8
#: frames a reader keeps while reading on (of its *cache_frames*): keeping every frame passing by made
#: the decoders allocate a new buffer for nearly every frame (docs/design/video-reading.md)
SEQUENTIAL_CACHE = 8
#: seconds a read-ahead thread waits for its reader to take a frame before it gives up
_READ_AHEAD_IDLE = 5.0


class _ReadAhead:
    """A thread that takes over a reader's walker and decodes the frames after the current one while
    the caller converts and uses the earlier ones (sequential reading of inter-frame codecs; the
    conversion stays with the caller, who would otherwise wait: docs/design/video-reading.md)."""

    def __init__(self, reader: "VideoChunkReader", walker: _Walker, depth: int) -> None:
        self.r = reader
        self.w = walker
        self.q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.stop = threading.Event()
        self.consumed = walker.last_out  # highest position handed to the reader
        self.dead = False
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name=f"imgstore-readahead-{reader.key}", daemon=True)
        self.thread.start()

    def _push(self, item) -> bool:
        waited = 0.0
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.05)
                return True
            except queue.Full:
                waited += 0.05
                if waited > _READ_AHEAD_IDLE:  # nobody reads: let the reader (and this thread) go
                    self.stop.set()
                    return False
        return False

    def _run(self) -> None:
        r, w = self.r, self.w
        n = r._n
        try:
            while not self.stop.is_set():
                if w.next_dec >= n:
                    if not w.drained:
                        for q, fr in w.drain():
                            if not self._push((q, fr)):
                                return
                    self._push(None)  # the end
                    return
                a = w.next_dec
                b = r._batch_end(a)
                base = int(r._payload[a])
                data = r._src.read(base, int(r._end[b]))
                for i in range(a, b + 1):
                    if self.stop.is_set():
                        return
                    for q, fr in w.feed(i, data, int(r._payload[i]) - base):
                        if not self._push((q, fr)):
                            return
        except BaseException as e:  # noqa: BLE001 - handed to the reader
            self._push(e)
        finally:
            _sws_release()
            self.dead = True

    def expects(self, p: int) -> bool:
        return self.consumed < p <= self.consumed + 2 * READ_AHEAD + 1 and not self.stop.is_set() \
            and self.pid == os.getpid()

    def take(self, p: int):
        """The converted frame at position *p* (None if the thread cannot give it)."""
        r = self.r
        while True:
            try:
                item = self.q.get(timeout=0.25)
            except queue.Empty:
                if (self.dead or not self.thread.is_alive()) and self.q.empty():
                    return None  # finished, or the parent's thread in a forked child
                continue
            if item is None:
                self.stop.set()
                return None
            if isinstance(item, BaseException):
                self.stop.set()
                raise item
            q, fr = item
            self.consumed = max(self.consumed, q)
            if q == p:
                r._remember(q, fr, protect=True, limit=SEQUENTIAL_CACHE)
                return r._convert(fr)
            r._remember(q, fr, limit=SEQUENTIAL_CACHE)
            if q > p:
                return None

    def close(self) -> None:
        """Stop the thread; the frames it decoded but nobody took go into the reader's cache."""
        self.stop.set()
        while True:
            try:
                item = self.q.get_nowait()
            except queue.Empty:
                if not self.thread.is_alive():
                    break
                self.thread.join(0.01)
                continue
            if isinstance(item, tuple):
                self.r._remember(item[0], item[1])
        self.thread.join()


class _IntraAhead:
    """Frames of an intra-only chunk decoded (and converted) ahead, in parallel on the shared pool."""

    def __init__(self, reader: "VideoChunkReader") -> None:
        self.r = reader
        self.futs: dict[int, object] = {}
        self.depth = 2 * pools._decode_workers()
        self.next = 0
        self.pid = os.getpid()

    def expects(self, p: int) -> bool:
        return p in self.futs and self.pid == os.getpid()

    def fill(self, p: int) -> None:
        """Have positions p .. p + depth - 1 under way."""
        r = self.r
        ex = pools._decode_executor()
        stop = min(r._n, p + self.depth)
        for q in range(max(p, self.next), stop):
            if q not in self.futs:  # intra-only frames are never cached
                self.futs[q] = ex.submit(r._decode_intra, q)
        self.next = max(self.next, stop)

    def take(self, p: int):
        """The converted frame at *p*. Not cached, like any intra-only frame (see
        :meth:`.direct.DirectReading._decode_intra_here`)."""
        return self.futs.pop(p).result()

    def close(self) -> None:
        for f in self.futs.values():
            f.cancel()  # frames under way are dropped when done
        self.futs.clear()
