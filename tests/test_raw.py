"""The raw memory-mapped chunk format."""

from __future__ import annotations

import os

import numpy as np
import pytest

import imgstore
from imgstore.apps.synthetic import make_frame, read_frame_number
from imgstore.codecs.raw import HEADER_SIZE


def write_raw(path, n=25, shape=(48, 64), dtype=np.uint8, chunksize=10):
    with imgstore.new_for_format("raw", basedir=str(path), imgshape=shape, imgdtype=dtype, chunksize=chunksize) as s:
        for i in range(n):
            s.add_image(make_frame(100 + i, shape, dtype), 100 + i, i / 30.0)
    return str(path)


@pytest.mark.parametrize("shape,dtype", [((48, 64), np.uint8), ((48, 64, 3), np.uint8), ((48, 64), np.uint16)])
def test_round_trip_and_stock_numpy_opens_chunks(tmp_path, shape, dtype):
    path = write_raw(tmp_path / "s", shape=shape, dtype=dtype)
    s = imgstore.new_for_filename(path)
    assert s.frame_count == 25 and s.chunks == [0, 1, 2] and s.dtype == dtype
    for i in np.random.default_rng(0).permutation(25):
        img, (fn, _) = s.get_image(100 + int(i))
        assert fn == 100 + i and np.array_equal(img, make_frame(100 + int(i), shape, dtype))
    arr = np.load(os.path.join(path, "000001", "frames.npy"), mmap_mode="r")
    assert arr.shape == (10,) + shape and arr.dtype == dtype
    assert [read_frame_number(f) for f in arr] == list(range(110, 120))
    with open(os.path.join(path, "000001", "frames.npy"), "rb") as f:
        f.seek(HEADER_SIZE)  # frame data starts on the first page boundary
        assert f.read(arr[0].nbytes) == np.ascontiguousarray(arr[0]).tobytes()


def test_ranges_are_zero_copy_views_and_lists_are_gathered(tmp_path):
    path = write_raw(tmp_path / "s")
    s = imgstore.new_for_filename(path)
    view = s[12:18]
    assert isinstance(view.base, np.memmap) or isinstance(view, np.memmap)
    assert not view.flags.writeable
    assert [read_frame_number(f) for f in view] == list(range(112, 118))
    again = s[12:18]
    assert np.shares_memory(view, again)  # the same long-lived mapping, no copy
    across = s[8:13]  # spans two chunks: a copy
    assert [read_frame_number(f) for f in across] == list(range(108, 113))
    picked = s[[24, 3, 3, 17]]
    assert [read_frame_number(f) for f in picked] == [124, 103, 103, 117]
    img, _ = s.get_image(105)
    assert img.flags.writeable  # get_image hands out a copy the caller may draw on
    img[:] = 0
    assert read_frame_number(s[5]) == 105


def test_truncated_chunk_reads_up_to_its_last_complete_frame(tmp_path):
    path = write_raw(tmp_path / "s", n=10, chunksize=10)
    f = os.path.join(path, "000000", "frames.npy")
    frame_bytes = 48 * 64
    with open(f, "r+b") as fh:
        fh.truncate(HEADER_SIZE + 6 * frame_bytes + 100)  # 6 complete frames and a torn 7th
    s = imgstore.new_for_filename(path)
    assert s.frame_count == 10  # the index still lists 10 ...
    assert [read_frame_number(x) for x in s[:6]] == list(range(100, 106))
    with pytest.raises(imgstore.CorruptChunkError) as e:
        s[7]  # ... but frame 7 is not on disk: a clear error naming the file
    assert "frames.npy" in str(e.value)


def test_raw_chunk_header_mismatch_is_reported(tmp_path):
    path = write_raw(tmp_path / "s", n=3)
    f = os.path.join(path, "000000", "frames.npy")
    with open(f, "r+b") as fh:
        fh.write(b"garbage!")
    s = imgstore.new_for_filename(path)
    with pytest.raises(imgstore.CorruptChunkError) as e:
        s[0]
    assert "frames.npy" in str(e.value)
