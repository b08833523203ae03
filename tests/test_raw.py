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


@pytest.mark.parametrize("axis_order", ["thw", "twh", "hwt", "thwc", "tchw"])
def test_foreign_raw_video_any_axis_order(tmp_path, axis_order):
    color = "c" in axis_order
    shape = (48, 64, 3) if color else (48, 64)
    frames = np.stack([make_frame(7 + i, shape) for i in range(12)])  # (t, h, w[, c])
    layout = np.transpose(frames, ["thwc".index(a) for a in axis_order])
    header = b"HDR" * 100
    path = tmp_path / "video.bin"
    path.write_bytes(header + np.ascontiguousarray(layout).tobytes() + b"\x01\x02")  # trailing partial frame
    v = imgstore.open_raw_video(str(path), frame_shape=shape, dtype=np.uint8, offset=len(header),
                                axis_order=axis_order, sampling_frequency=50.0)
    assert len(v) == 12 and v.image_shape == shape and v.get_sampling_frequency() == 50.0
    assert np.allclose(v.get_native_timestamps(), np.arange(12) / 50.0)
    assert [read_frame_number(f) for f in v[:]] == list(range(7, 19))
    img, (fn, t) = v.get_image(None, frame_index=5)
    assert fn == 5 and t == pytest.approx(0.1) and np.array_equal(img, frames[5])
    img, (fn, _) = v.get_next_image()
    assert fn == 6 and np.array_equal(img, frames[6])
    assert np.array_equal(v.get_series(2, 4), frames[2:4])
    img, (fn, _) = v.get_nearest_image(0.205)
    assert fn == 10


def test_foreign_raw_video_timestamps_and_errors(tmp_path):
    path = tmp_path / "v.raw"
    np.zeros((5, 4, 6), np.uint16).tofile(path)
    v = imgstore.open_raw_video(str(path), frame_shape=(4, 6), dtype=np.uint16, timestamps=[0, 1, 2, 4, 8])
    assert v.frame_count == 5 and v.dtype == np.uint16
    assert v.get_nearest_image(5.9)[1] == (3, 4.0)
    with pytest.raises(imgstore.ImgStoreError, match="v.raw"):
        imgstore.open_raw_video(str(path), frame_shape=(4, 6), dtype=np.uint16, timestamps=[0, 1])
    with pytest.raises(imgstore.ImgStoreError, match="axis_order"):
        imgstore.open_raw_video(str(path), frame_shape=(4, 6), dtype=np.uint16, axis_order="thx")
    with pytest.raises(imgstore.ImgStoreError, match="complete frames"):
        imgstore.open_raw_video(str(path), frame_shape=(4, 6), dtype=np.uint16, n_frames=6)
