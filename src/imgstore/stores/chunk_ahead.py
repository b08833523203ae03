"""Decoding the next chunks of a store while a sequential reader is still in this one.

A chunk's frames can only be decoded in order from its keyframe (the original imgstore's MP4 chunks
hold one keyframe each), so one chunk keeps one core busy at best; reading on, the chunks after the
current one are decoded at the same time, each on a thread of its own with a single-threaded decoder
(threads that share one chunk, FFmpeg's frame threads, use 2 cores at ~75%). Frames decoded ahead are
held up to a memory budget (``IMGSTORE_READ_AHEAD_MB``, default 256; 0 turns this off) and handed out
in order; their memory comes from :mod:`imgstore.frame_memory`, so that it is used again. Intra-only
chunks are not decoded this way (their frames decode in parallel within the chunk). Measurements:
docs/design/parallel-reading.md.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import threading
import weakref
from collections import deque

import numpy as np

from .. import frame_memory

log = logging.getLogger(__name__)

#: chunks decoded ahead of the one being read: with 1 on 2 cores, the last chunk of a store was decoded
#: alone at the end (the original's 3-chunk 1280x1024 stores: 229-253 fps; with 2, 308-319 fps; a
#: 20-chunk store the same, 2026-12-03)
CHUNKS_AHEAD = 2
#: seconds a chunk's thread waits for room before it looks again whether it was stopped
_WAIT = 0.25
#: frames after the next one to be taken that a chunk's thread converts once it has decoded them all
CONVERT_AHEAD = 4
_WAITING, _BUSY, _FAILED = object(), object(), object()


class _Pending:
    """A frame held decoded (:class:`imgstore.codecs.video.pixels.Unconverted`); ``state`` is
    ``_WAITING``, ``_BUSY`` (a thread converts it), ``_FAILED`` or its image."""

    __slots__ = ("frame", "state")

    def __init__(self, frame) -> None:
        self.frame = frame
        self.state = _WAITING

    def convert(self):
        """Its image, or ``_FAILED`` (the caller's own read reports why)."""
        fr, self.frame = self.frame, None
        try:
            return fr.image()
        except Exception as e:  # noqa: BLE001
            log.debug("a frame decoded ahead was not converted: %s", e)
            return _FAILED


def _held_bytes(img) -> int:
    """Bytes a frame held ahead takes: an image, or a decoded frame's planes."""
    if isinstance(img, np.ndarray):
        return int(img.nbytes)
    return sum(int(p.buffer_size) for p in img.frame.planes)


def read_ahead_budget() -> int:
    """Bytes of decoded frames all chunks ahead of one store may hold."""
    try:
        mb = float(os.environ.get("IMGSTORE_READ_AHEAD_MB", "256"))
    except ValueError:
        mb = 256.0
    return max(0, int(mb * 2**20))


class ChunkAhead:
    """One chunk's frames from position *start* on, read in order on a thread of its own by the reader
    *make_reader()* returns there (which this object owns; opening one, e.g. demuxing a packet index,
    would hold up the caller), at most *max_frames* of them waiting to be taken."""

    def __init__(self, make_reader, n_frames: int, max_frames: int, name: str, start: int = 0,
                 max_bytes: int | None = None) -> None:
        self.make_reader = make_reader
        self.reader = None
        self.n = int(n_frames)
        self.max_frames = max(1, int(max_frames))
        self.max_bytes = max_bytes  # and at most these bytes (but 8 frames), once the first frame is held
        self.frames: deque = deque()
        self.start = int(start)
        self.next_taken = self.start  # position the next take() must ask for
        self.failed_at: int | None = None  # first position the thread could not read
        self.done = False
        self.stopped = False
        self.pid = os.getpid()
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, name=f"imgstore-chunk-ahead-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            decoded = self._decode()
        finally:
            with self.cond:
                self.done = True
                self.cond.notify_all()
            try:
                if self.reader is not None:
                    self.reader.close()
            except Exception:  # noqa: BLE001 - nothing to tell anyone
                pass
        if decoded:
            self._convert_ahead()

    def _decode(self) -> bool:
        """Decode the chunk's frames into :attr:`frames`; whether all were."""
        make, self.make_reader = self.make_reader, None  # (it holds the store: let it be collected)
        try:
            self.reader = make()
        except Exception as e:  # noqa: BLE001 - reading that chunk will say what is wrong
            log.debug("chunk not decoded ahead: %s", e)
            self.reader = None
        del make
        if self.reader is None:
            with self.cond:
                self.failed_at = self.start
            return False
        # a colour frame is held decoded and converted by the thread that takes it: half the bytes held
        # (the fresh memory of frames held ahead costs 0.4 ms of system time a 640x480 BGR frame
        # here), and the taking thread has work while it waits
        read = getattr(self.reader, "read_unconverted", self.reader.read)
        for p in range(self.start, self.n):
            with self.cond:
                while len(self.frames) >= self.max_frames and not self.stopped:
                    self.cond.wait(_WAIT)
                if self.stopped:
                    return False
            try:
                img = read(p)
            except Exception as e:  # noqa: BLE001 - the caller's own read reports it
                log.debug("chunk ahead stops at %d: %s", p, e)
                with self.cond:
                    self.failed_at = p
                return False
            with self.cond:
                if p == self.start and self.max_bytes is not None:  # frames that take more than assumed: fewer
                    self.max_frames = min(self.max_frames, max(8, self.max_bytes // max(1, _held_bytes(img))))
                self.frames.append(img if isinstance(img, np.ndarray) else _Pending(img))
                self.cond.notify_all()
        return True

    def _convert_ahead(self) -> None:
        """All decoded: convert the next :data:`CONVERT_AHEAD` frames waiting to be taken, as they come
        up, until all are taken (when decoding ends, the taking thread would otherwise convert what
        is held alone: 15-20% of a 300-frame store's read, 2026-12-03)."""
        while True:
            with self.cond:
                job = None
                while job is None:
                    if self.stopped or not self.frames:
                        return
                    for f in itertools.islice(self.frames, CONVERT_AHEAD):
                        if isinstance(f, _Pending) and f.state is _WAITING:
                            job = f
                            break
                    else:
                        self.cond.wait(_WAIT)
                job.state = _BUSY
            img = job.convert()
            with self.cond:
                job.state = img
                self.cond.notify_all()

    def expects(self, pos: int) -> bool:
        return pos == self.next_taken and self.pid == os.getpid() and not self.stopped

    def take(self, pos: int) -> np.ndarray | None:
        """The frame at *pos* (the one after the last taken), waiting for it; None where the thread
        could not read it (the caller reads it itself)."""
        if not self.expects(pos):
            return None
        with self.cond:
            while not self.frames and not self.done and not self.stopped:
                self.cond.wait(_WAIT)
                if not self.thread.is_alive() and not self.frames:
                    break
            if not self.frames:
                return None
            img = self.frames.popleft()
            self.next_taken += 1
            self.cond.notify_all()
            if isinstance(img, _Pending):
                job = img
                while job.state is _BUSY:  # being converted by the thread
                    self.cond.wait(_WAIT)
                img = job.state
                if img is _WAITING:
                    job.state = _BUSY
        if img is _WAITING:
            img = job.convert()
        return img if isinstance(img, np.ndarray) else None

    def stop(self) -> None:
        """Stop the thread; its frames are dropped. In a forked child the thread is the parent's:
        nothing to join."""
        with self.cond:
            self.stopped = True
            self.frames.clear()
            self.cond.notify_all()
        if self.pid == os.getpid() and self.thread is not threading.current_thread():
            self.thread.join()


def _stop_all(aheads: dict) -> None:
    for a in list(aheads.values()):
        a.stop()
    aheads.clear()


def _give_back(aheads: dict, kept: int) -> None:
    """A store stops decoding ahead (or was collected without being closed): its threads stop and the
    room kept for their frames is given back."""
    _stop_all(aheads)
    frame_memory.release(kept)


class ChunksAhead:
    """The part of a store that decodes the next chunks ahead of :meth:`get_next_image` (needs
    ``_index``, ``_new_ahead_reader(chunk_n)``, ``_frame_bytes()``, ``_held_frame_bytes()``)."""

    _aheads: dict

    def _ahead_frame(self, i: int) -> tuple[np.ndarray, int, int] | None:
        """``(frame, chunk_n, position)`` of frame index *i*, read on from frame *i* - 1: from the chunk
        decoded ahead, if it was, after starting the chunks after it. None: read it as any other frame."""
        aheads = self.__dict__.setdefault("_aheads", {})
        span = self.__dict__.get("_ahead_span")
        if span is None or span[4] is not self._index or not span[0] <= i < span[1]:
            span = self._enter_chunk(i)
        start, _, chunk_n, max_frames, _, next_n = span
        pos = i - start
        a = aheads.get(chunk_n)
        if a is None and pos <= 1 and next_n is not None and max_frames:
            a = self._ahead_of_this(chunk_n, next_n, max_frames, pos)
        if a is None:
            return None
        img = a.take(pos)
        if img is None:
            aheads.pop(chunk_n).stop()
            return None
        if a.next_taken >= a.n:
            aheads.pop(chunk_n)
        return img, chunk_n, pos

    def _enter_chunk(self, i: int) -> tuple:
        """Reading on into the chunk of frame index *i*: the chunks after it decoding ahead, any other
        stopped; ``(start, stop, chunk_n, max_frames, index, next chunk_n or None)`` of the chunk."""
        idx = self._index
        c = int(np.searchsorted(idx.chunk_starts, i, side="right")) - 1
        chunk_n = int(idx.chunk_ids[c])
        wanted = [int(n) for n in idx.chunk_ids[c + 1: c + 1 + CHUNKS_AHEAD]]
        for n in [n for n in self._aheads if n != chunk_n and n not in wanted]:
            self._aheads.pop(n).stop()
        max_frames = self._start_aheads(wanted)
        span = (int(idx.chunk_starts[c]), int(idx.chunk_starts[c + 1]), chunk_n, max_frames, idx,
                wanted[0] if wanted else None)
        self.__dict__["_ahead_span"] = span
        return span

    def _start_aheads(self, chunks: list[int]) -> int:
        """Have *chunks* decoded ahead; the frames each may hold (0: none is)."""
        budget = read_ahead_budget()
        frame_bytes = self._frame_bytes()
        if budget <= 0 or frame_bytes <= 0:
            return 0
        held = self._held_frame_bytes()
        max_frames = max(8, budget // (held * CHUNKS_AHEAD))
        if chunks and not self.__dict__.get("_pool_kept"):
            kept = max_frames * held * CHUNKS_AHEAD
            frame_memory.keep(kept)  # the frames decoded ahead, used again once read
            # given back by _stop_aheads, or when a store nobody closed is collected
            self.__dict__["_pool_kept"] = weakref.finalize(self, _give_back, self._aheads, kept)
        for n in chunks:
            if n not in self._aheads:
                # the only chunk decoding: let it have the decoder's own threads
                alone = all(a.done for a in self._aheads.values()) and not self._current_decoding()
                start, stop = self._index.chunk_range(n)
                self._aheads[n] = ChunkAhead(functools.partial(self._new_ahead_reader, n, alone), stop - start,
                                             max_frames, f"{n}", max_bytes=budget // CHUNKS_AHEAD)
        return max_frames

    def _ahead_of_this(self, chunk_n: int, next_n: int, max_frames: int, pos: int) -> ChunkAhead | None:
        """Reading on from position *pos* (0 or 1) of *chunk_n*: the rest of it on a thread of its own
        too, with a single-threaded decoder, where the chunk after it fits in what it may hold, so the
        threads ahead have work while this one is read; else None (its reader goes on). From position
        1 (the first frame was read alone) that frame is decoded twice; from 0, which
        :meth:`get_next_image` asks for on a fresh store, nothing is (the original's 300-frame
        1280x1024 stores: the second frame came 50-120 ms after the first, 2026-12-03)."""
        start, stop = self._index.chunk_range(chunk_n)
        nstart, nstop = self._index.chunk_range(next_n)
        if stop - start <= 2 or nstop - nstart > max_frames:
            return None
        a = self._aheads[chunk_n] = ChunkAhead(functools.partial(self._new_ahead_reader, chunk_n, False),
                                               stop - start, max_frames, f"{chunk_n}", start=pos,
                                               max_bytes=read_ahead_budget() // CHUNKS_AHEAD)
        return a

    def _current_decoding(self) -> bool:
        """The chunk being read is not all decoded yet (by its own reader, or by a thread ahead)."""
        span = self.__dict__.get("_ahead_span")
        if span is None:
            return True
        a = self._aheads.get(span[2])
        return a is None or not a.done

    def _stop_aheads(self) -> None:
        """Stop decoding ahead (frames decoded ahead are dropped)."""
        _stop_all(self.__dict__.setdefault("_aheads", {}))
        self.__dict__["_ahead_span"] = None
        kept = self.__dict__.pop("_pool_kept", None)
        if kept is not None:
            kept()  # _give_back, once

