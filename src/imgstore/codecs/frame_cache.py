"""Decoded video frames kept for re-use, bounded in bytes and shared by every reader in a process.

A random read of an inter-frame video decodes from the keyframe at or before
the target; the frames decoded on the way are kept here so that reading
around the same place (clustered access, stepping backwards in a viewer)
does not decode the GOP again. The budget is process-wide, not per store or
per chunk, so opening many stores (a dask worker, a viewer with several
cameras) cannot multiply it. Least recently used frames go first.

The default budget is :data:`DEFAULT_MAX_BYTES` (512 MiB, about 2.5 GOPs of
100 frames of 1280x1024 YUV 4:2:0, the layout OpenCV-written chunks have),
overridden by the environment variable ``IMGSTORE_FRAME_CACHE_MB`` or by
:func:`set_frame_cache_size`.
"""

from __future__ import annotations

import collections
import os
import threading
from typing import Any, Hashable

#: default budget of the process-wide cache
DEFAULT_MAX_BYTES = 512 << 20


def frame_nbytes(frame: Any) -> int:
    """Bytes held by a decoded frame (a PyAV ``VideoFrame``: its planes; else ``nbytes``)."""
    planes = getattr(frame, "planes", None)
    if planes is not None:
        return sum(int(p.buffer_size) for p in planes)
    return int(getattr(frame, "nbytes", 0))


class FrameCache:
    """LRU of decoded frames keyed by (owner, position), at most *max_bytes* in all.

    An owner (one chunk reader) may also cap how many of its own frames stay
    (``limit`` of :meth:`put`): a reader reading on keeps only a few, so that
    a long sequential read neither evicts everything else nor makes the
    decoder allocate a new buffer for every frame. Thread-safe.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self.nbytes = 0
        self._lru: collections.OrderedDict = collections.OrderedDict()  # (owner, pos) -> (frame, nbytes)
        self._of: dict[Hashable, collections.OrderedDict] = {}  # owner -> its positions, LRU first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._lru)

    def get(self, owner: Hashable, pos: int):
        """The frame, marked as just used; None if not cached."""
        key = (owner, pos)
        with self._lock:
            e = self._lru.get(key)
            if e is None:
                return None
            self._lru.move_to_end(key)
            self._of[owner].move_to_end(pos)
            return e[0]

    def __contains__(self, key: tuple) -> bool:
        return key in self._lru

    def count(self, owner: Hashable) -> int:
        """Frames of *owner* cached."""
        mine = self._of.get(owner)
        return len(mine) if mine is not None else 0

    def put(self, owner: Hashable, pos: int, frame: Any, nbytes: int | None = None,
            limit: int | None = None) -> None:
        """Keep *frame*; then drop *owner*'s oldest beyond *limit* frames and anyone's oldest beyond the budget.

        The frame just put always stays (even alone over the budget) until the next put.
        """
        n = frame_nbytes(frame) if nbytes is None else int(nbytes)
        key = (owner, pos)
        with self._lock:
            old = self._lru.pop(key, None)
            if old is not None:
                self.nbytes -= old[1]
            self._lru[key] = (frame, n)
            self.nbytes += n
            mine = self._of.get(owner)
            if mine is None:
                mine = self._of[owner] = collections.OrderedDict()
            mine[pos] = None
            mine.move_to_end(pos)
            if limit is not None:
                while len(mine) > max(1, limit):
                    q, _ = mine.popitem(last=False)
                    self.nbytes -= self._lru.pop((owner, q))[1]
            self._shrink(keep=1)

    def _shrink(self, keep: int) -> None:
        """Drop the least recently used frames while over the budget and more than *keep* are left."""
        while self.nbytes > self.max_bytes and len(self._lru) > keep:
            (o, q), (_, m) = self._lru.popitem(last=False)
            self.nbytes -= m
            theirs = self._of[o]
            del theirs[q]
            if not theirs:
                del self._of[o]

    def discard(self, owner: Hashable) -> None:
        """Drop every frame of *owner* (a reader that closes)."""
        with self._lock:
            mine = self._of.pop(owner, None)
            if mine:
                for q in mine:
                    self.nbytes -= self._lru.pop((owner, q))[1]

    def clear(self) -> None:
        with self._lock:
            self._lru.clear()
            self._of.clear()
            self.nbytes = 0

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # another thread of the parent may have held it

    def resize(self, max_bytes: int) -> None:
        """Change the budget; frames beyond it are dropped now."""
        with self._lock:
            self.max_bytes = max(0, int(max_bytes))
            self._shrink(keep=0)

    def __repr__(self) -> str:
        return f"FrameCache({len(self._lru)} frames, {self.nbytes / 2**20:.1f} of {self.max_bytes / 2**20:.0f} MiB)"


def _initial_size() -> int:
    env = os.environ.get("IMGSTORE_FRAME_CACHE_MB")
    if env:
        try:
            return max(0, int(float(env) * 2**20))
        except ValueError:
            pass
    return DEFAULT_MAX_BYTES


_shared = FrameCache(_initial_size())
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_shared._after_fork_in_child)


def shared_frame_cache() -> FrameCache:
    """The process-wide cache every video chunk reader uses unless given its own."""
    return _shared


def set_frame_cache_size(max_bytes: int) -> None:
    """Budget of the process-wide decoded-frame cache, in bytes (0 keeps only the frame being read)."""
    _shared.resize(max_bytes)


__all__ = ["DEFAULT_MAX_BYTES", "FrameCache", "frame_nbytes", "set_frame_cache_size", "shared_frame_cache"]
