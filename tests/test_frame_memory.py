"""frame_memory.empty: arrays on memory used again, never shared by two live arrays."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from imgstore import frame_memory

pixels = pytest.importorskip("imgstore._pixels")


def test_plain_writable_arrays():
    a = frame_memory.empty((480, 640, 3))
    assert a.shape == (480, 640, 3) and a.dtype == np.uint8 and a.flags.c_contiguous and a.flags.writeable
    b = frame_memory.empty((100, 1000), np.uint16)
    assert b.dtype == np.uint16 and b.nbytes == 200000
    a[...] = 7
    assert np.array_equal(pickle.loads(pickle.dumps(a)), a)
    assert frame_memory.empty(10).base is None  # small arrays: numpy's own


def test_live_arrays_never_share_memory_and_freed_memory_comes_back():
    pixels.pool_clear()
    live = [frame_memory.empty((256, 1024)) for _ in range(10)]
    for i, a in enumerate(live):
        a[...] = i
    assert all(not np.shares_memory(a, b) for i, a in enumerate(live) for b in live[i + 1:])
    assert [int(a[0, 0]) for a in live] == list(range(10))
    hits = pixels.pool_stats()["hits"]
    del live, a
    again = [frame_memory.empty((256, 1024)) for _ in range(10)]
    assert pixels.pool_stats()["hits"] - hits == 10
    assert all(not np.shares_memory(a, b) for i, a in enumerate(again) for b in again[i + 1:])


def test_a_view_keeps_its_block():
    a = frame_memory.empty((512, 512))
    a[...] = 3
    v = a[10:20]
    del a
    frame_memory.empty((512, 512))[...] = 9  # another frame of that size, while the view lives
    assert (v == 3).all()


def test_the_cache_is_bounded():
    pixels.pool_clear()
    big = [frame_memory.empty((1 << 20,)) for _ in range(200)]
    del big
    st = pixels.pool_stats()
    assert st["blocks"] <= 64 and st["bytes"] <= 96 << 20


@pytest.mark.skipif(frame_memory._block is None, reason="imgstore._pixels is not built")
def test_frames_start_on_a_cache_line():
    """A copy into memory 16 bytes past a cache line ran 2-3x slower here (docs/design/pixels.md)."""
    held = [frame_memory.empty(n) for n in (1 << 16, 921_728, 1_310_848, 3 * 1_310_720 + 7)]
    assert [a.ctypes.data % 64 for a in held] == [0] * len(held)
    del held
    assert [frame_memory.empty(n).ctypes.data % 64 for n in (921_728, 1_310_848)] == [0, 0]  # reused too
