"""The decoded-frame cache: a byte budget shared by readers, LRU, per-reader caps."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from imgstore.codecs.frame_cache import FrameCache, frame_nbytes, set_frame_cache_size, shared_frame_cache


def frame(nbytes: int, fill: int = 0) -> np.ndarray:
    return np.full(nbytes, fill, np.uint8)


def test_budget_in_bytes_drops_least_recently_used_first():
    c = FrameCache(max_bytes=300)
    for p in range(3):
        c.put("a", p, frame(100, p))
    assert len(c) == 3 and c.nbytes == 300
    assert c.get("a", 0)[0] == 0  # 0 is now the most recently used
    c.put("b", 0, frame(100, 9))
    assert ("a", 1) not in c  # the least recently used went
    assert ("a", 0) in c and ("a", 2) in c and ("b", 0) in c
    assert c.nbytes == 300


def test_bigger_frames_evict_more_and_the_newest_always_stays():
    c = FrameCache(max_bytes=250)
    for p in range(2):
        c.put("a", p, frame(100))
    c.put("a", 9, frame(200))
    assert [k for k in (("a", 0), ("a", 1), ("a", 9)) if k in c] == [("a", 9)]
    c.put("a", 10, frame(1000))  # alone over the budget: kept until the next put
    assert ("a", 10) in c and len(c) == 1
    c.put("a", 11, frame(10))
    assert ("a", 10) not in c and ("a", 11) in c


def test_replacing_a_position_counts_its_bytes_once():
    c = FrameCache(max_bytes=10_000)
    c.put("a", 0, frame(100))
    c.put("a", 0, frame(300))
    assert len(c) == 1 and c.nbytes == 300


def test_per_owner_limit_leaves_other_owners_alone():
    c = FrameCache(max_bytes=10_000)
    for p in range(5):
        c.put("other", p, frame(10))
    for p in range(20):
        c.put("reading-on", p, frame(10), limit=4)
    assert c.count("reading-on") == 4
    assert [p for p in range(20) if ("reading-on", p) in c] == [16, 17, 18, 19]
    assert c.count("other") == 5
    assert c.nbytes == 90


def test_discard_owner_and_resize():
    c = FrameCache(max_bytes=10_000)
    for p in range(10):
        c.put("a", p, frame(100))
        c.put("b", p, frame(100))
    c.discard("a")
    assert c.count("a") == 0 and c.count("b") == 10 and c.nbytes == 1000
    c.resize(350)
    assert c.count("b") == 3 and c.nbytes == 300
    assert [p for p in range(10) if ("b", p) in c] == [7, 8, 9]
    c.resize(0)
    assert len(c) == 0 and c.nbytes == 0


def test_frame_nbytes_of_decoded_video_frames():
    av = pytest.importorskip("av")
    f = av.VideoFrame(64, 48, "yuv420p")
    assert frame_nbytes(f) == sum(p.buffer_size for p in f.planes) >= 64 * 48 * 3 // 2
    assert frame_nbytes(np.zeros((4, 5), np.uint16)) == 40


def test_concurrent_puts_keep_the_books_straight():
    c = FrameCache(max_bytes=5_000)

    def work(owner):
        for p in range(500):
            c.put(owner, p % 50, frame(37), limit=20 if owner == "t0" else None)
            c.get(owner, (p * 7) % 50)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.nbytes == 37 * len(c) <= 5_000
    assert c.count("t0") <= 20
    assert sum(c.count(f"t{i}") for i in range(4)) == len(c)


def test_shared_cache_budget_can_be_set():
    c = shared_frame_cache()
    old = c.max_bytes
    try:
        set_frame_cache_size(1234)
        assert shared_frame_cache() is c and c.max_bytes == 1234 and c.nbytes <= 1234
    finally:
        set_frame_cache_size(old)


def test_budget_from_the_environment():
    import os
    import subprocess
    import sys

    code = "from imgstore.codecs.frame_cache import shared_frame_cache as s; print(s().max_bytes)"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, IMGSTORE_FRAME_CACHE_MB="64"),
                         stdout=subprocess.PIPE, check=True, universal_newlines=True).stdout
    assert int(out) == 64 << 20
