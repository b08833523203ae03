"""Arrays for frames, on memory that is used again once their frames are freed.

Memory touched for the first time costs more here than decoding a frame: glibc hands a freed
frame-sized block back to the kernel and the next frame faults its pages in again (~1 ms a 640x480
BGR frame, 2026-12-03; docs/design/pixels.md). :func:`empty` takes the memory of a frame from a small
cache of freed frames (``imgstore._pixels.block``); without the compiled extension it is ``np.empty``.
The arrays are plain writable ndarrays; their ``base`` is the block, which lives as long as they do.
"""

from __future__ import annotations

import threading

import numpy as np

try:
    from ._pixels import block as _block, pool_limit as _pool_limit
except ImportError:  # pragma: no cover - an install that could not compile it
    _block = _pool_limit = None

#: below this, numpy's own allocator is as good (small blocks stay in glibc's heap)
_MIN_BYTES = 1 << 16
#: bytes of freed frames kept for the next ones, besides what :func:`keep` adds
BASE_BYTES = 96 << 20
_kept = 0
_kept_lock = threading.Lock()


def keep(nbytes: int) -> None:
    """Keep *nbytes* more of freed frames for the next ones (a reader holds that many at once and frees
    them as fast as it makes new ones) until :func:`release`."""
    _change_kept(int(nbytes))


def release(nbytes: int) -> None:
    """Undo :func:`keep`; freed frames beyond what is still kept go back to the system."""
    _change_kept(-int(nbytes))


def _change_kept(delta: int) -> None:
    global _kept
    with _kept_lock:
        _kept = max(0, _kept + delta)
        if _pool_limit is not None:
            _pool_limit(BASE_BYTES + _kept)


def empty(shape, dtype=np.uint8) -> np.ndarray:
    """An uninitialised C-contiguous array of *shape* and *dtype*, as ``np.empty``."""
    dt = np.dtype(dtype)
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(x) for x in shape)
    n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if _block is None or n < _MIN_BYTES or dt.hasobject:
        return np.empty(shape, dt)
    return np.frombuffer(_block(n), dt, n // dt.itemsize).reshape(shape)
