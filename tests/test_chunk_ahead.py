"""Chunks decoded ahead of a sequential reader (stores/chunk_ahead.py): the same frames, in order, as
without; stopped by random access, close and fork; bounded; errors still reported."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time

import numpy as np
import pytest

import imgstore
from imgstore.apps.synthetic import make_frame, read_frame_number
from imgstore.errors import CorruptChunkError

SHAPE = (64, 96)
CHUNK = 20
N = 6 * CHUNK
#: frame numbers out of order and with a gap, as cameras deliver them
NUMBERS = [int(x) for x in np.r_[np.arange(100, 150), np.arange(149, 129, -1), np.arange(400, 450)]]


def _ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("imgstore-chunk-ahead")]


def _wait_no_ahead_threads(timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while _ahead_threads() and time.monotonic() < end:
        time.sleep(0.01)
    return not _ahead_threads()


def _write(path, fmt: str, color: bool = False, n: int = N, **kw) -> str:
    shape = SHAPE + ((3,) if color else ())
    s = imgstore.new_for_format(fmt, basedir=str(path), imgshape=shape, imgdtype=np.uint8, chunksize=CHUNK, **kw)
    for i in range(n):
        s.add_image(make_frame(NUMBERS[i], shape), NUMBERS[i], 1000.0 + i / 30)
    s.close()
    return str(path)


@pytest.fixture(scope="module", params=[("h264/mkv", False, {"gop": CHUNK}), ("avc1/mp4", True, {"gop": CHUNK}),
                                        ("h264/mkv", True, {"gop": 7})], ids=["h264-gray", "avc1-color", "h264-gop7"])
def store_path(request, tmp_path_factory):
    fmt, color, kw = request.param
    return _write(tmp_path_factory.mktemp("ahead") / "s", fmt, color, **kw)


def _read_all(path) -> tuple[list[np.ndarray], list[int], int]:
    assert _wait_no_ahead_threads()
    s = imgstore.new_for_filename(path)
    imgs, numbers, seen_threads = [], [], 0
    for _ in range(s.frame_count):
        img, (fn, _) = s.get_next_image()
        imgs.append(img)
        numbers.append(fn)
        seen_threads = max(seen_threads, len(_ahead_threads()))
    s.close()
    return imgs, numbers, seen_threads


def test_sequential_reads_are_the_frames_of_random_reads(store_path):
    imgs, numbers, seen = _read_all(store_path)
    assert seen >= 1, "no chunk was decoded ahead"
    assert numbers == NUMBERS
    assert [read_frame_number(im) for im in imgs] == NUMBERS
    s = imgstore.new_for_filename(store_path)
    for i in np.random.default_rng(1).permutation(N)[:25]:
        img, _ = s.get_image(None, frame_index=int(i))
        assert np.array_equal(img, imgs[i]), i
        assert img.flags.writeable
    s.close()
    assert _wait_no_ahead_threads()


def test_no_budget_no_threads_same_frames(store_path, monkeypatch):
    with_ahead, _, _ = _read_all(store_path)
    assert _wait_no_ahead_threads()
    monkeypatch.setenv("IMGSTORE_READ_AHEAD_MB", "0")
    without, numbers, seen = _read_all(store_path)
    assert seen == 0 and numbers == NUMBERS
    assert all(np.array_equal(a, b) for a, b in zip(with_ahead, without))


def test_random_access_stops_the_threads_and_reading_on_still_works(store_path):
    s = imgstore.new_for_filename(store_path)
    for _ in range(CHUNK + 3):
        s.get_next_image()
    assert s.__dict__.get("_aheads")
    img, (fn, _) = s.get_image(NUMBERS[5])
    assert fn == NUMBERS[5] and read_frame_number(img) == NUMBERS[5]
    assert _wait_no_ahead_threads()
    for i in range(6, N):  # reading on from there: chunks ahead again, the right frames
        img, (fn, _) = s.get_next_image()
        assert fn == NUMBERS[i] and read_frame_number(img) == NUMBERS[i]
    s.close()


def test_reading_a_fresh_store_on_decodes_every_frame_once(store_path, monkeypatch):
    """get_next_image from the first frame: the first chunk is decoded on its thread from frame 0 too,
    so no frame is decoded twice (and the caller opens no reader of its own)."""
    from imgstore.stores.video import VideoImgStore

    made = []
    new = VideoImgStore._new_ahead_reader

    def counting(self, chunk_n, alone=False):
        r = new(self, chunk_n, alone)
        made.append(r)
        return r

    monkeypatch.setattr(VideoImgStore, "_new_ahead_reader", counting)
    s = imgstore.new_for_filename(store_path)
    got = [s.get_next_image()[1][0] for _ in range(N)]
    own = dict(s._readers)
    s.close()
    assert got == NUMBERS
    assert _wait_no_ahead_threads()
    if len({int(n) for n in s._index.chunk_ids}) > 1:
        assert not own  # every frame came from the threads ahead
        assert sum(r.frames_decoded for r in made) == N


def test_room_for_the_frames_ahead_is_kept_while_reading_on_and_given_back(store_path):
    from imgstore import frame_memory

    before = frame_memory._kept
    s = imgstore.new_for_filename(store_path)
    for _ in range(CHUNK + 3):
        s.get_next_image()
    assert frame_memory._kept > before  # the frames decoded ahead are used again once read
    s.get_image(NUMBERS[2])  # random access stops decoding ahead
    assert frame_memory._kept == before
    for _ in range(CHUNK):
        s.get_next_image()
    assert frame_memory._kept > before
    s.close()
    assert frame_memory._kept == before
    s = imgstore.new_for_filename(store_path)
    for _ in range(CHUNK + 3):
        s.get_next_image()
    assert frame_memory._kept > before
    s._stop_aheads = lambda: None  # a store nobody closes: collected, it gives the room back too
    del s
    import gc

    end = time.monotonic() + 10  # a thread may still be opening its reader, which holds the store
    while frame_memory._kept != before and time.monotonic() < end:
        gc.collect()
        time.sleep(0.05)
    assert frame_memory._kept == before
    assert _wait_no_ahead_threads()


def test_intra_only_chunks_are_decoded_ahead_within_the_chunk_instead(tmp_path):
    path = _write(tmp_path / "mjpeg", "mjpeg/avi", color=True, n=3 * CHUNK)
    imgs, numbers, seen = _read_all(path)
    assert seen == 0 and numbers == NUMBERS[:3 * CHUNK]
    assert [read_frame_number(im) for im in imgs] == numbers


def test_close_stops_threads_that_wait_for_a_reader(store_path, monkeypatch):
    monkeypatch.setattr("imgstore.stores.chunk_ahead.read_ahead_budget", lambda: 1)  # 8 frames: they wait
    s = imgstore.new_for_filename(store_path)
    for _ in range(3):
        s.get_next_image()
    assert _ahead_threads()
    s.close()
    assert _wait_no_ahead_threads()


def test_frames_held_stay_within_the_budget(tmp_path, monkeypatch):
    path = _write(tmp_path / "big", "h264/mkv", n=N, gop=CHUNK)
    monkeypatch.setattr("imgstore.stores.chunk_ahead.read_ahead_budget", lambda: 1)  # the minimum: 8 frames
    s = imgstore.new_for_filename(path)
    held = 0
    for i in range(N):
        img, (fn, _) = s.get_next_image()
        assert read_frame_number(img) == fn == NUMBERS[i]
        if i % 5 == 0:
            time.sleep(0.02)  # let the threads run as far as they may
        for a in list(s.__dict__.get("_aheads", {}).values()):
            held = max(held, len(a.frames))
            assert len(a.frames) <= a.max_frames == 8
    assert held >= 1
    s.close()


def test_a_damaged_chunk_is_reported_as_without_threads(tmp_path, monkeypatch):
    path = _write(tmp_path / "bad", "h264/mkv", gop=CHUNK)
    victim = os.path.join(path, "000003.mkv")
    with open(victim, "r+b") as f:
        f.truncate(os.path.getsize(victim) // 3)

    def outcome():
        s = imgstore.new_for_filename(path)
        got = []
        try:
            for _ in range(N):
                img, (fn, _) = s.get_next_image()
                assert read_frame_number(img) == fn  # never a wrong frame
                got.append(fn)
            return got, None
        except CorruptChunkError as e:
            return got, type(e)
        finally:
            s.close()

    with_ahead = outcome()
    monkeypatch.setenv("IMGSTORE_READ_AHEAD_MB", "0")
    assert outcome() == with_ahead
    assert with_ahead[1] is CorruptChunkError and len(with_ahead[0]) < N


def _child_reads_on(path, start, q):
    s = _child_reads_on.store
    try:
        out = []
        for _ in range(start, N):
            img, (fn, _) = s.get_next_image()
            out.append((fn, read_frame_number(img)))
        q.put(out)
    except BaseException as e:  # noqa: BLE001
        q.put(repr(e))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_reads_on_without_the_parents_threads(store_path):
    s = imgstore.new_for_filename(store_path)
    start = CHUNK + 2
    for _ in range(start):
        s.get_next_image()
    assert s.__dict__.get("_aheads")
    _child_reads_on.store = s
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_reads_on, args=(store_path, start, q))
    p.start()
    out = q.get(timeout=60)
    p.join(30)
    assert out == [(n, n) for n in NUMBERS[start:]]
    for i in range(start, N):  # the parent reads on too
        assert s.get_next_image()[1][0] == NUMBERS[i]
    s.close()


def _held_kinds(s) -> set[type]:
    return {type(f) for a in list(s.__dict__.get("_aheads", {}).values()) for f in list(a.frames)}


@pytest.mark.parametrize("color", [True, False], ids=["color", "gray"])
def test_colour_frames_are_held_decoded_and_converted_as_they_come_up(tmp_path, monkeypatch, color):
    from imgstore.codecs.video import pixels
    from imgstore.stores.chunk_ahead import _Pending

    path = _write(tmp_path / "s", "avc1/mp4", color=color, gop=CHUNK)
    real = pixels.Unconverted.image
    threads = []

    def image(self):
        threads.append(threading.current_thread().name)
        return real(self)

    monkeypatch.setattr(pixels.Unconverted, "image", image)
    s = imgstore.new_for_filename(path)
    kinds: set[type] = set()
    for i in range(N):
        img, (fn, _) = s.get_next_image()
        assert isinstance(img, np.ndarray) and img.shape == SHAPE + ((3,) if color else ())
        assert read_frame_number(img) == fn == NUMBERS[i]
        if i % 7 == 0:
            time.sleep(0.02)  # let the threads run ahead
        kinds |= _held_kinds(s)
    s.close()
    # colour: YUV 4:2:0 held (half of BGR), made BGR by the taking thread, or by the chunk's own thread
    # once it has decoded them all; gray is held converted (smaller than decoded)
    assert kinds == ({_Pending} if color else {np.ndarray})
    if color:
        assert len(threads) == N  # each frame converted once
        assert "MainThread" in threads
        assert any(t.startswith("imgstore-chunk-ahead") for t in threads)
    else:
        assert threads == []


def test_a_frame_held_decoded_that_will_not_convert_is_read_again_by_the_caller(tmp_path, monkeypatch):
    from imgstore.codecs.video import pixels

    path = _write(tmp_path / "s", "avc1/mp4", color=True, gop=CHUNK)
    real = pixels.Unconverted.image
    failed = []

    def image(self):
        if not failed:
            failed.append(threading.current_thread().name)
            raise CorruptChunkError("not this one")
        return real(self)

    monkeypatch.setattr(pixels.Unconverted, "image", image)
    s = imgstore.new_for_filename(path)
    got = [(fn, read_frame_number(img)) for img, (fn, _) in (s.get_next_image() for _ in range(N))]
    s.close()
    assert len(failed) == 1
    assert got == [(n, n) for n in NUMBERS]


def test_colour_frames_held_decoded_stay_within_the_budget_in_bytes(tmp_path, monkeypatch):
    from imgstore.stores.chunk_ahead import _held_bytes

    path = _write(tmp_path / "s", "avc1/mp4", color=True, gop=CHUNK)
    bgr = SHAPE[0] * SHAPE[1] * 3
    monkeypatch.setattr("imgstore.stores.chunk_ahead.read_ahead_budget", lambda: 24 * bgr)
    s = imgstore.new_for_filename(path)
    seen = []
    for i in range(N):
        img, (fn, _) = s.get_next_image()
        assert read_frame_number(img) == fn == NUMBERS[i]
        if i % 5 == 0:
            time.sleep(0.02)
        for a in list(s.__dict__.get("_aheads", {}).values()):
            held = [_held_bytes(f.frame) for f in list(a.frames) if getattr(f, "frame", None) is not None]
            if held:
                seen.append(len(a.frames))
                assert a.max_bytes == 12 * bgr
                assert len(a.frames) <= a.max_frames <= max(8, a.max_bytes // held[0])
    s.close()
    # 4:2:0 frames are half of BGR or a little more (padded rows): more of them than BGR frames fit
    assert max(seen) > 12
