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


#: entries per coarse step: one 4 KiB page of int64/float64
COARSE_STEP = 512


class SortedColumn:
    """One column (frame numbers or times) searchable in O(log n).

    ``sorted`` holds the column's values in ascending order (NaN excluded):
    the column itself when it is already non-decreasing, else a sorted copy
    with ``order`` mapping sorted positions back to frame indices (stable, so
    equal values keep write order). ``coarse`` is every COARSE_STEP-th sorted
    value, so a lookup reads one page of a memory-mapped index.
    """

    __slots__ = ("sorted", "order", "coarse", "min", "max")

    def __init__(self, sorted_values: np.ndarray, order: np.ndarray | None, coarse: np.ndarray | None = None):
        self.sorted = sorted_values
        self.order = order
        self.coarse = sorted_values[::COARSE_STEP].copy() if coarse is None else coarse
        #: smallest and largest value (NaN when empty)
        self.min = float(sorted_values[0]) if len(sorted_values) else np.nan
        self.max = float(sorted_values[-1]) if len(sorted_values) else np.nan

    @classmethod
    def build(cls, values: np.ndarray) -> "SortedColumn":
        if values.dtype.kind == "f":
            nan = np.isnan(values)
            if not nan.any() and (len(values) < 2 or bool(np.all(values[1:] >= values[:-1]))):
                return cls(values, None)
            order = np.argsort(values, kind="stable")[: len(values) - int(nan.sum())]
        else:
            if len(values) < 2 or bool(np.all(values[1:] >= values[:-1])):
                return cls(values, None)
            order = np.argsort(values, kind="stable")
        order = order.astype(np.int64 if len(values) >= 2**31 else np.int32)
        return cls(values[order], order)

    def __len__(self) -> int:
        return len(self.sorted)

    def frame_index(self, pos: int) -> int:
        return pos if self.order is None else int(self.order[pos])

    def search(self, q, side: str = "left") -> int:
        """Position of *q* in the sorted values (as ``np.searchsorted``)."""
        k = int(np.searchsorted(self.coarse, q, side=side))
        if k == 0:
            return 0
        lo = (k - 1) * COARSE_STEP
        hi = min(k * COARSE_STEP, len(self.sorted))
        return lo + int(np.searchsorted(self.sorted[lo:hi], q, side=side))

    def first_equal(self, q) -> int:
        """Frame index of the earliest written entry equal to *q*, or -1."""
        pos = self.search(q, "left")
        if pos < len(self.sorted) and self.sorted[pos] == q:
            return self.frame_index(pos)
        return -1

    def nearest(self, q) -> int:
        """Frame index of the entry nearest to *q*; ties go to the earliest written.

        Distances are exact: Python ints for integer columns and integral queries.
        """
        n = len(self.sorted)
        if n == 0:
            raise FrameNotFoundError("store holds no frames to search")
        hi = self.search(q, "left")
        cands = []
        if hi < n:
            cands.append((abs(self.sorted[hi].item() - q), self.frame_index(hi)))
        if hi > 0:
            lo = self.search(self.sorted[hi - 1], "left")  # first of the group just below q
            cands.append((abs(self.sorted[lo].item() - q), self.frame_index(lo)))
        return min(cands)[1]


class FrameIndex:
    """Index of every frame in a store (see module docstring)."""

    __slots__ = ("frame_number", "frame_time", "chunk_ids", "chunk_starts", "numbers", "times")

    def __init__(self, frame_number: np.ndarray, frame_time: np.ndarray, chunk_ids: np.ndarray,
                 chunk_starts: np.ndarray, numbers: SortedColumn | None = None,
                 times: SortedColumn | None = None) -> None:
        self.frame_number = frame_number
        self.frame_time = frame_time
        self.chunk_ids = chunk_ids
        self.chunk_starts = chunk_starts
        self.numbers = numbers if numbers is not None else SortedColumn.build(frame_number)
        self.times = times if times is not None else SortedColumn.build(frame_time)

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
    def builder(cls, capacity: int = 0) -> "FrameIndexBuilder":
        return FrameIndexBuilder(capacity)

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

    @property
    def frame_min(self) -> float:
        return self.numbers.min

    @property
    def frame_max(self) -> float:
        return self.numbers.max

    @property
    def frame_time_min(self) -> float:
        return self.times.min

    @property
    def frame_time_max(self) -> float:
        return self.times.max

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
        return self.numbers.first_equal(n)

    def nearest_number(self, frame_number) -> int:
        """Frame index whose frame number is nearest to *frame_number* (ties: earliest written)."""
        q = as_float_scalar(frame_number, "frame_number")
        n = as_int_scalar(frame_number, "frame_number")
        return self.numbers.nearest(n if n is not None else q)

    def nearest_time(self, frame_time) -> int:
        """Frame index whose frame time is nearest to *frame_time* (NaN times never match)."""
        return self.times.nearest(as_float_scalar(frame_time, "frame_time"))

    def chunk_metadata(self, chunk_n: int) -> dict[str, np.ndarray]:
        start, stop = self.chunk_range(chunk_n)
        return {"frame_number": self.frame_number[start:stop], "frame_time": self.frame_time[start:stop]}

    # --- the original ImgStoreIndex's queries (scripts call them as ``store._index.<name>``) ----
    def get_chunk_metadata(self, chunk_n) -> dict[str, list]:
        """``{'frame_number': [...], 'frame_time': [...]}`` of one chunk as lists (empty if it holds no frames)."""
        return {k: v.tolist() for k, v in self.chunk_metadata(int(chunk_n)).items()}

    def get_all_metadata(self) -> dict[str, list]:
        """``{'frame_number': [...], 'frame_time': [...]}`` of every frame as lists, in store order."""
        return {"frame_number": self.frame_number.tolist(), "frame_time": self.frame_time.tolist()}

    def find_chunk(self, what: str, value) -> tuple[int, int]:
        """``(chunk_n, position in chunk)`` of the first frame whose *what* equals *value*, ``(-1, -1)`` if none.

        *what* is ``'frame_number'``, ``'frame_time'`` or ``'index'`` (the frame index).
        """
        if what == "frame_number":
            i = self.find_number(value)
        elif what == "frame_time":
            i = self.times.first_equal(as_float_scalar(value, "frame_time")) if len(self.frame_time) else -1
        elif what == "index":
            i = as_int_scalar(value, "frame_index")
            i = -1 if i is None or i >= len(self.frame_number) else i
        else:
            raise ValueError(f"find_chunk: what must be 'frame_number', 'frame_time' or 'index', not {what!r}")
        return (-1, -1) if i < 0 else self.locate(i)

    def find_chunk_nearest(self, what: str, value) -> tuple[int, int]:
        """``(chunk_n, position in chunk)`` of the frame whose *what* (``'frame_number'`` or ``'frame_time'``)
        is nearest to *value* (ties: the earliest written)."""
        if what == "frame_number":
            return self.locate(self.nearest_number(value))
        if what == "frame_time":
            return self.locate(self.nearest_time(value))
        raise ValueError(f"find_chunk_nearest: what must be 'frame_number' or 'frame_time', not {what!r}")

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array that defines the index (what the cache file stores)."""
        out = {"frame_number": self.frame_number, "frame_time": self.frame_time,
               "chunk_ids": self.chunk_ids, "chunk_starts": self.chunk_starts}
        for name, col in (("number", self.numbers), ("time", self.times)):
            out[f"{name}_coarse"] = col.coarse
            if col.order is not None:
                out[f"{name}_sorted"] = col.sorted
                out[f"{name}_order"] = col.order
        return out

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "FrameIndex":
        def col(name, values):
            if f"{name}_order" in a:
                return SortedColumn(a[f"{name}_sorted"], a[f"{name}_order"], a[f"{name}_coarse"])
            return SortedColumn(values, None, a[f"{name}_coarse"])

        return cls(a["frame_number"], a["frame_time"], a["chunk_ids"], a["chunk_starts"],
                   col("number", a["frame_number"]), col("time", a["frame_time"]))


class FrameIndexBuilder:
    """Collects chunks (in chunk order) into one pair of arrays without a second full-size copy.

    The arrays are allocated for *capacity* frames up front (untouched pages
    cost no memory) and grow by doubling only if that was too small.
    """

    #: never reserve more than this many frames up front (a hint from damaged metadata can be absurd)
    MAX_RESERVE = 1 << 28

    def __init__(self, capacity: int = 0) -> None:
        cap = min(max(int(capacity), 1024), self.MAX_RESERVE)
        self._fn = np.empty(cap, dtype=np.int64)
        self._ft = np.empty(cap, dtype=np.float64)
        self._n = 0
        self._ids: list[int] = []
        self._starts: list[int] = [0]

    def add(self, chunk_n: int, frame_numbers: np.ndarray, frame_times: np.ndarray) -> None:
        k = len(frame_numbers)
        if not k:
            return
        if self._ids and chunk_n <= self._ids[-1]:
            raise ValueError("chunks must be added in increasing order")
        if self._n + k > len(self._fn):
            cap = max(2 * len(self._fn), self._n + k)
            self._fn = np.resize(self._fn, cap)
            self._ft = np.resize(self._ft, cap)
        self._fn[self._n: self._n + k] = frame_numbers
        self._ft[self._n: self._n + k] = frame_times
        self._n += k
        self._ids.append(int(chunk_n))
        self._starts.append(self._n)

    def build(self) -> FrameIndex:
        n = self._n
        fn, ft = self._fn[:n], self._ft[:n]
        if len(self._fn) > 2 * n + 4096:  # a bad guess: do not keep the unused tail alive
            fn, ft = fn.copy(), ft.copy()
        return FrameIndex(fn, ft, np.array(self._ids, dtype=np.int64), np.array(self._starts, dtype=np.int64))

