"""``store.iter_chunks(workers=N)``: every frame with its number and time, chunk by chunk in store order,
decoded on N threads; chunks cut at keyframes (``plan_segments``), the same cuts dask blocks use."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import imgstore
from imgstore.apps.synthetic import make_frame, read_frame_number
from imgstore.errors import CorruptChunkError
from imgstore.stores.chunk_iter import plan_segments

SHAPE = (64, 96)
CHUNK = 30
N = 100  # 3 full chunks and one of 10
#: out of order, repeated and with a gap, as cameras deliver them
NUMBERS = [int(x) for x in np.r_[np.arange(500, 540), np.arange(539, 519, -1), np.arange(9000, 9040)]]


def _write(path, fmt: str, color: bool = False, n: int = N, **kw) -> str:
    shape = SHAPE + ((3,) if color else ())
    s = imgstore.new_for_format(fmt, basedir=str(path), imgshape=shape, imgdtype=np.uint8, chunksize=CHUNK, **kw)
    t0 = time.time()
    for i in range(n):
        s.add_image(make_frame(NUMBERS[i], shape), NUMBERS[i], t0 + i / 30)
    s.close()
    return str(path)


FORMATS = {
    "h264-gop10": ("h264/mkv", False, {"gop": 10}),
    "avc1-color-one-key": ("avc1/mp4", True, {"gop": CHUNK}),
    "mjpeg": ("mjpeg/avi", False, {}),
    "npy": ("npy", False, {}),
    "png-color": ("png", True, {}),
}


@pytest.fixture(scope="module", params=list(FORMATS))
def store_path(request, tmp_path_factory):
    fmt, color, kw = FORMATS[request.param]
    return _write(tmp_path_factory.mktemp("iter") / "s", fmt, color, **kw)


def _chunk_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("imgstore-chunks")]


@pytest.mark.beyond_original
@pytest.mark.parametrize("workers,max_frames", [(1, None), (2, None), (2, 7), (3, 4), (2, 1)])
def test_every_frame_in_order_with_its_metadata(store_path, workers, max_frames):
    s = imgstore.new_for_filename(store_path)
    expected = s[:]
    md = s.get_frame_metadata()
    parts = list(s.iter_chunks(workers=workers, max_frames=max_frames))
    # parts are contiguous, in store order, each within one chunk and at most max_frames long
    assert [p.start for p in parts] == list(np.cumsum([0] + [len(p.images) for p in parts[:-1]]))
    assert sum(len(p.images) for p in parts) == N
    for p in parts:
        lo, hi = s._index.chunk_range(p.chunk)
        assert lo <= p.start and p.start + len(p.images) <= hi
        if max_frames is not None:
            assert len(p.images) <= max_frames
    images = np.concatenate([p.images for p in parts])
    assert np.array_equal(images, expected)
    assert [read_frame_number(f) for f in images] == NUMBERS  # the pixels say which frame they are
    assert np.concatenate([p.frame_numbers for p in parts]).tolist() == md["frame_number"] == NUMBERS
    assert np.concatenate([p.frame_times for p in parts]).tolist() == md["frame_time"]
    assert [p.chunk for p in parts] == sorted(p.chunk for p in parts)
    s.close()


@pytest.mark.beyond_original
def test_the_sequential_reader_position_is_left_alone(store_path):
    s = imgstore.new_for_filename(store_path)
    for _ in range(5):
        s.get_next_image()
    assert sum(len(p.images) for p in s.iter_chunks(workers=2, max_frames=8)) == N
    img, (fn, _) = s.get_next_image()
    assert fn == NUMBERS[5] and read_frame_number(img) == NUMBERS[5]
    s.close()


@pytest.mark.beyond_original
def test_stopping_early_stops_the_workers(store_path):
    s = imgstore.new_for_filename(store_path)
    it = s.iter_chunks(workers=2, max_frames=5)
    first = next(it)
    assert first.start == 0 and read_frame_number(first.images[0]) == NUMBERS[0]
    it.close()
    end = time.monotonic() + 10
    while _chunk_threads() and time.monotonic() < end:
        time.sleep(0.01)
    assert not _chunk_threads()
    s.close()


@pytest.mark.beyond_original
@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_worker_counts_are_refused(tmp_path, bad):
    s = imgstore.new_for_filename(_write(tmp_path / "s", "npy", n=5))
    with pytest.raises(ValueError, match="workers"):
        next(s.iter_chunks(workers=bad))
    with pytest.raises(ValueError, match="max_frames"):
        next(s.iter_chunks(max_frames=0))
    assert sum(len(p.images) for p in s.iter_chunks(workers=np.int64(2))) == 5  # numpy integers work
    s.close()


@pytest.mark.beyond_original
@pytest.mark.parametrize("workers", [1, 2])
def test_a_damaged_chunk_raises_after_the_chunks_before_it(tmp_path, workers):
    path = _write(tmp_path / "bad", "h264/mkv", gop=10)
    victim = os.path.join(path, "000002.mkv")
    with open(victim, "r+b") as f:
        f.truncate(os.path.getsize(victim) // 3)
    s = imgstore.new_for_filename(path)
    got = []
    with pytest.raises(CorruptChunkError, match="000002"):
        for p in s.iter_chunks(workers=workers, max_frames=10):
            got.extend(read_frame_number(f) for f in p.images)
    assert got[:2 * CHUNK] == NUMBERS[:2 * CHUNK]  # all of chunks 0 and 1, each frame its own
    assert got == NUMBERS[:len(got)]
    s.close()


@pytest.mark.beyond_original
def test_a_chunk_cut_at_its_keyframes_for_dask(tmp_path):
    da = pytest.importorskip("dask.array")
    import dask

    s = imgstore.new_for_filename(_write(tmp_path / "s", "h264/mkv", gop=10))
    frame = SHAPE[0] * SHAPE[1]
    with dask.config.set({"array.chunk-size": 12 * frame}):
        arr = s.to_dask()
    assert isinstance(arr, da.Array)
    assert arr.chunks[0] == (10,) * 10  # cut at every keyframe, never between them
    with dask.config.set(scheduler="threads", num_workers=2):
        out = arr.compute()
    assert [read_frame_number(f) for f in out] == NUMBERS
    assert np.array_equal(out, s[:])
    with dask.config.set({"array.chunk-size": 1}):  # smaller than a frame: still whole keyframe runs
        assert s.to_dask().chunks[0] == (10,) * 10
    s.close()


@pytest.mark.beyond_original
def test_dask_on_worker_processes(tmp_path):
    pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    path = _write(tmp_path / "s", "h264/mkv", gop=10)
    s = imgstore.new_for_filename(path)
    arr = s.to_dask()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        means = client.compute(arr.mean(axis=(1, 2))).result(timeout=120)
        firsts = client.compute(arr[::10]).result(timeout=120)
    expected = s[:]
    assert np.allclose(means, expected.mean(axis=(1, 2)))
    assert [read_frame_number(f) for f in firsts] == NUMBERS[::10]
    s.close()


@given(n=st.integers(0, 200), max_frames=st.integers(1, 40), strict=st.booleans(), data=st.data())
@settings(max_examples=300, deadline=None)
def test_plan_segments_against_a_model(n, max_frames, strict, data):
    kind = data.draw(st.sampled_from(["every", "some", "first"]))
    if kind == "every" or n == 0:
        entries = None
    elif kind == "first":
        entries = np.array([0])
    else:
        rest = data.draw(st.sets(st.integers(1, max(1, n - 1)), max_size=20))
        entries = np.array(sorted({0} | {e for e in rest if e < n}))
    allowed = set(range(n)) if entries is None else set(entries.tolist())
    segments = plan_segments(n, entries, max_frames, strict)
    parts = [p for seg in segments for p in seg]
    # the parts cover 0..n once, in order, none empty
    assert [a for a, _ in parts] == [0] + [b for _, b in parts[:-1]] if parts else n == 0
    assert (parts[-1][1] if parts else 0) == n
    assert all(b > a for a, b in parts)
    # every segment starts where a fresh reader may start
    assert all(seg[0][0] in allowed for seg in segments)
    if strict:
        assert all(b - a <= max_frames for a, b in parts)
    else:  # dask blocks: every part is a segment of its own, cut only where a reader may start
        assert all(len(seg) == 1 for seg in segments)
        # and no longer than needed: a part over max_frames holds no entry it could have been cut at
        for a, b in parts:
            if b - a > max_frames:
                assert not any(a < e <= a + max_frames and e < b for e in allowed)
