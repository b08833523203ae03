"""Arrays for frames, on memory that is used again once their frames are freed.

Memory touched for the first time costs more here than decoding a frame: glibc hands a freed
frame-sized block back to the kernel and the next frame faults its pages in again (~1 ms a 640x480
BGR frame, 2026-12-03; docs/design/pixels.md). :func:`empty` takes the memory of a frame from a small
cache of freed frames (``imgstore._pixels.block``); without the compiled extension it is ``np.empty``.
The arrays are plain writable ndarrays; their ``base`` is the block, which lives as long as they do.
"""

from __future__ import annotations

import numpy as np

try:
    from ._pixels import block as _block
except ImportError:  # pragma: no cover - an install that could not compile it
    _block = None

#: below this, numpy's own allocator is as good (small blocks stay in glibc's heap)
_MIN_BYTES = 1 << 16


def empty(shape, dtype=np.uint8) -> np.ndarray:
    """An uninitialised C-contiguous array of *shape* and *dtype*, as ``np.empty``."""
    dt = np.dtype(dtype)
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(x) for x in shape)
    n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if _block is None or n < _MIN_BYTES or dt.hasobject:
        return np.empty(shape, dt)
    return np.frombuffer(_block(n), dt, n // dt.itemsize).reshape(shape)
