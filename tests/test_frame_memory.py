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
    import gc

    gc.collect()  # stores other tests left open give back what they kept
    assert frame_memory._kept == 0
    pixels.pool_clear()
    big = [frame_memory.empty((1 << 20,)) for _ in range(200)]
    del big
    st = pixels.pool_stats()
    assert st["bytes"] <= frame_memory.BASE_BYTES and st["blocks"] == frame_memory.BASE_BYTES >> 20


def test_kept_room_holds_more_until_released():
    import gc

    gc.collect()
    assert frame_memory._kept == 0
    pixels.pool_clear()
    frame_memory.keep(100 << 20)
    try:
        big = [frame_memory.empty((1 << 20,)) for _ in range(150)]
        del big
        assert pixels.pool_stats()["blocks"] == 150  # all of them fit in 96 + 100 MB
        again = [frame_memory.empty((1 << 20,)) for _ in range(150)]
        assert pixels.pool_stats()["blocks"] == 0
        del again
    finally:
        frame_memory.release(100 << 20)
    st = pixels.pool_stats()
    assert st["blocks"] == 96 and st["bytes"] == 96 << 20  # trimmed back at once
    pixels.pool_clear()
    assert pixels.pool_stats()["blocks"] == 0 and pixels.pool_stats()["bytes"] == 0


@pytest.mark.skipif(frame_memory._block is None, reason="imgstore._pixels is not built")
def test_frames_start_on_a_cache_line():
    """A copy into memory 16 bytes past a cache line ran 2-3x slower here (docs/design/pixels.md)."""
    held = [frame_memory.empty(n) for n in (1 << 16, 921_728, 1_310_848, 3 * 1_310_720 + 7)]
    assert [a.ctypes.data % 64 for a in held] == [0] * len(held)
    del held
    assert [frame_memory.empty(n).ctypes.data % 64 for n in (921_728, 1_310_848)] == [0, 0]  # reused too


def test_frames_of_a_new_size_take_the_place_of_old_ones():
    """A cache full of another store's frame size must not keep every frame of this one out."""
    import gc

    gc.collect()
    assert frame_memory._kept == 0
    pixels.pool_clear()
    small = [frame_memory.empty((480, 640, 3)) for _ in range(frame_memory.BASE_BYTES // (480 * 640 * 3) + 8)]
    del small
    assert pixels.pool_stats()["bytes"] > frame_memory.BASE_BYTES - 480 * 640 * 3  # full of them
    frame_memory.empty((1024, 1280))  # a miss: its memory is freed at once, and kept
    hits = pixels.pool_stats()["hits"]
    for _ in range(20):
        frame_memory.empty((1024, 1280))
    assert pixels.pool_stats()["hits"] - hits == 20
    assert pixels.pool_stats()["bytes"] <= frame_memory.BASE_BYTES
