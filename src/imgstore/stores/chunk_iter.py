"""Whole-store processing: ``store.iter_chunks(workers=N)`` yields every chunk's frames and metadata in
store order, decoded on *N* threads at once; how a chunk is cut into parts and segments (runs of parts
one reader decodes in order from a keyframe) is shared with the dask integration (``to_dask``).

Measurements and the choices behind them: docs/design/parallel-reading.md.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, NamedTuple

import numpy as np

from .. import frame_memory
from ..errors import CorruptChunkError

#: bytes of frames in one part handed out by ``iter_chunks`` when no *max_frames* is given
PART_BYTES = 64 << 20
#: seconds a worker waits for room for a decoded part before it looks again whether it was stopped
_WAIT = 0.1


class ChunkFrames(NamedTuple):
    """Consecutive frames of one chunk, as :meth:`ChunkIteration.iter_chunks` yields them."""

    #: the chunk's number
    chunk: int
    #: the frames, ``(n, h, w)`` or ``(n, h, w, 3)``; ``images[k]`` is ``store[start + k]``
    images: np.ndarray
    #: their frame numbers (int64, as stored: not necessarily increasing)
    frame_numbers: np.ndarray
    #: their frame times (float64)
    frame_times: np.ndarray
    #: the store frame index (position in the store) of ``images[0]``
    start: int


def plan_segments(n: int, entries: np.ndarray | None, max_frames: int, strict: bool = True) -> list[list[tuple]]:
    """A chunk of *n* frames cut into segments, each a list of parts ``(a, b)`` (positions ``a`` to
    ``b - 1``): a segment starts at an entry position (*entries*, sorted; None: every position) and is
    decoded by one reader in order; its parts hold at most *max_frames* frames each and are cut at entry
    positions where one lies within *max_frames*. *strict* False (dask blocks): a segment is never cut
    but at an entry position, even where that makes it longer than *max_frames*."""
    max_frames = max(1, int(max_frames))
    segments: list[list[tuple]] = []
    a = 0
    new_segment = True
    while a < n:
        if new_segment:
            segments.append([])
        if a + max_frames >= n:
            b, new_segment = n, True
        elif entries is None:
            b, new_segment = a + max_frames, True
        else:
            j = int(np.searchsorted(entries, a + max_frames, side="right")) - 1
            e = int(entries[j]) if j >= 0 else 0
            if e > a:
                b, new_segment = e, True
            elif strict:
                b, new_segment = a + max_frames, False
            else:
                k = int(np.searchsorted(entries, a, side="right"))
                b, new_segment = (int(entries[k]) if k < len(entries) else n), True
        segments[-1].append((a, b))
        a = b
    return segments


def _check_workers(workers) -> int:
    if workers is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return max(1, os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, or None for every core (got {workers!r})")
    return int(workers)


class _Segment:
    """The parts of one segment, decoded in order on a worker thread, handed over one at a time."""

    def __init__(self, chunk_n: int, parts: list[tuple]) -> None:
        self.chunk_n = chunk_n
        self.parts = parts
        self.q: queue.Queue = queue.Queue(maxsize=1)

    def run(self, store, stop: threading.Event) -> None:
        try:
            reader = store._new_ahead_reader(self.chunk_n)
        except BaseException as e:  # noqa: BLE001 - raised by the consumer, in order
            self._put(e, stop)
            return
        try:
            for a, b in self.parts:
                if stop.is_set() or not self._put(store._read_part(reader, self.chunk_n, a, b), stop):
                    return
        except BaseException as e:  # noqa: BLE001 - raised by the consumer, in order
            self._put(e, stop)
        finally:
            reader.close()

    def _put(self, item, stop: threading.Event) -> bool:
        while not stop.is_set():
            try:
                self.q.put(item, timeout=_WAIT)
                return True
            except queue.Full:
                continue
        return False

    def take(self) -> np.ndarray:
        item = self.q.get()
        if isinstance(item, BaseException):
            raise item
        return item


class ChunkIteration:
    """``iter_chunks`` of :class:`~.base.ImgStore` (reads through its frame index and chunk readers, and
    ``_new_ahead_reader`` for readers of its own on worker threads; owns no state)."""

    def iter_chunks(self, workers: int | None = 1, max_frames: int | None = None) -> Iterator[ChunkFrames]:
        """Every frame of the store, chunk by chunk in store order, as :class:`ChunkFrames`
        ``(chunk, images, frame_numbers, frame_times, start)``; a chunk of more than *max_frames* frames
        (default: as many as fit in 64 MiB) comes in parts, in order.

        *workers*: decode that many parts at once, each on a thread of its own with a single-threaded
        decoder (None: one per core); a chunk is cut where its frames can be decoded apart (at keyframes),
        and read in order by one reader between those cuts. 1: the plain sequential decode, on the caller's
        thread. At most ``2 * workers`` decoded parts wait besides the one handed out. The frames are
        those :meth:`get_image` returns (decoded as the store says; read-only views of the file for raw
        chunks); does not move :meth:`get_next_image`'s position. Stopping early stops the workers.
        """
        self._require_read()
        workers = _check_workers(workers)
        max_frames = self._part_frames(max_frames)
        chunks = [int(c) for c in self._index.chunk_ids]
        if workers > 1 and len(chunks) == 1:
            if len(self._chunk_segments(chunks[0], max_frames)) < 2:
                workers = 1  # nothing to decode at the same time: the store's own (threaded) decoder
        if workers == 1:
            return self._iter_sequential(chunks, max_frames)
        return self._iter_parallel(chunks, max_frames, workers)

    def _part_frames(self, max_frames: int | None) -> int:
        if max_frames is None:
            frame = int(np.prod(self._out_shape)) * np.dtype(self.dtype).itemsize
            return max(1, PART_BYTES // max(1, frame))
        if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1:
            raise ValueError(f"max_frames must be a whole number >= 1, or None (got {max_frames!r})")
        return int(max_frames)

    def _chunk_length(self, chunk_n: int) -> int:
        start, stop = self._index.chunk_range(chunk_n)
        return stop - start

    def _chunk_segments(self, chunk_n: int, max_frames: int, strict: bool = True) -> list[list[tuple]]:
        """Chunk *chunk_n* cut as :func:`plan_segments` says (its reader tells where it can be cut)."""
        n = self._chunk_length(chunk_n)
        entries = None
        if n > max_frames:
            entries = self._chunk_reader(chunk_n).entry_positions()
            if entries is not None:
                entries = entries[entries < n]
        return plan_segments(n, entries, max_frames, strict)

    def _part(self, chunk_n: int, a: int, b: int, images: np.ndarray) -> ChunkFrames:
        s = int(self._index.chunk_range(chunk_n)[0])
        idx = self._index
        return ChunkFrames(chunk_n, images, np.array(idx.frame_number[s + a:s + b], dtype=np.int64),
                           np.array(idx.frame_time[s + a:s + b], dtype=np.float64), s + a)

    def _read_part(self, reader, chunk_n: int, a: int, b: int) -> np.ndarray:
        """Positions *a* .. *b* - 1 of chunk *chunk_n* read in order by *reader*, as one array of the
        frames :meth:`get_image` returns."""
        view = getattr(reader, "read_range", None)
        if view is not None and not self._encoding:  # raw frames: a view of the file
            try:
                out = view(a, b)
            except IndexError as e:
                raise CorruptChunkError(str(e)) from None
            if out.shape[1:] != self._out_shape or out.dtype != self.dtype:
                self._check_frame(out[0], chunk_n, a)
            return out
        out = frame_memory.empty((b - a,) + tuple(self._out_shape), self.dtype)
        dec = self._decoder()
        for k in range(b - a):
            try:
                img = dec(reader.read(a + k))
            except IndexError as e:  # the chunk index lists a frame its data does not hold
                raise CorruptChunkError(str(e)) from None
            self._check_frame(img, chunk_n, a + k)
            out[k] = img
        return out

    def _iter_sequential(self, chunks: list[int], max_frames: int) -> Iterator[ChunkFrames]:
        for c in chunks:
            n = self._chunk_length(c)
            for a in range(0, n, max_frames):
                b = min(n, a + max_frames)
                yield self._part(c, a, b, self._read_part(self._chunk_reader(c), c, a, b))

    def _iter_parallel(self, chunks: list[int], max_frames: int, workers: int) -> Iterator[ChunkFrames]:
        stop = threading.Event()
        pool = ThreadPoolExecutor(workers, thread_name_prefix="imgstore-chunks")
        pending: list[_Segment] = []

        def segments():
            for c in chunks:
                for parts in self._chunk_segments(c, max_frames):
                    yield _Segment(c, parts)

        todo = segments()

        def submit() -> None:
            while len(pending) < workers:
                seg = next(todo, None)
                if seg is None:
                    return
                pending.append(seg)
                pool.submit(seg.run, self, stop)

        try:
            submit()
            while pending:
                seg = pending[0]
                for k, (a, b) in enumerate(seg.parts):
                    images = seg.take()
                    if k == len(seg.parts) - 1:
                        pending.pop(0)
                        submit()  # the next segment starts before this part is handed out
                    yield self._part(seg.chunk_n, a, b, images)
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
