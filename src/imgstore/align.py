"""Frames of several stores (e.g. cameras on one trigger) side by side, matched by frame number.

``StoreAligner(*stores)``, ``extract_common_frames(policy)``, ``iter_imgs()`` as in the original;
a frame number missing from a store is handled by the policy:

* ``MISSING_POLICY_DROP`` (``'drop'``): only the frame numbers every store has;
* ``MISSING_POLICY_HOLD`` (``'zoh'``): every frame number; a store missing one repeats its
  previous image (black before its first);
* ``MISSING_POLICY_BLACK`` (``'black'``): every frame number; a black image where one is missing.

A store holding a frame number more than once contributes its first written frame with that
number (as ``get_image(frame_number)`` does).
"""

from __future__ import annotations

import functools
import logging
from typing import Iterator, Sequence

import numpy as np

MISSING_POLICY_DROP = "drop"
MISSING_POLICY_HOLD = "zoh"
MISSING_POLICY_BLACK = "black"
MISSING_POLICIES = (MISSING_POLICY_DROP, MISSING_POLICY_HOLD, MISSING_POLICY_BLACK)

log = logging.getLogger("imgstore.align")


def align_frame_numbers(frame_numbers: Sequence[np.ndarray], policy: str) -> tuple[np.ndarray, np.ndarray]:
    """``(frame numbers, frame indices)`` matching the frames of several stores.

    *frame_numbers* holds each store's frame numbers in store order. The result's frame numbers
    are sorted and unique: those all stores have (``'drop'``) or those any store has (otherwise);
    ``frame indices[s, k]`` is the frame index in store *s* of frame number *k*, -1 where it has none.
    """
    if policy not in MISSING_POLICIES:
        raise ValueError(f"unknown missing-frame policy {policy!r} (use one of {MISSING_POLICIES})")
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
        self._fns = np.zeros(0, np.int64)
        self._indices = np.zeros((len(stores), 0), np.int64)

    def extract_common_frames(self, policy: str) -> np.ndarray:
        """Choose the frame numbers to iterate over under *policy* (see the module docstring); returns them."""
        self._fns, self._indices = align_frame_numbers([s.frame_numbers for s in self._stores], policy)
        self._missing_policy = policy
        return self._fns

    def iter_imgs(self, return_times: bool = False) -> Iterator[tuple]:
        """``(frame_number, [image per store])`` for each chosen frame number, in increasing order;
        ``(frame_number, images, [frame_time per store])`` with *return_times* (NaN where missing)."""
        if self._missing_policy is None:
            raise RuntimeError("call extract_common_frames(policy) before iter_imgs()")
        blacks = [np.zeros(self._store_shape, dtype=s.dtype) for s in self._stores]
        held = list(blacks)
        last_read = [None] * len(self._stores)
        for k, fn in enumerate(self._fns.tolist()):
            imgs, times = [], []
            for s, store in enumerate(self._stores):
                i = int(self._indices[s, k])
                if i < 0:
                    log.debug("store %d has no frame %d", s, fn)
                    imgs.append(held[s] if self._missing_policy == MISSING_POLICY_HOLD else blacks[s])
                    times.append(float("nan"))
                    continue
                img, (_, t) = _read(store, i, last_read[s])
                last_read[s] = i
                held[s] = img
                imgs.append(img)
                times.append(t)
            yield (fn, imgs, times) if return_times else (fn, imgs)


def _read(store, frame_index: int, previous: int | None):
    """The frame at *frame_index*: read on sequentially when it follows the previous one read."""
    if previous is not None and frame_index == previous + 1:
        img, meta = store.get_next_image()
        if meta[0] == store.frame_numbers[frame_index]:  # else something else moved the store's cursor
            return img, meta
    return store.get_image(None, frame_index=frame_index)
