"""Video stores read over HTTP: a random frame costs one range request of the keyframe -> target bytes.

Against ``rangeserver.RangeServer`` (a real HTTP server on 127.0.0.1 with
Range support that counts requests and bytes). The *minimum* for a random
frame is the size of the packets that must be decoded to show it: those of
the keyframe at or before it up to its own (no B-frames in what we write).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

import imgstore
from imgstore.apps.synthetic import make_frame, read_frame_number
from imgstore.codecs.video import VideoChunkReader
from imgstore.codecs.video_index import PacketIndex, load_packet_index, packet_index_key
from imgstore.storage import FsspecStorage

sys.path.insert(0, os.path.dirname(__file__))
from rangeserver import RangeServer  # noqa: E402

SHAPE = (192, 256)
N = 150
FORMATS = {"h264/mkv": ".mkv", "avc1/mp4": ".mp4", "mjpeg/avi": ".avi"}
READS = 30


def _frame(i: int, rng) -> np.ndarray:
    img = make_frame(i, SHAPE).astype(np.int16)
    img[32:] += rng.integers(-3, 4, (SHAPE[0] - 32, SHAPE[1]), dtype=np.int16)  # packets of a realistic size
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote-video")
    rng = np.random.default_rng(0)
    frames = [_frame(1000 + i, rng) for i in range(N)]
    for fmt in FORMATS:
        with imgstore.new_for_format(fmt, basedir=str(root / fmt.replace("/", "_")), imgshape=SHAPE,
                                     imgdtype=np.uint8, chunksize=1000, fps=30, gop=25) as s:
            for i, f in enumerate(frames):
                s.add_image(f, 1000 + i, 1.7e9 + i / 30)
    return str(root)


@pytest.fixture(scope="module")
def server(root):
    with RangeServer(root) as srv:
        yield srv


def _index(root, fmt) -> PacketIndex:
    name = fmt.replace("/", "_")
    with open(os.path.join(root, name, packet_index_key("000000" + FORMATS[fmt])), "rb") as f:
        return PacketIndex.from_bytes(f.read())


def _minimum(idx: PacketIndex, position: int) -> int:
    """Bytes of the packets that must be decoded to show the frame at *position* (no B-frames)."""
    d = int(idx.order[position])
    k = d
    while not idx.is_key[k]:
        k -= 1
    return int(idx.size[k:d + 1].astype(np.int64).sum())


def _targets(seed=1):
    return [int(p) for p in np.random.default_rng(seed).permutation(N)[:READS]]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_random_frame_costs_one_request_of_the_minimum(root, server, fmt):
    """A fresh reader per read (nothing cached): exactly one range request per frame, of at most
    1.1x the bytes that must be decoded."""
    name = fmt.replace("/", "_")
    st = FsspecStorage(f"{server.url}/{name}")
    idx = _index(root, fmt)
    key = "000000" + FORMATS[fmt]
    total_min = 0
    server.stats.reset()
    for p in _targets():
        before = (server.stats.requests, server.stats.bytes)
        with VideoChunkReader(st, key, color=False, index=idx) as r:
            assert r.direct
            img = r.read(p)
        assert read_frame_number(img) == 1000 + p
        reqs, nbytes = server.stats.requests - before[0], server.stats.bytes - before[1]
        assert reqs == 1
        assert nbytes <= 1.1 * _minimum(idx, p)
        total_min += _minimum(idx, p)
    assert server.stats.requests == READS
    assert server.stats.bytes <= 1.1 * total_min


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_store_random_reads_over_http(root, server, fmt):
    """Through the store API: after the chunk's index is loaded, <= 1.1 requests and <= 1.1x the
    minimum bytes per random frame, every frame the right one."""
    name = fmt.replace("/", "_")
    idx = _index(root, fmt)
    s = imgstore.new_for_filename(f"{server.url}/{name}")
    img, (fn, _) = s.get_image(1000 + N - 1)  # loads the chunk's index (and reads one frame)
    assert read_frame_number(img) == fn == 1000 + N - 1
    server.stats.reset()
    minimum = 0
    for p in _targets(2):
        img, (fn, _) = s.get_image(1000 + p)
        assert fn == 1000 + p and read_frame_number(img) == fn
        minimum += _minimum(idx, p)
    assert server.stats.requests <= 1.1 * READS
    assert server.stats.bytes <= 1.1 * minimum
    s.close()


@pytest.mark.parametrize("fmt", ["h264/mkv", "mjpeg/avi"])
def test_read_many_merges_spans_and_fetches_them_together(root, server, fmt):
    name = fmt.replace("/", "_")
    st = FsspecStorage(f"{server.url}/{name}")
    idx = _index(root, fmt)
    key = "000000" + FORMATS[fmt]
    positions = sorted(_targets(3)[:20])
    with VideoChunkReader(st, key, color=False, index=idx, cache_frames=4) as r:
        server.stats.reset()
        t0 = time.monotonic()
        frames = r.read_many(positions)
        assert [read_frame_number(f) for f in frames] == [1000 + p for p in positions]
        # the union of the keyframe -> target spans, each distinct one fetched once
        spans = []
        for p in positions:
            d = int(idx.order[p])
            k = d
            while not idx.is_key[k]:
                k -= 1
            spans.append((int(idx.payload[k]), int(idx.payload[d] + idx.size[d])))
        spans.sort()
        merged = []
        for a, b in spans:
            if merged and a <= merged[-1][1] + 4096:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        union = sum(b - a for a, b in merged)
        assert server.stats.requests <= len(merged)
        assert server.stats.bytes <= 1.1 * union + 4096 * len(merged)
        assert time.monotonic() - t0 < 30
        # read again: served from the fetched spans, no request
        server.stats.reset()
        assert [read_frame_number(f) for f in r.read_many(positions[::-1])] == [1000 + p for p in positions[::-1]]
        assert server.stats.requests == 0


def test_sequential_reading_fetches_large_spans(root, server):
    st = FsspecStorage(f"{server.url}/h264_mkv")
    with VideoChunkReader(st, "000000.mkv", color=False) as r:
        server.stats.reset()  # the packet index read by the reader's opening is counted before this
        assert [read_frame_number(r.read(p)) for p in range(N)] == [1000 + p for p in range(N)]
        assert server.stats.requests <= 10  # batches of packets, not a request per frame
        assert server.stats.bytes <= 1.05 * os.path.getsize(os.path.join(root, "h264_mkv", "000000.mkv"))


def test_server_counts_a_request_before_answering_it(root):
    """What the counts above rely on: once a client has its response the request is counted, so a
    reset() after it leaves nothing of it for the next count, however late the server's thread runs."""
    with RangeServer(root) as srv:
        add = srv.stats.add

        def slow_add(*a):
            time.sleep(0.05)  # the server's thread descheduled around counting
            add(*a)

        srv.stats.add = slow_add
        st = FsspecStorage(f"{srv.url}/h264_mkv")
        st.read_range("000000.mkv", 0, 100)
        srv.stats.reset()
        st.read_range("000000.mkv", 100, 300)
        assert srv.stats.log == [("GET", "/h264_mkv/000000.mkv", 200)]


def test_server_error_is_clear_and_never_a_wrong_frame(root, server):
    s = imgstore.new_for_filename(f"{server.url}/h264_mkv", storage_options={"timeout": 2})
    img, (fn, _) = s.get_image(1000 + 10)
    assert read_frame_number(img) == fn
    server.faults["000000.mkv"] = "error"
    try:
        for p in (120, 121, 60):
            with pytest.raises(imgstore.ImgStoreError) as e:
                s.get_image(1000 + p)
            assert "000000.mkv" in str(e.value)
    finally:
        server.faults.clear()
    for p in (120, 121, 60, 11, 149):  # the reader is still sound
        img, (fn, _) = s.get_image(1000 + p)
        assert fn == 1000 + p and read_frame_number(img) == fn


def test_stalled_server_times_out_with_a_clear_error(root, server):
    s = imgstore.new_for_filename(f"{server.url}/mjpeg_avi", storage_options={"timeout": 2})
    img, (fn, _) = s.get_image(1000)
    assert read_frame_number(img) == fn
    server.faults["000000.avi"] = "stall"
    try:
        t0 = time.monotonic()
        with pytest.raises(imgstore.ImgStoreError) as e:
            s.get_image(1000 + 77)
        assert time.monotonic() - t0 < 20
        assert "000000.avi" in str(e.value)
    finally:
        server.faults.clear()
    img, (fn, _) = s.get_image(1000 + 77)
    assert fn == 1000 + 77 and read_frame_number(img) == fn


def test_remote_chunk_without_packet_index_is_indexed_with_payload_offsets(root, server, tmp_path):
    """No .pktidx.npz on the server: the reader demuxes the chunk once (all of it) and finds the
    packets' bytes in what it read, so random reads are then packet-direct."""
    import shutil

    src = os.path.join(root, "h264_mkv")
    dst = tmp_path / "noidx"
    shutil.copytree(src, dst)
    os.remove(dst / "000000.pktidx.npz")
    with RangeServer(str(tmp_path)) as srv:
        st = FsspecStorage(f"{srv.url}/noidx")
        idx = load_packet_index(st, "000000.mkv")
        assert idx.has_payload
        np.testing.assert_array_equal(idx.payload, _index(root, "h264/mkv").payload)
        with VideoChunkReader(st, "000000.mkv", color=False, index=idx) as r:
            assert r.direct
            for p in _targets(4)[:10]:
                assert read_frame_number(r.read(p)) == 1000 + p
    assert not os.path.exists(dst / "000000.pktidx.npz")  # nothing written to a remote store


def test_remote_version_1_index_reads_through_the_demuxer(root, server, tmp_path):
    import shutil

    src = os.path.join(root, "avc1_mp4")
    dst = tmp_path / "v1"
    shutil.copytree(src, dst)
    idx = _index(root, "avc1/mp4")
    v1 = PacketIndex(pts=idx.pts, is_key=idx.is_key, pos=idx.pos, size=idx.size, time_base=idx.time_base,
                     file_size=idx.file_size, version=1)
    with open(dst / "000000.pktidx.npz", "wb") as f:
        f.write(v1.to_bytes())
    with RangeServer(str(tmp_path)) as srv:
        s = imgstore.new_for_filename(f"{srv.url}/v1")
        for p in _targets(5)[:10]:
            img, (fn, _) = s.get_image(1000 + p)
            assert fn == 1000 + p and read_frame_number(img) == fn
        r = s._chunk_reader(0)
        assert r.index.version == 1 and not r.direct
