"""Frames of several stores (e.g. cameras on one trigger, or cameras at different rates) side by side.

``align_stores(stores, by='frame_number' | 'frame_time', tolerance=None, missing='drop' | 'hold' | 'black')``
returns an :class:`AlignedStores`: it iterates ``(key, images, metadata)`` with one image and one
``(frame_number, frame_time)`` per store, reading every store sequentially (each frame decoded
once), and gives ``.table`` (a pandas DataFrame of the frame index each store contributes to each
row, -1 where it has none) and ``[k]`` for the k-th row.

* ``by='frame_number'``: one row per frame number (sorted); a store holding a frame number more
  than once contributes its first written frame with it. ``'drop'`` keeps the frame numbers every
  store has, ``'hold'`` and ``'black'`` every frame number any store has.
* ``by='frame_time'``: one row per frame of the first store (its clock, in store order); each
  other store contributes its frame nearest in time (ties: the earlier time, then the earliest
  written frame) if that is within *tolerance* seconds (default: half that store's median
  frame interval). ``'drop'`` keeps the rows every store has a frame for.

Where a store has no frame for a row, ``'hold'`` repeats the frame it gave the row before (with
that frame's metadata; black and ``(None, nan)`` before its first), ``'black'`` gives a black
image and ``(None, nan)``.

``StoreAligner(*stores)``, ``extract_common_frames(policy)``, ``iter_imgs()`` are the original's
API on top of the same machinery: ``MISSING_POLICY_DROP`` (``'drop'``), ``MISSING_POLICY_HOLD``
(``'zoh'``: the previous image, time NaN), ``MISSING_POLICY_BLACK`` (``'black'``).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import queue
import threading
from typing import Any, Iterator, Sequence

import numpy as np

MISSING_POLICY_DROP = "drop"
MISSING_POLICY_HOLD = "zoh"
MISSING_POLICY_BLACK = "black"
MISSING_POLICIES = (MISSING_POLICY_DROP, MISSING_POLICY_HOLD, MISSING_POLICY_BLACK)
#: align_stores' names for the missing-frame policies (``'zoh'`` is accepted for ``'hold'``)
MISSING = ("drop", "hold", "black")
ALIGN_BY = ("frame_number", "frame_time")

log = logging.getLogger("imgstore.align")

#: frames from this size on are read on a thread per store while iterating (two 1280x1024 H.264 stores:
#: 1.14x the rate of reading them one after the other, against 0.8-0.95x on the caller's thread alone);
#: smaller ones on the caller's thread (2,000 rows of two 48x64 npy stores: 0.55 s, against 1.04 s with
#: threads handing every frame over); bench/align.py, 2026-12-02
READ_AHEAD_MIN_BYTES = 1 << 16


# ------------------------------------------------------------------ the alignment (numpy only)
def align_frame_numbers(frame_numbers: Sequence[np.ndarray], policy: str) -> tuple[np.ndarray, np.ndarray]:
    """``(frame numbers, frame indices)`` matching the frames of several stores.

    *frame_numbers* holds each store's frame numbers in store order. The result's frame numbers
    are sorted and unique: those all stores have (``'drop'``) or those any store has (otherwise);
    ``frame indices[s, k]`` is the frame index in store *s* of frame number *k*, -1 where it has none.
    """
    if policy == "hold":
        policy = MISSING_POLICY_HOLD
    if policy not in MISSING_POLICIES:
        raise ValueError(f"unknown missing-frame policy {policy!r} (use one of {MISSING})")
    firsts = []  # per store: its unique frame numbers (sorted) and the index of the first frame with each
    for fns in frame_numbers:
        uniq, first = np.unique(np.asarray(fns, dtype=np.int64), return_index=True)
        firsts.append((uniq, first))
    if not firsts:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.int64)
    combine = np.intersect1d if policy == MISSING_POLICY_DROP else np.union1d
    wanted = functools.reduce(combine, (u for u, _ in firsts))
    indices = np.full((len(firsts), len(wanted)), -1, dtype=np.int64)
    for s, (uniq, first) in enumerate(firsts):
        if not len(uniq):
            continue
        pos = np.minimum(np.searchsorted(uniq, wanted), len(uniq) - 1)
        found = uniq[pos] == wanted
        indices[s, found] = first[pos[found]]
    return wanted, indices


def default_time_tolerance(frame_times: np.ndarray) -> float:
    """Half the median interval between a store's successive frames (inf with fewer than two)."""
    t = np.asarray(frame_times, dtype=np.float64)
    dt = np.diff(t[np.isfinite(t)])
    dt = dt[dt > 0]
    return float(np.median(dt)) / 2.0 if len(dt) else math.inf


def nearest_in_time(times: np.ndarray, targets: np.ndarray, tolerance: float) -> np.ndarray:
    """For each target time, the index of the frame of *times* nearest to it within *tolerance*, else -1.

    Ties go to the earlier time, then to the earliest written frame; NaN times never match.
    """
    times = np.asarray(times, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    out = np.full(len(targets), -1, dtype=np.int64)
    valid = np.flatnonzero(np.isfinite(times))
    if not len(valid) or not len(targets):
        return out
    order = valid[np.argsort(times[valid], kind="stable")]
    st = times[order]
    pos = np.searchsorted(st, targets, side="left")  # first frame at or after the target
    right = np.minimum(pos, len(st) - 1)
    left = np.searchsorted(st, st[np.maximum(pos - 1, 0)], side="left")  # first written of the run before
    d_right = np.where(pos < len(st), st[right] - targets, np.inf)
    d_left = np.where(pos > 0, targets - st[left], np.inf)
    take_right = d_right < d_left
    best = np.where(take_right, right, left)
    dist = np.where(take_right, d_right, d_left)
    ok = np.isfinite(targets) & (dist <= tolerance)
    out[ok] = order[best[ok]]
    return out


def align_frame_times(frame_times: Sequence[np.ndarray], tolerance: float | None = None,
                      missing: str = "drop") -> tuple[np.ndarray, np.ndarray]:
    """``(times, frame indices)``: the rows of ``align_stores(..., by='frame_time')`` (see the module docstring)."""
    if not len(frame_times):
        return np.zeros(0, np.float64), np.zeros((0, 0), np.int64)
    keys = np.asarray(frame_times[0], dtype=np.float64)
    indices = np.full((len(frame_times), len(keys)), -1, dtype=np.int64)
    indices[0] = np.arange(len(keys))
    for s, times in enumerate(frame_times[1:], start=1):
        tol = default_time_tolerance(times) if tolerance is None else float(tolerance)
        indices[s] = nearest_in_time(times, keys, tol)
    if missing == "drop":
        keep = (indices >= 0).all(axis=0)
        keys, indices = keys[keep], indices[:, keep]
    return keys, indices


# ------------------------------------------------------------------ reading
class FrameCursor:
    """Reads one store's frames in the order asked: reads on where a frame follows the last one read,
    reuses the last one when asked again, seeks otherwise."""

    def __init__(self, store) -> None:
        self.store = store
        self.last = -2
        self.img: np.ndarray | None = None
        self.meta: tuple | None = None

    def read(self, i: int) -> tuple[np.ndarray, tuple]:
        if i == self.last:
            return self.img, self.meta
        if i == self.last + 1:
            img, meta = self.store.get_next_image()
            if meta[0] != self.store.frame_numbers[i]:  # something else moved the store's cursor
                img, meta = self.store.get_image(None, frame_index=i)
        else:
            img, meta = self.store.get_image(None, frame_index=i)
        self.last, self.img, self.meta = i, img, meta
        return img, meta


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class _ReadAhead:
    """Reads one store's frames for a sequence of rows on a thread of its own, a few rows ahead, so that
    several stores decode at once (PyAV and numpy let go of the GIL while they work)."""

    def __init__(self, cursor: FrameCursor, indices: np.ndarray, depth: int = 4) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(cursor, indices.tolist()), daemon=True,
                                        name="imgstore-align-read")
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, cursor: FrameCursor, indices: list[int]) -> None:
        try:
            for i in indices:
                if not self._put(cursor.read(i) if i >= 0 else None):
                    return
            self._put(_END)
        except BaseException as e:  # noqa: BLE001 - raised in the consumer
            self._put(_Failed(e))

    def get(self):
        """The next row's ``(image, metadata)``, or None where the store has no frame."""
        item = self._q.get()
        if isinstance(item, _Failed):
            raise item.error
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _store_names(stores) -> list[str]:
    names: list[str] = []
    for s, store in enumerate(stores):
        path = str(getattr(store, "filename", "") or "").rstrip("/\\")
        base = os.path.basename(path[:-len("metadata.yaml")].rstrip("/\\") if path.endswith("metadata.yaml")
                                else path) or f"store{s}"
        name, k = base, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def _hold_filled(indices: np.ndarray) -> np.ndarray:
    """Each -1 replaced by the store's last frame index before it in the row order (-1 before its first)."""
    rows = np.arange(indices.shape[1])
    out = np.empty_like(indices)
    for s, idx in enumerate(indices):
        last = np.maximum.accumulate(np.where(idx >= 0, rows, -1))
        out[s] = np.where(last >= 0, idx[np.maximum(last, 0)], -1)
    return out


class AlignedStores:
    """Rows of frames of several stores (made by :func:`align_stores`); see the module docstring.

    Iterating yields ``(key, images, metadata)``: *key* is the row's frame number or frame time,
    *images* one array per store, *metadata* one ``(frame_number, frame_time)`` per store. Images
    may be shared between rows (a held frame, black images): copy one before changing it. While
    an iteration runs, each store is read on a thread of its own, a few rows ahead: leave the
    stores (and ``[k]``) alone until it ends.
    """

    def __init__(self, stores: Sequence[Any], keys: np.ndarray, indices: np.ndarray, by: str = "frame_number",
                 missing: str = "drop") -> None:
        if missing == "zoh":
            missing = "hold"
        if missing not in MISSING:
            raise ValueError(f"unknown missing-frame policy {missing!r} (use one of {MISSING})")
        self.stores = list(stores)
        self.by = by
        self.missing = missing
        self.keys = np.asarray(keys)
        self.indices = np.asarray(indices, dtype=np.int64).reshape(len(self.stores), len(self.keys))
        self._read_indices = _hold_filled(self.indices) if missing == "hold" else self.indices
        self._cursors = [FrameCursor(s) for s in self.stores]
        self._blacks = [np.zeros(tuple(s.image_shape), dtype=s.dtype) for s in self.stores]

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def names(self) -> list[str]:
        """One name per store (its folder's name, made unique): the columns of :attr:`table`."""
        return _store_names(self.stores)

    @property
    def table(self):
        """A pandas DataFrame: one row per aligned key (the index), per store the frame index it
        contributes (-1 where it has none)."""
        import pandas as pd

        return pd.DataFrame({n: self.indices[s] for s, n in enumerate(self.names)},
                            index=pd.Index(self.keys, name=self.by))

    def subset(self, rows) -> "AlignedStores":
        """The same alignment restricted to these rows (positions, a slice or a boolean mask), in that order."""
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows)
        sub = AlignedStores(self.stores, self.keys[rows], self.indices[:, rows], self.by, self.missing)
        if self.missing == "hold":
            sub._read_indices = self._read_indices[:, rows]  # held across the rows left out too
        return sub

    def _key(self, k: int):
        v = self.keys[k]
        return int(v) if self.by == "frame_number" else float(v)

    def _row(self, k: int) -> tuple[Any, list[np.ndarray], list[tuple]]:
        imgs, metas = [], []
        for s, cursor in enumerate(self._cursors):
            i = int(self._read_indices[s, k])
            if i < 0:
                imgs.append(self._blacks[s])
                metas.append((None, float("nan")))
                continue
            img, meta = cursor.read(i)
            imgs.append(img)
            metas.append(meta)
        return self._key(k), imgs, metas

    def __getitem__(self, k: int) -> tuple[Any, list[np.ndarray], list[tuple]]:
        """Row *k* (0 ... len-1; negative from the end)."""
        n = len(self)
        k = int(k)
        if not -n <= k < n:
            raise IndexError(f"row {k} out of range: {n} aligned rows")
        return self._row(k % n)

    def __iter__(self) -> Iterator[tuple[Any, list[np.ndarray], list[tuple]]]:
        if len(self.stores) < 2 or max(b.nbytes for b in self._blacks) < READ_AHEAD_MIN_BYTES:
            for k in range(len(self)):
                yield self._row(k)
            return
        readers = [_ReadAhead(c, self._read_indices[s]) for s, c in enumerate(self._cursors)]
        try:
            for k in range(len(self)):
                imgs, metas = [], []
                for s, reader in enumerate(readers):
                    item = reader.get()
                    img, meta = (self._blacks[s], (None, float("nan"))) if item is None else item
                    imgs.append(img)
                    metas.append(meta)
                yield self._key(k), imgs, metas
        finally:
            for reader in readers:
                reader.close()

    def __repr__(self) -> str:
        return f"<AlignedStores of {len(self.stores)} stores by {self.by}, {len(self)} rows, missing={self.missing!r}>"


def align_stores(stores: Sequence[Any], by: str = "frame_number", tolerance: float | None = None,
                 missing: str = "drop") -> AlignedStores:
    """Align the frames of several stores open for reading (see the module docstring)."""
    stores = list(stores)
    if not stores:
        raise ValueError("align_stores needs at least one store")
    if by not in ALIGN_BY:
        raise ValueError(f"cannot align by {by!r} (use one of {ALIGN_BY})")
    if missing == "zoh":
        missing = "hold"
    if missing not in MISSING:
        raise ValueError(f"unknown missing-frame policy {missing!r} (use one of {MISSING})")
    if by == "frame_number":
        if tolerance:
            raise ValueError("tolerance applies to by='frame_time' only; frame numbers are matched exactly")
        keys, indices = align_frame_numbers([s.frame_numbers for s in stores],
                                            MISSING_POLICY_DROP if missing == "drop" else MISSING_POLICY_BLACK)
    else:
        if tolerance is not None and not tolerance >= 0:
            raise ValueError(f"tolerance must be a number of seconds >= 0, not {tolerance!r}")
        keys, indices = align_frame_times([s.frame_times for s in stores], tolerance, missing)
    return AlignedStores(stores, keys, indices, by, missing)


# ------------------------------------------------------------------ the original's API
class StoreAligner:
    """Iterates over the frames of several stores of one image shape, matched by frame number."""

    MISSING_POLICY_DROP = MISSING_POLICY_DROP
    MISSING_POLICY_HOLD = MISSING_POLICY_HOLD
    MISSING_POLICY_BLACK = MISSING_POLICY_BLACK

    def __init__(self, *stores) -> None:
        if not stores:
            raise ValueError("StoreAligner needs at least one store")
        shapes = {tuple(s.image_shape) for s in stores}
        if len(shapes) != 1:
            raise ValueError(f"stores to align must have one image shape, not {sorted(shapes)}")
        self._stores = stores
        self._store_shape = shapes.pop()
        self._missing_policy: str | None = None
        self._aligned: AlignedStores | None = None

    @property
    def _fns(self) -> np.ndarray:
        return np.zeros(0, np.int64) if self._aligned is None else self._aligned.keys

    def extract_common_frames(self, policy: str) -> np.ndarray:
        """Choose the frame numbers to iterate over under *policy* (see the module docstring); returns them."""
        fns, indices = align_frame_numbers([s.frame_numbers for s in self._stores], policy)
        missing = {MISSING_POLICY_HOLD: "hold", "hold": "hold"}.get(policy, policy)
        self._aligned = AlignedStores(self._stores, fns, indices, "frame_number", missing)
        self._missing_policy = policy
        return fns

    def iter_imgs(self, return_times: bool = False) -> Iterator[tuple]:
        """``(frame_number, [image per store])`` for each chosen frame number, in increasing order;
        ``(frame_number, images, [frame_time per store])`` with *return_times* (NaN where missing)."""
        if self._aligned is None:
            raise RuntimeError("call extract_common_frames(policy) before iter_imgs()")
        indices = self._aligned.indices
        for k, (fn, imgs, metas) in enumerate(self._aligned):
            if return_times:
                times = [m[1] if indices[s, k] >= 0 else float("nan") for s, m in enumerate(metas)]
                yield fn, imgs, times
            else:
                yield fn, imgs
