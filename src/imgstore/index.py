"""The frame index: frame_number / frame_time / frame_index <-> (chunk, position).

Held as flat numpy arrays in store (write) order, with O(log n) lookups:

* ``frame_number[i]``, ``frame_time[i]`` for global frame index ``i``;
* ``chunk_ids[c]`` and ``chunk_starts[c]`` (``chunk_starts[-1] == frame_count``)
  map a frame index to its chunk and position by binary search;
* a stable sort order of frame numbers / times, only when they are not
  already non-decreasing (the common case needs none).

Frame numbers may be unsorted, repeated, negative or wrapping: an exact
lookup returns the first frame written with that number; ties in nearest
lookups go to the earliest written frame (as the original's sqlite did).
"""

from __future__ import annotations

import logging
import numbers
from typing import Iterable

import numpy as np

from .errors import FrameNotFoundError

log = logging.getLogger("imgstore.index")


def as_int_scalar(value, what: str) -> int | None:
    """An integral Python int from int/float/numpy scalars; None if not integral."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, np.ndarray) and value.shape == ():
        return as_int_scalar(value.item(), what)
    if isinstance(value, numbers.Real):
        f = float(value)
        if not np.isfinite(f):
            raise FrameNotFoundError(f"{what} {value!r} is not a finite number")
        return int(f) if f == int(f) else None
    raise TypeError(f"{what} must be a number, not {type(value).__name__}")


def as_float_scalar(value, what: str) -> float:
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number, not {type(value).__name__}")
    f = float(value)
    if np.isnan(f):
        raise FrameNotFoundError(f"{what} is NaN")
    return f


def _order_if_unsorted(values: np.ndarray) -> np.ndarray | None:
    if len(values) < 2:
        if len(values) == 1 and values.dtype.kind == "f" and np.isnan(values[0]):
            return np.zeros(1, dtype=np.int64)
        return None
    if values.dtype.kind == "f":
        if not np.isnan(values).any() and bool(np.all(values[1:] >= values[:-1])):
            return None
    elif bool(np.all(values[1:] >= values[:-1])):
        return None
    return np.argsort(values, kind="stable").astype(np.int64 if len(values) >= 2**31 else np.int32)


class FrameIndex:
    """Index of every frame in a store (see module docstring)."""

    __slots__ = ("frame_number", "frame_time", "chunk_ids", "chunk_starts", "number_order", "time_order",
                 "_n_valid_times")

    def __init__(self, frame_number: np.ndarray, frame_time: np.ndarray, chunk_ids: np.ndarray,
                 chunk_starts: np.ndarray, number_order: np.ndarray | None = None,
                 time_order: np.ndarray | None = None, sort: bool = True) -> None:
        self.frame_number = frame_number
        self.frame_time = frame_time
        self.chunk_ids = chunk_ids
        self.chunk_starts = chunk_starts
        if sort:
            number_order = _order_if_unsorted(frame_number)
            time_order = _order_if_unsorted(frame_time)
        self.number_order = number_order
        self.time_order = time_order
        if time_order is not None and len(frame_time):
            self._n_valid_times = int(np.count_nonzero(~np.isnan(frame_time)))
        else:
            self._n_valid_times = len(frame_time)

    # --- construction --------------------------------------------------
    @classmethod
    def from_chunks(cls, chunks: Iterable[tuple[int, np.ndarray, np.ndarray]]) -> "FrameIndex":
        """Build from ``(chunk_n, frame_number[], frame_time[])``; empty chunks are dropped."""
        items = sorted(((int(c), fn, ft) for c, fn, ft in chunks if len(fn)), key=lambda x: x[0])
        if items:
            fn = np.concatenate([np.asarray(x[1], dtype=np.int64) for x in items])
            ft = np.concatenate([np.asarray(x[2], dtype=np.float64) for x in items])
        else:
            fn = np.zeros(0, dtype=np.int64)
            ft = np.zeros(0, dtype=np.float64)
        ids = np.array([x[0] for x in items], dtype=np.int64)
        starts = np.zeros(len(items) + 1, dtype=np.int64)
        if items:
            np.cumsum([len(x[1]) for x in items], out=starts[1:])
        return cls(fn, ft, ids, starts)

    @classmethod
    def empty(cls) -> "FrameIndex":
        return cls.from_chunks([])

    # --- summary -------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame_number)

    @property
    def frame_count(self) -> int:
        return len(self.frame_number)

    @property
    def chunks(self) -> list[int]:
        """Chunk numbers that hold at least one frame."""
        return [int(c) for c in self.chunk_ids]

    def _extreme(self, order, values, first: bool, n_valid: int | None = None):
        if not len(values):
            return np.nan
        if order is None:
            return values[0] if first else values[-1]
        n = len(values) if n_valid is None else n_valid
        if n == 0:
            return np.nan
        return values[order[0] if first else order[n - 1]]

    @property
    def frame_min(self) -> float:
        return float(self._extreme(self.number_order, self.frame_number, True))

    @property
    def frame_max(self) -> float:
        return float(self._extreme(self.number_order, self.frame_number, False))

    @property
    def frame_time_min(self) -> float:
        return float(self._extreme(self.time_order, self.frame_time, True, self._n_valid_times))

    @property
    def frame_time_max(self) -> float:
        return float(self._extreme(self.time_order, self.frame_time, False, self._n_valid_times))

    # --- lookups -------------------------------------------------------
    def locate(self, frame_index) -> tuple[int, int]:
        """``(chunk_n, position)`` of a frame index; FrameNotFoundError if out of range."""
        i = as_int_scalar(frame_index, "frame_index")
        if i is None or i < 0 or i >= len(self.frame_number):
            raise FrameNotFoundError(f"frame_index {frame_index!r} not in store (0 .. {len(self.frame_number) - 1})")
        c = int(np.searchsorted(self.chunk_starts, i, side="right")) - 1
        return int(self.chunk_ids[c]), i - int(self.chunk_starts[c])

    def chunk_range(self, chunk_n: int) -> tuple[int, int]:
        """``[start, stop)`` frame indices of a chunk (empty range if the chunk holds no frames)."""
        c = int(np.searchsorted(self.chunk_ids, chunk_n))
        if c >= len(self.chunk_ids) or int(self.chunk_ids[c]) != int(chunk_n):
            return 0, 0
        return int(self.chunk_starts[c]), int(self.chunk_starts[c + 1])

    def frame_index_of(self, chunk_n: int, position: int) -> int:
        start, stop = self.chunk_range(chunk_n)
        if not 0 <= position < stop - start:
            raise FrameNotFoundError(f"chunk {chunk_n} has no frame at position {position}")
        return start + position

    def find_number(self, frame_number) -> int:
        """Frame index of the first frame written with *frame_number*, or -1."""
        n = as_int_scalar(frame_number, "frame_number")
        if n is None or not len(self.frame_number):
            return -1
        vals = self.frame_number
        pos = int(np.searchsorted(vals, n, side="left", sorter=self.number_order))
        if pos >= len(vals):
            return -1
        i = pos if self.number_order is None else int(self.number_order[pos])
        return i if int(vals[i]) == n else -1

    def _nearest(self, values, order, n_valid, q) -> int:
        if n_valid == 0:
            raise FrameNotFoundError("store holds no frames to search")
        sorter = None if order is None else order[:n_valid]
        hi = int(np.searchsorted(values, q, side="left", sorter=sorter))

        def at(p):
            return p if order is None else int(order[p])

        cands = []
        if hi < n_valid:
            cands.append(at(hi))  # first (earliest written) of the group >= q
        if hi > 0:
            v_lo = values[at(hi - 1)]
            lo = int(np.searchsorted(values, v_lo, side="left", sorter=sorter))
            cands.append(at(lo))
        best = min(cands, key=lambda i: (abs(float(values[i]) - q), i))
        return best

    def nearest_number(self, frame_number) -> int:
        """Frame index whose frame number is nearest to *frame_number* (ties: earliest written)."""
        q = as_float_scalar(frame_number, "frame_number")
        return self._nearest(self.frame_number, self.number_order, len(self.frame_number), q)

    def nearest_time(self, frame_time) -> int:
        """Frame index whose frame time is nearest to *frame_time* (NaN times never match)."""
        q = as_float_scalar(frame_time, "frame_time")
        return self._nearest(self.frame_time, self.time_order, self._n_valid_times, q)

    def chunk_metadata(self, chunk_n: int) -> dict[str, np.ndarray]:
        start, stop = self.chunk_range(chunk_n)
        return {"frame_number": self.frame_number[start:stop], "frame_time": self.frame_time[start:stop]}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"frame_number": self.frame_number, "frame_time": self.frame_time,
               "chunk_ids": self.chunk_ids, "chunk_starts": self.chunk_starts}
        if self.number_order is not None:
            out["number_order"] = self.number_order
        if self.time_order is not None:
            out["time_order"] = self.time_order
        return out

