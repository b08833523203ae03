"""open_video: single video files (pycamhd's job) — frame tables from the moov box, exact frames, remote reads."""

from __future__ import annotations

import os
import struct
import sys

import numpy as np
import pytest

import imgstore
from imgstore.apps.synthetic import read_frame_number, write_video_file

sys.path.insert(0, os.path.dirname(__file__))
from rangeserver import RangeServer  # noqa: E402

N = 40
SHAPE = (96, 128)


def make_video(path, codec="libx264", pix="yuv420p", bframes=2, movflags=None, n=N):
    opts = {"bf": bframes, "g": 12, "crf": 10} if codec == "libx264" else None
    return write_video_file(path, range(n), SHAPE, codec, pix, opts, {"movflags": movflags} if movflags else None)


CASES = [
    ("h264_bframes.mp4", dict()),  # edit list (B-frame delay), moov at the end
    ("h264_faststart.mp4", dict(movflags="faststart")),  # moov at the start
    ("h264.mov", dict(bframes=0)),
    ("mjpeg.mp4", dict(codec="mjpeg", pix="yuvj420p")),  # 'mp4v' entry: codec from esds
    ("prores.mov", dict(codec="prores_ks", pix="yuv422p10le")),
    ("h264.mkv", dict()),  # not MP4: the demuxer builds the table
    ("mjpeg.avi", dict(codec="mjpeg", pix="yuvj420p")),
]


@pytest.mark.parametrize("name,kw", CASES, ids=[c[0] for c in CASES])
def test_every_frame_exact_in_shuffled_order(tmp_path, name, kw):
    path = make_video(tmp_path / name, **kw)
    v = imgstore.open_video(path)
    assert v.frame_count == N == len(v) and (v.width, v.height) == (128, 96)
    assert v.keyframes[0] and len(v.frame_sizes) == N
    assert np.allclose(v.frame_times, np.arange(N) / 25.0)
    for n in np.random.default_rng(0).permutation(N):
        assert read_frame_number(v.get_frame(int(n), "bgr24")) == n
    rgb = v.get_frame(3, "rgb24")
    diff = np.abs(rgb[..., ::-1].astype(int) - v.get_frame(3, "bgr24"))
    assert diff.max() <= 2  # the same frame (10-bit sources round a little differently per output format)
    g16 = v.get_frame(3, "gray16le")
    assert g16.dtype == np.uint16 and g16.shape == SHAPE
    assert v.get_frame(3, "rgb48le").shape == SHAPE + (3,)
    with pytest.raises(imgstore.ImgStoreError, match=name):
        v.get_frame(N)
    with pytest.raises(ValueError):
        v.get_frame(0, "yuv9000")


def test_frame_offsets_and_sizes_point_at_the_packets(tmp_path):
    path = make_video(tmp_path / "a.mp4", codec="mjpeg", pix="yuvj420p")
    v = imgstore.open_video(path)
    with open(path, "rb") as f:
        data = f.read()
    for n in (0, 17, 39):
        o, s = int(v.frame_offsets[n]), int(v.frame_sizes[n])
        assert data[o: o + 2] == b"\xff\xd8"  # a JPEG starts there
        assert v.get_frame_data(n) == data[o: o + s]


def _stco_to_co64(path):
    """Rewrite a file whose moov is last so that its chunk offsets are 64-bit (co64)."""
    data = bytearray(open(path, "rb").read())

    def boxes(a, b):
        i = a
        while i < b:
            size, typ = struct.unpack(">I4s", data[i:i + 8])
            yield typ, i, size
            i += size

    top = {t: (i, s) for t, i, s in boxes(0, len(data))}
    mi, ms = top[b"moov"]
    assert mi + ms == len(data)
    pos = data.find(b"stco", mi)
    start = pos - 4
    size = struct.unpack(">I", data[start:start + 4])[0]
    n = struct.unpack(">I", data[pos + 8:pos + 12])[0]
    offs = struct.unpack(">%dI" % n, data[pos + 12:pos + 12 + 4 * n])
    new = struct.pack(">I4sI I", 16 + 8 * n, b"co64", 0, n) + struct.pack(">%dQ" % n, *offs)
    grow = len(new) - size
    data[start:start + size] = new
    # every box enclosing the stco grows by the same amount
    for name in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):
        i = data.rfind(name, mi, start) - 4
        sz = struct.unpack(">I", data[i:i + 4])[0]
        data[i:i + 4] = struct.pack(">I", sz + grow)
    with open(path, "wb") as f:
        f.write(data)


def test_co64_chunk_offsets(tmp_path):
    path = make_video(tmp_path / "a.mp4", bframes=0)
    _stco_to_co64(path)
    assert b"co64" in open(path, "rb").read()
    v = imgstore.open_video(path)
    assert [read_frame_number(v.get_frame(n, "bgr24")) for n in (39, 0, 20)] == [39, 0, 20]


def test_remote_file_reads_only_the_moov_and_the_frames_needed(tmp_path):
    make_video(tmp_path / "intra.mp4", codec="mjpeg", pix="yuvj420p")
    make_video(tmp_path / "inter.mp4")
    with RangeServer(str(tmp_path)) as srv:
        v = imgstore.open_video(f"{srv.url}/intra.mp4")
        size = os.path.getsize(tmp_path / "intra.mp4")
        srv.stats.reset()
        picks = np.random.default_rng(1).permutation(N)[:20]
        for n in picks:
            assert read_frame_number(v.get_frame(int(n), "bgr24")) == n
        assert srv.stats.requests == len(picks)  # one range request per frame
        assert srv.stats.bytes == int(v.frame_sizes[picks].sum())  # exactly the frames' bytes
        assert srv.stats.bytes < size

        w = imgstore.open_video(f"{srv.url}/inter.mp4")
        srv.stats.reset()
        for n in (5, 30, 13):
            assert read_frame_number(w.get_frame(n, "bgr24")) == n
        assert srv.stats.requests == 3


def test_not_a_video(tmp_path):
    p = tmp_path / "x.mp4"
    p.write_bytes(b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00" + b"junk" * 10)
    with pytest.raises(imgstore.ImgStoreError, match="x.mp4"):
        imgstore.open_video(str(p))
    with pytest.raises(imgstore.ImgStoreError, match="nothing.mp4"):
        imgstore.open_video(str(tmp_path / "nothing.mp4"))
