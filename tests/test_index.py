"""The frame index against a brute-force model, and its cache file."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgstore.errors import FrameNotFoundError
from imgstore.format.chunkindex import write_chunk_index
from imgstore.format.layout import Layout
from imgstore.index import COARSE_STEP, FrameIndex
from imgstore.index_cache import build_index, decode_cache, encode_cache, scan_chunks
from imgstore.storage import LocalStorage

# --- a brute-force model of the original's sqlite semantics ---------------------------


def model_find(fns, n):
    for i, v in enumerate(fns):
        if v == n:
            return i
    return -1


def model_nearest(vals, q):
    best = None
    for i, v in enumerate(vals):
        if v != v:  # NaN never matches
            continue
        d = abs(float(v) - q)
        if best is None or d < best[0]:
            best = (d, i)
    return best[1]


chunk_lists = st.lists(
    st.lists(st.tuples(st.integers(-5, 40), st.one_of(st.integers(-640, 640).map(lambda x: x / 64), st.just(float("nan")))),
             min_size=0, max_size=12),
    min_size=0, max_size=6)


def index_from(chunks):
    segs = [(c, np.array([x[0] for x in ch], dtype=np.int64), np.array([x[1] for x in ch], dtype=np.float64))
            for c, ch in enumerate(chunks)]
    return FrameIndex.from_chunks(segs), [x for ch in chunks for x in ch], segs


@settings(max_examples=300, deadline=None)
@given(chunk_lists, st.integers(-8, 45), st.integers(-800, 800).map(lambda x: x / 64))
def test_lookups_match_brute_force(chunks, n, t):
    idx, flat, segs = index_from(chunks)
    fns = [x[0] for x in flat]
    fts = [x[1] for x in flat]
    assert idx.frame_count == len(flat)
    assert idx.find_number(n) == model_find(fns, n)
    assert idx.find_number(np.int64(n)) == model_find(fns, n)
    assert idx.find_number(np.int32(n)) == model_find(fns, n)
    assert idx.find_number(float(n)) == model_find(fns, n)
    assert idx.find_number(n + 0.5) == -1
    if flat:
        assert idx.nearest_number(n) == model_nearest(fns, n)
        assert idx.nearest_number(np.float32(n)) == model_nearest(fns, n)
        assert idx.frame_min == min(fns) and idx.frame_max == max(fns)
        if any(v == v for v in fts):
            assert idx.nearest_time(t) == model_nearest(fts, t)
    # frame_index -> (chunk, position) walks the chunks in order, skipping empty ones
    expected = [(c, p) for c, fn, _ in segs for p in range(len(fn))]
    assert [idx.locate(i) for i in range(len(flat))] == expected
    assert idx.chunks == [c for c, fn, _ in segs if len(fn)]
    with pytest.raises(FrameNotFoundError):
        idx.locate(len(flat))
    with pytest.raises(FrameNotFoundError):
        idx.locate(-1)


@settings(max_examples=100, deadline=None)
@given(chunk_lists, st.integers(-8, 45), st.integers(-800, 800).map(lambda x: x / 64))
def test_cache_round_trip_gives_same_answers(chunks, n, t):
    idx, flat, _ = index_from(chunks)
    entries, back = decode_cache(b"".join(bytes(p) for p in encode_cache([], idx)))
    assert entries == []
    assert np.array_equal(back.frame_number, idx.frame_number)
    assert np.array_equal(back.frame_time, idx.frame_time, equal_nan=True)
    assert back.find_number(n) == idx.find_number(n)
    if any(x[1] == x[1] for x in flat):
        assert back.nearest_time(t) == idx.nearest_time(t)


def test_large_unsorted_index_uses_coarse_steps():
    rng = np.random.default_rng(3)
    n = COARSE_STEP * 7 + 13
    fns = rng.integers(-1000, 1000, n)  # many duplicates, unsorted
    fts = np.sort(rng.random(n)) * 100
    fts[rng.integers(0, n, 20)] = np.nan
    idx = FrameIndex.from_chunks([(0, fns[: n // 2], fts[: n // 2]), (1, fns[n // 2:], fts[n // 2:])])
    for q in rng.integers(-1100, 1100, 300):
        hits = np.flatnonzero(fns == q)
        assert idx.find_number(q) == (hits[0] if len(hits) else -1)
        d = np.abs(fns - q)
        assert idx.nearest_number(q) == int(np.flatnonzero(d == d.min())[0])
    for q in rng.random(300) * 110 - 5:
        d = np.abs(fts - q)
        d[np.isnan(d)] = np.inf
        assert idx.nearest_time(q) == int(np.flatnonzero(d == d.min())[0])


def test_nan_query_is_an_error():
    idx = FrameIndex.from_chunks([(0, np.arange(3), np.arange(3.0))])
    with pytest.raises(FrameNotFoundError):
        idx.nearest_time(float("nan"))
    with pytest.raises(ValueError):  # FrameNotFoundError is a ValueError, as the original raised
        idx.nearest_number(np.nan)


def _write_store_indexes(root, n_chunks, per_chunk, start=0):
    st_ = LocalStorage(root, create=True)
    lay = Layout("directory", frame_ext="npy")
    for c in range(n_chunks):
        st_.makedirs(lay.chunk_key(c))
        fn = np.arange(start + c * per_chunk, start + (c + 1) * per_chunk)
        write_chunk_index(st_, lay.index_base(c), fn, fn / 30.0)
    return st_, lay


def test_cache_is_used_then_invalidated_by_a_changed_chunk(tmp_path):
    st_, lay = _write_store_indexes(str(tmp_path), 4, 50)
    idx1, entries1, rep1 = build_index(st_, lay, min_frames_to_cache=0)
    assert not rep1.from_cache and rep1.chunks_read == 4
    assert os.path.exists(tmp_path / ".imgstore-frameindex")
    idx2, _, rep2 = build_index(st_, lay, min_frames_to_cache=0)
    assert rep2.from_cache and rep2.chunks_read == 0
    assert np.array_equal(idx2.frame_number, idx1.frame_number)

    # rewrite chunk 2 with other numbers: only that chunk is read again, answers change
    write_chunk_index(st_, lay.index_base(2), np.arange(1000, 1060), np.arange(60) / 7.0)
    idx3, _, rep3 = build_index(st_, lay, min_frames_to_cache=0)
    assert not rep3.from_cache and rep3.chunks_read == 1
    assert idx3.frame_count == 210
    assert idx3.find_number(1059) == 100 + 59
    assert idx3.find_number(120) == -1

    # a new chunk appears
    st_.makedirs(lay.chunk_key(4))
    write_chunk_index(st_, lay.index_base(4), [7], [0.5])
    idx4, _, rep4 = build_index(st_, lay, min_frames_to_cache=0)
    assert rep4.chunks_read == 1 and idx4.frame_count == 211 and idx4.chunks == [0, 1, 2, 3, 4]


def test_damaged_cache_is_ignored(tmp_path):
    st_, lay = _write_store_indexes(str(tmp_path), 2, 10)
    build_index(st_, lay, min_frames_to_cache=0)
    p = tmp_path / ".imgstore-frameindex"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    idx, _, rep = build_index(st_, lay, min_frames_to_cache=0)
    assert not rep.from_cache and idx.frame_count == 20
    p.write_bytes(b"garbage")
    idx, _, rep = build_index(st_, lay, min_frames_to_cache=0)
    assert idx.frame_count == 20


def test_missing_and_corrupt_chunk_indexes_are_skipped(tmp_path):
    st_, lay = _write_store_indexes(str(tmp_path), 3, 10)
    os.unlink(tmp_path / "000001" / "index.npz")
    (tmp_path / "000002" / "index.npz").write_bytes(b"PK\x03\x04 not really a zip")
    idx, entries, rep = build_index(st_, lay, min_frames_to_cache=0)
    assert idx.chunks == [0] and idx.frame_count == 10
    assert rep.missing_index == (1,)
    assert [c for c, _ in rep.corrupt_index] == [2]
    assert "000002" in rep.corrupt_index[0][1]
    assert [e.chunk for e in scan_chunks(st_, lay)] == [0, 1, 2]


def test_read_only_store_caches_in_user_dir(tmp_path, monkeypatch):
    store = tmp_path / "ro"
    st_, lay = _write_store_indexes(str(store), 2, 10)
    cache = tmp_path / "cache"
    monkeypatch.setenv("IMGSTORE_CACHE_DIR", str(cache))

    def refuse(key, parts):
        raise PermissionError(f"{key}: read-only")

    monkeypatch.setattr(st_, "write_parts", refuse)  # e.g. a store on a read-only share
    _, _, rep = build_index(st_, lay, min_frames_to_cache=0)
    assert not rep.from_cache
    assert not (store / ".imgstore-frameindex").exists()
    assert len(os.listdir(cache)) == 1
    _, _, rep = build_index(st_, lay, min_frames_to_cache=0)
    assert rep.from_cache
