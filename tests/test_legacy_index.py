"""The original's index API: ``imgstore.index.ImgStoreIndex`` and ``store._index.<query>``."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import textwrap

import numpy as np
import pytest

from conftest import decode_frame, make_frame

from imgstore import new_for_filename, new_for_format
from imgstore.constants import STORE_INDEX_FILENAME
from imgstore.errors import CorruptChunkError
from imgstore.index import ImgStoreIndex
from test_original_reads_ours import _clean_env, _original_python

SHAPE = (48, 64)
#: non-monotonic, repeating and wrapping frame numbers
NUMBERS = [5, 6, 7, 1, 2, 3, 3, 9, 0, 4, 8]
TIMES = [100.0 + 0.5 * i for i in range(len(NUMBERS))]
TIMES[4] = 99.0  # times not sorted either


def _write(path, chunksize=3, save_index=True):
    s = new_for_format("npy", mode="w", basedir=str(path), imgshape=SHAPE, imgdtype=np.uint8, chunksize=chunksize)
    for fn, t in zip(NUMBERS, TIMES):
        s.add_image(make_frame(fn, SHAPE), fn, t)
    s.close(save_index=save_index)
    return str(path)


QUERIES = ([("find_chunk", "frame_number", v) for v in (5, 3, 0, 8, 42, 3.0, -1)]
           + [("find_chunk", "frame_time", t) for t in (100.0, 99.0, 104.5, 100.25)]
           + [("find_chunk", "index", i) for i in (0, 2, 3, 10, 11, 50)]
           + [("find_chunk_nearest", "frame_number", v) for v in (2.4, 100, -7, 6)]
           + [("find_chunk_nearest", "frame_time", t) for t in (100.3, 0.0, 1e9, 102.1)])


def _answers(index):
    out = {"chunks": list(index.chunks), "all": index.get_all_metadata(),
           "per_chunk": {str(c): index.get_chunk_metadata(c) for c in index.chunks}}
    out["queries"] = [list(getattr(index, m)(what, v)) for m, what, v in QUERIES]
    return out


def test_store_index_answers_the_original_queries(tmp_path):
    path = _write(tmp_path / "s")
    store = new_for_filename(path)
    idx = store._index
    assert idx.chunks == [0, 1, 2, 3]
    assert idx.get_chunk_metadata(1) == {"frame_number": [1, 2, 3], "frame_time": [101.5, 99.0, 102.5]}
    assert idx.get_chunk_metadata(7) == {"frame_number": [], "frame_time": []}
    assert idx.find_chunk("frame_number", 3) == (1, 2)      # the first written 3
    assert idx.find_chunk("frame_number", 42) == (-1, -1)
    assert idx.find_chunk("frame_time", 99.0) == (1, 1)
    assert idx.find_chunk("index", 10) == (3, 1)
    assert idx.find_chunk("index", 11) == (-1, -1)
    assert idx.find_chunk_nearest("frame_number", 2.4) == (1, 1)
    assert idx.find_chunk_nearest("frame_time", 1e9) == (3, 1)
    with pytest.raises(ValueError):
        idx.find_chunk("chunk", 1)
    md = store._get_chunk_metadata(2)
    assert md == {"frame_number": [3, 9, 0], "frame_time": [103.0, 103.5, 104.0]}
    assert md["frame_number"].index(9) == 1  # scripts treat it as lists
    assert idx.get_all_metadata() == store.get_frame_metadata()


def test_imgstoreindex_from_file_and_from_chunks(tmp_path):
    path = _write(tmp_path / "s")
    idx = ImgStoreIndex.new_from_file(os.path.join(path, STORE_INDEX_FILENAME))
    assert idx.chunks == (0, 1, 2, 3)
    assert (idx.frame_count, idx.frame_min, idx.frame_max) == (11, 0, 9)
    assert (idx.frame_time_min, idx.frame_time_max) == (99.0, 105.0)
    store = new_for_filename(path)
    assert _answers(idx) == _answers(store._index) | {"chunks": [0, 1, 2, 3]}
    built = ImgStoreIndex.new_from_chunks(store._chunk_n_and_chunk_paths)
    assert isinstance(built, ImgStoreIndex) and _answers(built) == _answers(idx)
    empty = ImgStoreIndex.new_from_chunks([])
    assert empty.chunks == () and empty.frame_count == 0 and empty.frame_time_min == 0.0


def test_store_opened_with_an_imgstoreindex_uses_it(tmp_path):
    path = _write(tmp_path / "s")
    idx = ImgStoreIndex.new_from_file(os.path.join(path, STORE_INDEX_FILENAME))
    store = new_for_filename(path, index=idx)
    assert store._index is idx
    assert list(store.chunks) == list(idx.chunks)
    got = []
    for _ in NUMBERS:
        img, (fn, t) = store.get_next_image()
        assert decode_frame(img) == fn
        got.append((fn, t))
    assert got == list(zip(NUMBERS, TIMES))
    img, (fn, _) = store.get_image(9)
    assert decode_frame(img) == fn == 9
    assert [c for c, _ in store._iter_chunk_n_and_chunk_paths()] == [0, 1, 2, 3]


def test_store_chunks_is_a_list_with_an_imgstoreindex(tmp_path):
    path = _write(tmp_path / "s")
    store = new_for_filename(path, index=ImgStoreIndex.new_from_file(os.path.join(path, STORE_INDEX_FILENAME)))
    assert store.chunks == [0, 1, 2, 3]


def test_chunk_paths_are_listed_on_demand_with_an_index(tmp_path):
    path = _write(tmp_path / "s")
    store = new_for_filename(path, index=ImgStoreIndex.new_from_file(os.path.join(path, STORE_INDEX_FILENAME)))
    assert store._chunk_n_and_chunk_paths is None  # as the original: listed on demand
    assert [c for c, _ in store._iter_chunk_n_and_chunk_paths()] == [0, 1, 2, 3]
    assert [c for c, _ in store._chunk_n_and_chunk_paths] == [0, 1, 2, 3]


def test_to_file_round_trip(tmp_path):
    path = _write(tmp_path / "s", save_index=False)
    store = new_for_filename(path)
    idx = ImgStoreIndex.new_from_chunks(store._chunk_n_and_chunk_paths)
    out = str(tmp_path / "copy.sqlite")
    idx.to_file(out)
    again = ImgStoreIndex.new_from_file(out)
    assert _answers(again) == _answers(idx)
    with sqlite3.connect(out) as db:
        paths = dict(db.execute("SELECT chunk, chunk_path FROM chunks"))
    assert paths[2] == os.path.join(path, "000002", "index")


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        ImgStoreIndex.new_from_file(str(tmp_path / "nope.sqlite"))
    with pytest.raises(TypeError):
        ImgStoreIndex()
    bad = str(tmp_path / "bad.sqlite")
    with sqlite3.connect(bad) as db:
        ImgStoreIndex.create_database(db)
        db.execute("UPDATE index_information SET value = '7' WHERE name = 'version'")
    with pytest.raises(CorruptChunkError, match="version"):
        ImgStoreIndex.new_from_file(bad)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(OSError):
        ImgStoreIndex.new_from_file(str(tmp_path / "junk.sqlite"))


_ORIGINAL_SCRIPT = textwrap.dedent("""
    import json, sys
    from imgstore.index import ImgStoreIndex
    from imgstore import new_for_filename
    queries = json.loads(sys.argv[3])
    def answers(index):
        out = {"chunks": list(index.chunks), "all": index.get_all_metadata(),
               "per_chunk": {str(c): index.get_chunk_metadata(c) for c in index.chunks}}
        out["queries"] = [list(getattr(index, m)(what, v)) for m, what, v in queries]
        return out
    print(json.dumps({"store": answers(new_for_filename(sys.argv[1])._index),
                      "ours": answers(ImgStoreIndex.new_from_file(sys.argv[2]))}))
""")


def test_same_answers_as_the_original(tmp_path):
    python, _ = _original_python()
    if python is None:
        pytest.skip("the original imgstore is not installed (bench/setup_original.sh)")
    path = _write(tmp_path / "s")
    ours_file = str(tmp_path / "ours.sqlite")
    ImgStoreIndex.new_from_chunks(new_for_filename(path)._chunk_n_and_chunk_paths).to_file(ours_file)
    p = subprocess.run([python, "-c", _ORIGINAL_SCRIPT, path, ours_file, json.dumps(QUERIES)], cwd=str(tmp_path),
                       env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    original = json.loads(p.stdout.strip().splitlines()[-1])
    ours = json.loads(json.dumps(_answers(new_for_filename(path)._index)))
    assert original["store"] == ours       # the original's index of our store == our index
    assert original["ours"] == ours        # the original reads the .index.sqlite we write
    theirs = ImgStoreIndex.new_from_file(os.path.join(path, STORE_INDEX_FILENAME))
    assert json.loads(json.dumps(_answers(theirs))) == ours
