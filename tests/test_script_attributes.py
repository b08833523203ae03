"""Store attributes published scripts reach for, beyond the documented API (the original's private ones)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import decode_frame, make_frame

from imgstore import new_for_filename, new_for_format
from imgstore.errors import CorruptChunkError

SHAPE = (48, 64)


def _write(path, fmt="npy", n=7, chunksize=3, extra=True):
    s = new_for_format(fmt, mode="w", basedir=str(path), imgshape=SHAPE, imgdtype=np.uint8, chunksize=chunksize,
                       metadata={"genotype": "wt"})
    for i in range(n):
        s.add_image(make_frame(i, SHAPE), i, 10.0 + i)
        if extra:
            s.add_extra_data(temperature=20.0 + i)
    s.close()
    return str(path)


def test_metadata_is_the_store_section(tmp_path):
    store = new_for_filename(_write(tmp_path / "s"))
    md = store._metadata
    assert md["class"] == "DirectoryImgStore" and md["format"] == "npy" and md["chunksize"] == 3
    assert md["imgshape"] == [48, 64] and md["uuid"] == store.uuid and "genotype" not in md


def test_index_chunks_and_chunk_metadata(tmp_path):
    store = new_for_filename(_write(tmp_path / "s"))
    chunks = list(store._index.chunks)
    assert chunks == [0, 1, 2]
    per_chunk = {c: store._get_chunk_metadata(c) for c in chunks}
    assert per_chunk[2] == {"frame_number": [6], "frame_time": [16.0]}
    assert sum((md["frame_number"] for md in per_chunk.values()), []) == list(range(7))
    img, (fn, t) = store.get_nearest_image(14.2)
    assert (fn, t) == (4, 14.0) and decode_frame(img) == 4
    chunk_n, pos = store._index.find_chunk_nearest("frame_time", 14.2)
    assert store._get_chunk_metadata(chunk_n)["frame_number"][pos] == 4


@pytest.mark.parametrize("fmt,ext", [("npy", None), ("mjpeg/avi", ".avi")])
def test_chunk_paths(tmp_path, fmt, ext):
    path = _write(tmp_path / "s", fmt=fmt)
    store = new_for_filename(path)
    pairs = list(store._chunk_n_and_chunk_paths)
    assert [c for c, _ in pairs] == [0, 1, 2]
    for c, base in pairs:
        if ext is None:
            assert base == os.path.join(path, "%06d" % c, "index")
        else:
            assert base == os.path.join(path, "%06d" % c) and os.path.isfile(base + ext)
        assert os.path.isfile(base + ".npz")
    assert list(store._iter_chunk_n_and_chunk_paths()) == pairs
    assert store._basedir == path and store._chunksize == 3 and tuple(store._imgshape) == SHAPE


def test_video_ext_and_chunk_paths(tmp_path):
    path = _write(tmp_path / "s", fmt="mjpeg/avi")
    store = new_for_filename(path)
    assert store._ext == ".avi"
    assert store._chunk_paths == [os.path.join(path, "%06d.avi" % c) for c in (0, 1, 2)]


def test_current_chunk_after_a_read(tmp_path):
    store = new_for_filename(_write(tmp_path / "s"))
    assert (store._chunk_n, store._chunk_current_frame_idx) == (0, -1)
    store.get_image(4)
    assert (store._chunk_n, store._chunk_current_frame_idx) == (1, 1)
    store.get_next_image()
    assert (store._chunk_n, store._chunk_current_frame_idx) == (1, 2)


def test_extra_data_ignoring_corrupt_chunks(tmp_path):
    path = _write(tmp_path / "s")
    df = new_for_filename(path).get_extra_data()
    assert df["temperature"].tolist() == [20.0 + i for i in range(7)]
    with open(os.path.join(path, "000001", "index.extra.json"), "wb") as f:
        f.write(b"this is not json")
    store = new_for_filename(path)
    with pytest.raises((CorruptChunkError, ValueError)):
        store.get_extra_data()
    df = store.get_extra_data(ignore_corrupt_chunks=True)
    assert df["temperature"].tolist() == [20.0, 21.0, 22.0, 26.0]
    assert df["frame_index"].tolist() == [0, 1, 2, 6]


def test_no_extra_data_is_none(tmp_path):
    store = new_for_filename(_write(tmp_path / "s", extra=False))
    assert not store.has_extra_data
    assert store.get_extra_data(ignore_corrupt_chunks=True) is None
