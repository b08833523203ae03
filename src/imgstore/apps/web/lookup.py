"""Where a frame is: frame index from an index, a frame number or a frame time, and across stores.

A frame number names the first frame written with it (as ``get_image`` does);
a time names the frame nearest to it (none when it is more than two frame intervals
before the first frame or after the last). Aligning another store to a frame of the
leading store finds its frame with the same number, or its frame nearest in time
(none when that one is more than two of its frame intervals away).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import ImgStoreError
from .gaps import TIME_GAP_INTERVALS

ALIGN_MODES = ("frame_number", "frame_time")


@dataclass(frozen=True)
class Target:
    """A frame asked for: ``by`` is 'index', 'number' or 'time'."""

    by: str
    value: float
    exact: bool = True


class Locator:
    """Frame lookups in one store's index (call it from the thread that owns the store)."""

    def __init__(self, store, interval: float) -> None:
        self._store = store
        self._index = getattr(store, "_index", None)  # the store's O(log n) lookups; the public API has none
        self.interval = interval

    @property
    def frame_count(self) -> int:
        return int(self._store.frame_count)

    def find(self, target: Target) -> int:
        """Frame index of *target*, -1 if the store has no such frame."""
        n = self.frame_count
        if target.by == "index":
            i = int(target.value)
            return i if 0 <= i < n else -1
        if not n:
            return -1
        if target.by == "number":
            return self._by_number(int(target.value), target.exact)
        i = self._by_time(float(target.value))
        return i if i >= 0 and self._near(i, float(target.value)) else -1

    def _near(self, i: int, t: float) -> bool:
        """True if frame *i* is within two frame intervals of *t* or *t* lies inside the recording."""
        s = self._store
        if s.frame_time_min <= t <= s.frame_time_max:
            return True
        tol = TIME_GAP_INTERVALS * self.interval if math.isfinite(self.interval) else 0.0
        return abs(float(np.asarray(s.frame_times)[i]) - t) <= tol

    def _by_number(self, number: int, exact: bool) -> int:
        if self._index is not None:
            try:
                return int(self._index.find_number(number) if exact else self._index.nearest_number(number))
            except (ImgStoreError, ValueError):
                return -1
        fns = np.asarray(self._store.frame_numbers)
        hits = np.flatnonzero(fns == number)
        if len(hits) or exact:
            return int(hits[0]) if len(hits) else -1
        return int(np.argmin(np.abs(fns.astype(np.float64) - number)))

    def _by_time(self, t: float) -> int:
        if self._index is not None:
            try:
                return int(self._index.nearest_time(t))
            except (ImgStoreError, ValueError):
                return -1
        d = np.abs(np.asarray(self._store.frame_times, dtype=np.float64) - t)
        return -1 if not np.isfinite(d).any() else int(np.nanargmin(d))

    def numbers(self, indices: np.ndarray) -> np.ndarray:
        return np.asarray(self._store.frame_numbers)[indices].astype(np.int64)

    def times(self, indices: np.ndarray) -> np.ndarray:
        return np.asarray(self._store.frame_times)[indices].astype(np.float64)

    def align_numbers(self, numbers: np.ndarray) -> list[int]:
        """This store's frame index of each frame number, -1 where it has none."""
        return [self._by_number(int(n), True) for n in numbers]

    def align_times(self, times: np.ndarray) -> list[int]:
        """This store's frame nearest each time, -1 where none is within two frame intervals."""
        tol = TIME_GAP_INTERVALS * self.interval if math.isfinite(self.interval) else math.inf
        all_times = np.asarray(self._store.frame_times)
        out = []
        for t in times:
            j = self._by_time(float(t)) if math.isfinite(t) else -1
            out.append(j if j >= 0 and abs(float(all_times[j]) - t) <= tol else -1)
        return out
