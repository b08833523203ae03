"""Video chunk codec: formats, writer, packet index, exact random access, foreign files.

Every frame carries its own number as a 16-bit barcode (bit k = columns
4k..4k+3 of rows 0..31 white, decoded from columns 4k+1..4k+2), so each
check looks at decoded pixels, not at counters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from fractions import Fraction

import av
import numpy as np
import pytest

from imgstore.codecs.video import (
    DEFAULT_GOP,
    VIDEO_FORMATS,
    VideoChunkReader,
    VideoChunkWriter,
    VideoFormat,
    available_video_formats,
    bgr_to_gray,
    get_video_format,
    resolve_video_format,
)
from imgstore.codecs.video_index import (
    PacketIndex,
    build_packet_index,
    load_packet_index,
    packet_index_key,
)
from imgstore.errors import CorruptChunkError, UnsupportedFormatError
from imgstore.storage import FsspecStorage, LocalStorage
from conftest import bgr2gray_reference

H, W = 96, 128
REF = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "shared", "reference_stores")
REF = os.environ.get("IMGSTORE_REFERENCE_STORES", "/work/shared/reference_stores")
FORMATS = list(available_video_formats())


# ------------------------------------------------------------------ frames that say who they are
def barcode(n: int, h: int = H, w: int = W, color: bool = False) -> np.ndarray:
    """Frame *n*: barcode on top, a textured background that moves from frame to frame below."""
    yy, xx = np.mgrid[0:h, 0:w]
    bg = 100 + 40 * np.sin((xx + 3 * n) / 7.0) * np.cos((yy - 2 * n) / 9.0)
    img = np.clip(bg, 0, 255).astype(np.uint8)
    img[:32] = 0
    for k in range(16):
        if (n >> (15 - k)) & 1:
            img[:32, 4 * k:4 * k + 4] = 255
    if not color:
        return img
    out = np.dstack([img, img, img])
    out[32:, : w // 2] = (200, 60, 30)  # blue-ish left (BGR)
    out[32:, w // 2:] = (30, 60, 200)  # red-ish right
    return out


def frame_number(img: np.ndarray) -> int:
    if img.ndim == 3:
        img = img.mean(axis=2)
    return sum(int(img[:32, 4 * k + 1:4 * k + 3].mean() > 127) << (15 - k) for k in range(16))


def write_chunk(storage, key, fmt, n, color=False, **kw):
    shape = (H, W, 3) if color else (H, W)
    with VideoChunkWriter(storage, key, fmt, shape, **kw) as w:
        for i in range(n):
            w.write(barcode(i, color=color))
    return key


def key_for(fmt: str, stem: str = "000000") -> str:
    return stem + VIDEO_FORMATS[fmt].extension


@pytest.fixture
def storage(tmp_path):
    return LocalStorage(str(tmp_path))


# ------------------------------------------------------------------ formats
def test_format_table_and_availability():
    for name in ("mjpeg/avi", "avc1/mp4", "h264/mkv", "ffv1/mkv"):
        assert name in FORMATS, f"{name} should be writable with PyAV's bundled FFmpeg"
    assert "hevc/mkv" in FORMATS or "av1/mkv" in FORMATS
    f = get_video_format("mjpeg")
    assert f is VIDEO_FORMATS["mjpeg/avi"] and f.extension == ".avi"
    assert VIDEO_FORMATS["ffv1/mkv"].lossless and VIDEO_FORMATS["ffv1/mkv"].supports_16bit
    assert not VIDEO_FORMATS["h264/mkv"].lossless
    with pytest.raises(Exception):
        f.name = "x"  # frozen
    with pytest.raises(UnsupportedFormatError):
        get_video_format("divx/avi")


@pytest.mark.parametrize(
    "name, ext, family, want_ext",
    [
        ("mjpeg", None, "mjpeg", ".avi"),
        ("mjpeg/avi", None, "mjpeg", ".avi"),
        ("libx264", None, "h264", ".mp4"),
        ("libx264", ".mkv", "h264", ".mkv"),
        ("h264_nvenc", None, "h264", ".mp4"),
        ("nvenc-h264/mkv", None, "h264", ".mkv"),
        ("avc1/mp4", None, "h264", ".mp4"),
        ("x264/avi", None, "h264", ".avi"),
        ("hevc_nvenc/mp4", None, "hevc", ".mp4"),
        ("ffv1/mkv", None, "ffv1", ".mkv"),
    ],
)
def test_resolve_legacy_names(name, ext, family, want_ext):
    f = resolve_video_format(name, ext)
    assert isinstance(f, VideoFormat)
    assert f.family == family and f.extension == want_ext


def test_resolve_unknown_name():
    with pytest.raises(UnsupportedFormatError):
        resolve_video_format("png")


# ------------------------------------------------------------------ round trips
def _check_pixels(got, want, lossless):
    assert got.shape == want.shape and got.dtype == want.dtype
    if lossless:
        np.testing.assert_array_equal(got, want)
    else:
        err = np.abs(got.astype(int) - want.astype(int))
        assert err.mean() < 4 and np.percentile(err, 99) < 40, (err.mean(), err.max())


@pytest.mark.parametrize("color", [False, True], ids=["gray", "color"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_and_random_access(storage, fmt, color):
    n = 60
    key = write_chunk(storage, key_for(fmt), fmt, n, color=color, fps=30, gop=10)
    lossless = VIDEO_FORMATS[fmt].lossless
    shape = (H, W, 3) if color else (H, W)
    with VideoChunkReader(storage, key, color=color, imgshape=shape) as r:
        assert len(r) == n
        for i in range(n):
            img = r.read(i)
            assert frame_number(img) == i
            _check_pixels(img, barcode(i, color=color), lossless)
        assert r.seeks == 0  # sequential from the start never seeks
        if color:  # channel order really is BGR
            img = r.read(5)
            assert img[60, 10, 0] > 150 > img[60, 10, 2] and img[60, 100, 2] > 150 > img[60, 100, 0]
    with VideoChunkReader(storage, key, color=color, imgshape=shape) as r:
        order = np.random.default_rng(1).permutation(n)
        for p in order:
            img = r.read(int(p))
            assert frame_number(img) == p
            _check_pixels(img, barcode(int(p), color=color), lossless)
        # after a seek, reading on continues without another seek
        r.read(17)
        seeks = r.seeks
        for p in range(18, 30):
            assert frame_number(r.read(p)) == p
        assert r.seeks == seeks


@pytest.mark.parametrize("fmt", ["h264/mkv", "mjpeg/avi"])
def test_read_unconverted_defers_only_its_own_thread(storage, fmt):
    """read_unconverted hands out frames to convert later; the reader's own read-ahead threads, which
    decode while it runs and which read() then takes its frames from, go on converting theirs."""
    from imgstore.codecs.video.pixels import Unconverted

    n, half = 60, 30
    key = write_chunk(storage, key_for(fmt), fmt, n, color=True, fps=30, gop=n)
    with VideoChunkReader(storage, key, color=True, imgshape=(H, W, 3)) as r:
        got = [r.read_unconverted(i) for i in range(half)]  # reading on: the read-ahead runs meanwhile
        got += [r.read(i) for i in range(half, n)]
    assert all(isinstance(g, np.ndarray) for g in got[half:])
    kinds = {type(g) for g in got[:half]}
    # H.264: the caller's own decoding is deferred; MJPEG's frames all come converted from the pool
    assert Unconverted in kinds if fmt == "h264/mkv" else kinds == {np.ndarray}
    for i, g in enumerate(got):
        img = g.image() if isinstance(g, Unconverted) else g
        assert frame_number(img) == i
        _check_pixels(img, barcode(i, color=True), VIDEO_FORMATS[fmt].lossless)
    with VideoChunkReader(storage, key, color=False, imgshape=(H, W)) as r:  # gray: converted at once
        assert isinstance(r.read_unconverted(3), np.ndarray)


def test_gray_file_read_as_color_and_color_file_read_as_gray(storage):
    key = write_chunk(storage, "g.mkv", "h264/mkv", 12)
    with VideoChunkReader(storage, key, color=True) as r:
        img = r.read(3)
        assert img.shape == (H, W, 3) and frame_number(img) == 3
        assert np.array_equal(img[..., 0], img[..., 2])
    key = write_chunk(storage, "c.mkv", "h264/mkv", 12, color=True)
    with VideoChunkReader(storage, key, color=True) as rc, VideoChunkReader(storage, key, color=False) as rg:
        for p in (0, 7, 3):
            # gray from a colour file is OpenCV's BGR2GRAY of the BGR frame, bit for bit
            np.testing.assert_array_equal(rg.read(p), bgr_to_gray(rc.read(p)))


def test_bgr_to_gray_is_opencv_bgr2gray_for_every_colour():
    # every one of the 2**24 BGR colours, against OpenCV itself where it is installed and against the
    # 15-bit fixed-point formula OpenCV 4.x uses (the 14-bit variant differs for 43864 colours)
    v = np.arange(1 << 24, dtype=np.uint32)
    bgr = np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
    got = bgr_to_gray(bgr)
    np.testing.assert_array_equal(got, bgr2gray_reference(bgr))
    cv2 = pytest.importorskip("cv2")
    np.testing.assert_array_equal(got, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))


def test_bgr_to_gray_16bit_and_strided_input():
    rng = np.random.default_rng(0)
    bgr16 = rng.integers(0, 65536, (37, 41, 3), dtype=np.uint16)
    b, g, r = (bgr16[..., i].astype(np.int64) for i in range(3))
    want = (r * 9798 + g * 19235 + b * 3735 + 16384) >> 15
    np.testing.assert_array_equal(bgr_to_gray(bgr16), want.astype(np.uint16))
    bgr = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    view = bgr[::2, 5:50]  # not contiguous
    np.testing.assert_array_equal(bgr_to_gray(view), bgr2gray_reference(view))


def test_x264_gray_samples_are_not_range_stretched(storage):
    # gray written as x264 'gray' must be tagged full range, else decoders map 16..235 to 0..255
    ramp = np.tile(np.arange(256, dtype=np.uint8)[::2], (H, 1))[:, :W]
    with VideoChunkWriter(storage, "r.mkv", "h264/mkv", (H, W), crf=0) as w:
        for _ in range(3):
            w.write(ramp)
    with VideoChunkReader(storage, "r.mkv", color=False) as r:
        np.testing.assert_array_equal(r.read(1), ramp)


# ------------------------------------------------------------------ lossless ffv1
def test_ffv1_bit_exact_gray8_gray16_color(storage):
    rng = np.random.default_rng(7)
    cases = [
        ((H, W), np.uint8, False),
        ((H, W), np.uint16, False),
        ((H, W, 3), np.uint8, True),
        ((49, 65), np.uint8, False),  # ffv1 takes odd sizes
    ]
    for j, (shape, dtype, color) in enumerate(cases):
        hi = 65536 if dtype == np.uint16 else 256
        frames = [rng.integers(0, hi, shape, dtype=dtype) for _ in range(8)]
        key = f"{j:06d}.mkv"
        with VideoChunkWriter(storage, key, "ffv1/mkv", shape, dtype=dtype) as w:
            for f in frames:
                w.write(f)
        with VideoChunkReader(storage, key, color=color, imgshape=shape, dtype=dtype) as r:
            assert len(r) == len(frames)
            for p in (5, 0, 7, 3):
                got = r.read(p)
                assert got.dtype == dtype and got.shape == shape
                np.testing.assert_array_equal(got, frames[p])


def test_writer_rejects_what_the_codec_cannot_store(storage):
    with pytest.raises(UnsupportedFormatError):
        VideoChunkWriter(storage, "a.mkv", "h264/mkv", (H, W), dtype=np.uint16)
    with pytest.raises(ValueError, match=r"a\.mkv.*even"):
        VideoChunkWriter(storage, "a.mkv", "h264/mkv", (49, 64))
    with pytest.raises(ValueError, match=r"b\.avi.*even"):
        VideoChunkWriter(storage, "b.avi", "mjpeg/avi", (48, 65, 3))
    with VideoChunkWriter(storage, "c.mkv", "h264/mkv", (H, W)) as w:
        with pytest.raises(ValueError, match="shape"):
            w.write(np.zeros((H, W, 3), np.uint8))
        with pytest.raises(ValueError, match="dtype"):
            w.write(np.zeros((H, W), np.uint16))
        w.write(barcode(0))


# ------------------------------------------------------------------ writer behaviour
def test_fps_time_base_and_gop(storage):
    write_chunk(storage, "a.mkv", "h264/mkv", 30, fps=50, gop=7)
    idx = load_packet_index(storage, "a.mkv")
    np.testing.assert_allclose(idx.times(), np.arange(30) / 50, atol=1e-3)
    keys = np.flatnonzero(idx.is_key)
    assert keys[0] == 0 and np.all(np.diff(keys) <= 7)
    write_chunk(storage, "b.mp4", "avc1/mp4", DEFAULT_GOP + 5)
    idx = load_packet_index(storage, "b.mp4")
    np.testing.assert_allclose(idx.times(), np.arange(DEFAULT_GOP + 5) / 25, atol=1e-3)  # fps=None -> 25
    assert np.flatnonzero(idx.is_key).tolist()[:2] == [0, DEFAULT_GOP]


@pytest.mark.parametrize("fmt, color", [("mjpeg/avi", False), ("h264/mkv", False), ("h264/mkv", True)])
def test_write_copies_the_frame(storage, fmt, color):
    # gray x264 input is copied; anything converted (gray -> yuvj420p, BGR -> yuv420p) is read in place
    buf = barcode(1, color=color)
    key = key_for(fmt)
    with VideoChunkWriter(storage, key, fmt, buf.shape) as w:
        for i in range(20):
            buf[...] = barcode(i, color=color)
            w.write(buf)  # the caller reuses its buffer at once
    with VideoChunkReader(storage, key, color=color) as r:
        assert [frame_number(r.read(i)) for i in range(20)] == list(range(20))


def test_encoder_error_reaches_the_caller(storage):
    w = VideoChunkWriter(storage, "a.mkv", "h264/mkv", (H, W))

    def boom(arr):
        raise RuntimeError("encoder exploded")

    w._encode = boom
    w.write(barcode(0))
    with pytest.raises(RuntimeError, match="encoder exploded"):
        for i in range(50):  # raised by a later write (or the flush)
            w.write(barcode(i))
        w.flush()
    with pytest.raises(RuntimeError, match="encoder exploded"):
        w.close()


@pytest.mark.parametrize("fmt,copts", [("h264/mkv", None), ("mjpeg/avi", None), ("avc1/mp4", None),
                                       ("avc1/mp4", {"movflags": None, "frag_duration": None})])
def test_durable_count_matches_a_crash_snapshot(storage, tmp_path, fmt, copts):
    key = key_for(fmt, "d")
    w = VideoChunkWriter(storage, key, fmt, (H, W), container_options=copts)
    for i in range(80):
        w.write(barcode(i))
    w.flush()
    durable = w.durable_count()
    snap = "snap" + VIDEO_FORMATS[fmt].extension
    shutil.copy(storage.local_path(key), storage.local_path(snap))
    if copts is not None:  # plain MP4: no moov before close, nothing readable
        assert durable == 0
        with pytest.raises(CorruptChunkError):
            VideoChunkReader(storage, snap, color=False)
    else:
        assert 40 <= durable <= 80  # fragmented MP4 like MKV: ~1 s may still be in the muxer
        with VideoChunkReader(storage, snap, color=False) as r:
            assert len(r) == durable  # exact: every packet in a complete cluster/fragment, no more
            assert [frame_number(r.read(i)) for i in range(durable)] == list(range(durable))
    w.close()
    assert w.durable_count() == 80


def test_sigkilled_writer_leaves_readable_mkv(tmp_path):
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_video_codec import barcode
        from imgstore.storage import LocalStorage
        from imgstore.codecs.video import VideoChunkWriter
        w = VideoChunkWriter(LocalStorage({str(tmp_path)!r}), "000000.mkv", "h264/mkv", ({H}, {W}), fps=25)
        for i in range(120):
            w.write(barcode(i))
        w.flush()
        print(w.durable_count(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == -9, p.stderr
    durable = int(p.stdout.split()[0])
    st = LocalStorage(str(tmp_path))
    assert not st.exists("000000.pktidx.npz")  # the writer never got to close
    with VideoChunkReader(st, "000000.mkv", color=False) as r:
        assert len(r) >= durable >= 90
        for p_ in np.random.default_rng(0).permutation(len(r)):
            assert frame_number(r.read(int(p_))) == p_
    assert st.exists("000000.pktidx.npz")  # rebuilt by the reader


# ------------------------------------------------------------------ packet index
def test_packet_index_file(storage):
    write_chunk(storage, "000003.mkv", "h264/mkv", 40, gop=10)
    assert packet_index_key("000003.mkv") == "000003.pktidx.npz"
    assert packet_index_key("sub/000003.avi") == "sub/000003.pktidx.npz"
    assert storage.exists("000003.pktidx.npz") and not storage.exists("000003.npz")
    with np.load(storage.local_path("000003.pktidx.npz")) as z:
        assert z["pts"].dtype == np.int64 and z["is_key"].dtype == bool
        assert z["pos"].dtype == np.int64 and z["size"].dtype == np.int32
        assert len(z["pts"]) == 40 and int(z["tb_den"]) > 0
        assert int(z["file_size"]) == os.path.getsize(storage.local_path("000003.mkv"))
        assert np.all(z["pos"] > 0) and z["is_key"][0]


def test_missing_stale_and_corrupt_index_rebuilt(storage):
    write_chunk(storage, "000000.mkv", "h264/mkv", 30)
    write_chunk(storage, "000001.mkv", "h264/mkv", 12)
    ikey = packet_index_key("000000.mkv")
    good = storage.read_bytes(ikey)

    storage.remove(ikey)
    with VideoChunkReader(storage, "000000.mkv", color=False) as r:
        assert len(r) == 30 and frame_number(r.read(29)) == 29
    assert storage.read_bytes(ikey) == good  # rebuilt and saved, identical

    storage.write_bytes(ikey, storage.read_bytes(packet_index_key("000001.mkv")))  # another chunk's
    with VideoChunkReader(storage, "000000.mkv", color=False) as r:
        assert len(r) == 30 and frame_number(r.read(20)) == 20
    assert PacketIndex.from_bytes(storage.read_bytes(ikey)).frame_count == 30

    storage.write_bytes(ikey, b"not an npz at all")
    assert len(load_packet_index(storage, "000000.mkv")) == 30

    # a store that cannot be written: still readable, nothing written
    class ReadOnly(LocalStorage):
        writable = False

    ro = ReadOnly(storage.root)
    storage.remove(ikey)
    assert len(build_packet_index(ro, "000000.mkv")) == 30
    with VideoChunkReader(ro, "000000.mkv", color=False) as r:
        assert frame_number(r.read(11)) == 11
    assert not storage.exists(ikey)
    with pytest.raises(CorruptChunkError):
        load_packet_index(ro, "000000.mkv", rebuild=False)


# ------------------------------------------------------------------ files from elsewhere
def _pyav_file(path, container, opts, pts, time_base=None, gop=12):
    with av.open(path, "w", format=container) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        if time_base is not None:
            s.codec_context.time_base = time_base
        s.codec_context.gop_size = gop
        s.codec_context.options = opts
        for i, t in enumerate(pts):
            f = av.VideoFrame.from_ndarray(barcode(i, color=True), format="bgr24")
            f.pts = int(t)
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


BFRAMES = {"x264-params": "bframes=3:b-adapt=0:scenecut=0"}
VFR_PTS = np.cumsum(np.random.default_rng(5).integers(1, 90, 120))


@pytest.mark.parametrize(
    "name, container, opts, pts, tb",
    [
        ("bframes.mp4", "mp4", BFRAMES, np.arange(120), None),
        ("bframes.mkv", "matroska", BFRAMES, np.arange(120), None),
        ("opengop.mkv", "matroska", {"x264-params": "bframes=3:b-adapt=0:scenecut=0:open-gop=1"}, np.arange(120), None),
        ("vfr.mkv", "matroska", BFRAMES, VFR_PTS, Fraction(1, 1000)),
        ("vfr.mp4", "mp4", {}, VFR_PTS, Fraction(1, 1000)),
    ],
)
def test_bframes_and_vfr_seek_exactly(storage, name, container, opts, pts, tb):
    _pyav_file(storage.local_path(name), container, dict(opts), pts, tb)
    idx = build_packet_index(storage, name)
    if opts:
        assert np.any(np.diff(idx.pts) < 0), "test file should have B-frames (decode order != display order)"
    n = len(pts)
    with VideoChunkReader(storage, name, color=False, cache_frames=8) as r:
        assert len(r) == n
        if tb is not None:
            np.testing.assert_allclose(r.pts * float(r.time_base), pts / 1000, atol=1e-3)
        for p in np.random.default_rng(3).permutation(n):
            img = r.read(int(p))
            assert frame_number(img) == p
            assert np.abs(img[40:].astype(int) - bgr_to_gray(barcode(int(p), color=True))[40:]).mean() < 4
        assert [frame_number(r.read(p)) for p in range(n)] == list(range(n))


def _manifest():
    path = os.path.join(REF, "manifest.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)["stores"]


def _ref_source(fn, shape):
    img = np.full(shape[:2], 128, np.uint8)
    img[:32] = 0
    for k in range(16):
        if (fn >> (15 - k)) & 1:
            img[:32, 4 * k:4 * k + 4] = 255
    if len(shape) == 2:
        return img
    out = np.dstack([img] * 3)
    out[32:, :32] = (255, 0, 0)
    out[32:, 32:64] = (0, 0, 255)
    return out


VIDEO_STORES = sorted(k for k, v in _manifest().items() if v.get("class", "").startswith("VideoImgStore"))


@pytest.mark.skipif(not VIDEO_STORES, reason="reference stores not available")
@pytest.mark.parametrize("name", VIDEO_STORES)
def test_reference_store_chunks_decode_to_their_frame_numbers(name):
    import yaml

    spec = _manifest()[name]
    folder = os.path.join(REF, name)
    with open(os.path.join(folder, "metadata.yaml")) as f:
        md = yaml.safe_load(f)["__store"]
    fmt = resolve_video_format(md["format"], md.get("extension"))
    st = LocalStorage(folder)
    before = sorted(os.listdir(folder))
    chunks = sorted(f for f in before if f.endswith(fmt.extension))
    shape = tuple(spec.get("image_shape_read") or md["imgshape"])
    color = len(shape) == 3
    motif = "motif" in name

    def decode(img):
        if motif:
            return sum(int(img[:, 32 * k + 8:32 * k + 24].mean() > 127) << (15 - k) for k in range(16))
        return frame_number(img)

    got, counts = [], []
    for key in chunks:
        with VideoChunkReader(st, key, color=color, imgshape=shape, write_index=False) as r:
            counts.append(len(r))
            seq = [r.read(p) for p in range(len(r))]
            assert all(img.shape == shape and img.dtype == np.uint8 for img in seq)
            got += [decode(img) for img in seq]
            order = np.random.default_rng(0).permutation(len(r))
            assert [decode(r.read(int(p))) for p in order] == [decode(seq[p]) for p in order]
            if not motif:
                base = sum(counts[:-1])
                for p, img in enumerate(seq):
                    src = _ref_source(spec["frame_numbers"][base + p], shape)
                    assert np.abs(img.astype(int) - src).max() <= spec["max_abs_pixel_error_vs_source"]
    assert got == spec["frame_numbers"]
    want_counts = spec.get("chunk_frame_counts")
    if want_counts:
        assert [c for c in counts if c] == want_counts
    assert sorted(os.listdir(folder)) == before  # reading wrote nothing into the store


# ------------------------------------------------------------------ damaged files
@pytest.mark.parametrize("fmt", ["h264/mkv", "ffv1/mkv", "mjpeg/avi"])
def test_truncated_file_reads_complete_frames(storage, fmt):
    key = write_chunk(storage, key_for(fmt), fmt, 150, gop=25)
    full = load_packet_index(storage, key)
    with open(storage.local_path(key), "rb") as f:
        data = f.read()
    cut = int(len(data) * 0.6)
    cut_key = "cut" + VIDEO_FORMATS[fmt].extension
    with open(storage.local_path(cut_key), "wb") as f:
        f.write(data[:cut])
    complete = int(np.sum(full.pos + full.size <= cut))
    with VideoChunkReader(storage, cut_key, color=False) as r:
        assert len(r) == complete and 50 < complete < 150
        for p in list(np.random.default_rng(2).permutation(len(r))) + list(range(len(r))):
            img = r.read(int(p))
            assert frame_number(img) == p
            _check_pixels(img, barcode(int(p)), VIDEO_FORMATS[fmt].lossless)
        with pytest.raises(IndexError, match=r"cut\.\w+.*out of range"):
            r.read(len(r))
        with pytest.raises(IndexError):
            r.read(-1)


def test_truncated_mp4_and_garbage_raise_corrupt_chunk(storage):
    key = write_chunk(storage, "000000.mp4", "avc1/mp4", 30)
    with open(storage.local_path(key), "rb") as f:
        data = f.read()
    with open(storage.local_path("000001.mp4"), "wb") as f:
        f.write(data[: len(data) // 2])
    with open(storage.local_path("000002.mkv"), "wb") as f:
        f.write(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    for bad in ("000001.mp4", "000002.mkv"):
        with pytest.raises(CorruptChunkError, match=bad.replace(".", r"\.")):
            VideoChunkReader(storage, bad, color=False)
    with pytest.raises(FileNotFoundError):
        VideoChunkReader(storage, "000009.mkv", color=False)


# ------------------------------------------------------------------ cache and batches
def test_cache_serves_clustered_access_without_decoding(storage):
    write_chunk(storage, "a.mkv", "h264/mkv", 150, gop=50)  # keyframes at 0, 50, 100
    with VideoChunkReader(storage, "a.mkv", color=False, cache_frames=64) as r:
        assert frame_number(r.read(140)) == 140
        assert r.frames_decoded == 41  # keyframe 100 .. 140, nothing else
        rng = np.random.default_rng(0)
        for p in rng.integers(100, 141, 60):
            assert frame_number(r.read(int(p))) == p
        assert r.frames_decoded == 41 and r.cache_hits == 60
    with VideoChunkReader(storage, "a.mkv", color=False, cache_frames=0) as r:
        r.read(140)
        for p in np.random.default_rng(0).integers(100, 141, 60):
            assert frame_number(r.read(int(p))) == p
        assert r.frames_decoded > 41 * 10  # without the cache every read walks from the keyframe


def test_read_many_decodes_each_gop_once(storage):
    write_chunk(storage, "a.mkv", "h264/mkv", 100, gop=20)
    pos = [int(p) for p in np.random.default_rng(4).permutation(100)[:70]] + [5, 5]
    with VideoChunkReader(storage, "a.mkv", color=False, cache_frames=4) as r:
        frames = r.read_many(pos)
        assert [frame_number(f) for f in frames] == pos
        assert r.frames_decoded <= 100  # never more than one pass over the chunk
        frames[-1][0, 0] = 7  # repeats are separate arrays
        assert frames[-2][0, 0] != 7 or barcode(5)[0, 0] == 7


def _opencv_style_chunk(storage, key, n=100, h=H, w=W, **options):
    """A chunk like those the original imgstore (OpenCV) writes: x264 defaults with B-frames, one
    keyframe for the whole chunk, one slice per frame, yuv420p from BGR."""
    with av.open(storage.local_path(key), "w") as c:
        st = c.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.codec_context.gop_size = 250
        st.codec_context.thread_count = 1  # one slice per frame
        st.codec_context.options = dict({"preset": "veryfast"}, **options)  # bframes=3
        for i in range(n):
            vf = av.VideoFrame.from_ndarray(barcode(i, h, w, color=True), format="bgr24")
            vf.pts = i
            for p in st.encode(vf):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    return key


def _clustered(n, reads, seed=0):
    """Positions within +-50 frames of a centre that wanders by up to 20 frames a step."""
    rng = np.random.default_rng(seed)
    centre, out = n // 2, []
    for _ in range(reads):
        centre = int(np.clip(centre + rng.integers(-20, 21), 0, n - 1))
        out.append(int(np.clip(centre + rng.integers(-50, 51), 0, n - 1)))
    return out


def test_clustered_reads_of_a_one_keyframe_chunk_decode_each_frame_once(storage):
    from imgstore.codecs.frame_cache import FrameCache

    key = _opencv_style_chunk(storage, "a.mp4")
    idx = load_packet_index(storage, key)
    assert idx.is_key.sum() == 1 and np.any(np.diff(idx.pts) < 0)  # one GOP, B-frames reorder
    picks = _clustered(100, 80)
    with VideoChunkReader(storage, key, color=False) as r:  # the shared cache's default budget
        for p in picks:
            assert frame_number(r.read(p)) == p
        # every frame decoded at most once: the walk goes on from where it stopped, frames passed
        # on the way stay in the cache
        assert r.seeks == 0 and r.frames_decoded <= 100
    tiny = FrameCache(max_bytes=4 * H * W * 3 // 2)  # four frames
    with VideoChunkReader(storage, key, color=False, cache=tiny) as r:
        for p in picks:
            assert frame_number(r.read(p)) == p
        assert r.seeks > 10 and r.frames_decoded > 500  # what a budget too small for a GOP costs
        assert tiny.nbytes <= tiny.max_bytes


def test_one_slice_h264_walks_on_frame_threads_sliced_h264_on_slice_threads(storage):
    from imgstore.codecs.video_packets import h264_slice_count

    _opencv_style_chunk(storage, "one.mp4", n=60)
    _opencv_style_chunk(storage, "three.mp4", n=60, slices="3")
    _opencv_style_chunk(storage, "short-gop.mp4", n=60, g="20")
    for key, slices, frame_threads in (("one.mp4", 1, True), ("three.mp4", 3, False),
                                       ("short-gop.mp4", 1, False)):
        idx = load_packet_index(storage, key)
        with open(storage.local_path(key), "rb") as f:
            data = f.read()
        counts = {h264_slice_count(idx.extradata, data[a:a + n]) for a, n in zip(idx.payload, idx.size)}
        assert counts == {slices}
        with VideoChunkReader(storage, key, color=True) as r:
            for p in (17, 3, 59, 0, 40):
                assert frame_number(r.read(p)) == p
            assert r._frame_threads is frame_threads


def test_h264_slice_count_annex_b_and_bad_input():
    from imgstore.codecs.video_packets import h264_slice_count

    nal = lambda t, n=5: bytes([t]) + bytes(range(1, n))  # noqa: E731
    annexb = b"\x00\x00\x00\x01" + nal(9) + b"\x00\x00\x01" + nal(0x65) + b"\x00\x00\x01" + nal(0x65)
    assert h264_slice_count(b"", annexb) == 2
    avcc = b"\x01\x64\x00\x1f\xff" + b"\x00" * 8
    packet = b"".join(len(x).to_bytes(4, "big") + x for x in (nal(6), nal(0x41), nal(0x41), nal(0x41)))
    assert h264_slice_count(avcc, packet) == 3
    assert h264_slice_count(avcc, packet[:-2]) is None  # a length running past the end
    assert h264_slice_count(avcc, b"") is None


# ------------------------------------------------------------------ remote storage
def test_fsspec_memory_storage_round_trip():
    import uuid

    st = FsspecStorage(f"memory://imgstore-video-{uuid.uuid4().hex}", create=True)
    write_chunk(st, "000000.mkv", "h264/mkv", 40, gop=10)
    assert st.local_path("000000.mkv") is None and st.exists("000000.pktidx.npz")
    with VideoChunkReader(st, "000000.mkv", color=False) as r:
        assert len(r) == 40
        for p in (33, 2, 17, 18, 19):
            assert frame_number(r.read(p)) == p


# ------------------------------------------------------------------ packet-direct decoding
def _same_frames_both_ways(storage, key, n_expected=None, **kw):
    """Every frame, read at random, sequentially and backwards, is identical packet-direct and through
    the demuxer, for gray and colour readers."""
    for color in (False, True):
        with VideoChunkReader(storage, key, color=color, cache_frames=8, **kw) as a, \
                VideoChunkReader(storage, key, color=color, cache_frames=8, direct=False, **kw) as b:
            assert a.direct and not b.direct
            n = len(a)
            if n_expected is not None:
                assert n == n_expected
            order = [int(p) for p in np.random.default_rng(0).permutation(n)] + list(range(n)) + \
                list(range(n - 1, -1, -3))
            for p in order:
                x, y = a.read(p), b.read(p)
                assert x.dtype == y.dtype and np.array_equal(x, y), (key, color, p)


@pytest.mark.parametrize("fmt", FORMATS)
def test_packet_direct_equals_demuxer(storage, fmt):
    for color in (False, True):
        key = key_for(fmt, f"c{int(color)}")
        write_chunk(storage, key, fmt, 70, color=color, gop=12)
        idx = load_packet_index(storage, key)
        assert idx.version == 2 and idx.has_payload and idx.codec
        assert idx.width == W and idx.height == H
        _same_frames_both_ways(storage, key, 70)


@pytest.mark.parametrize("name, container, opts", [
    ("bframes.mp4", "mp4", BFRAMES),
    ("bframes.mkv", "matroska", BFRAMES),
    ("pyramid.mkv", "matroska", {"x264-params": "bframes=3:b-pyramid=normal:b-adapt=0:scenecut=0"}),
    ("opengop.mkv", "matroska", {"x264-params": "bframes=3:b-adapt=0:scenecut=0:open-gop=1"}),
    ("vfr.mkv", "matroska", BFRAMES),
])
def test_packet_direct_equals_demuxer_bframes_open_gop_vfr(storage, name, container, opts):
    pts = VFR_PTS if name.startswith("vfr") else np.arange(120)
    tb = Fraction(1, 1000) if name.startswith("vfr") else None
    _pyav_file(storage.local_path(name), container, dict(opts), pts, tb)
    _same_frames_both_ways(storage, name, 120)


def test_packet_direct_reads_one_span_per_random_frame(storage):
    """A random read takes the bytes from the keyframe at or before the target to the end of the target's
    packet, in one read, and decodes just those packets."""
    write_chunk(storage, "a.mkv", "h264/mkv", 100, gop=20)
    idx = load_packet_index(storage, "a.mkv")
    # Matroska: FFmpeg's pos is the Block's data; the packet follows the track number, timecode and flags
    assert np.all(idx.payload > idx.pos) and np.all(idx.payload - idx.pos <= 12)
    with open(storage.local_path("a.mkv"), "rb") as f:
        data = f.read()
    reads = []
    for p in (57, 3, 99, 40):
        with VideoChunkReader(storage, "a.mkv", color=False, cache_frames=0) as r:
            orig = r._src.read
            r._src.read = lambda a, b, orig=orig: reads.append((a, b)) or orig(a, b)
            assert frame_number(r.read(p)) == p
            assert r.frames_decoded == p % 20 + 1
        k = p - p % 20
        assert reads[-1] == (idx.payload[k], idx.payload[p] + idx.size[p])
    assert len(reads) == 4
    assert data[idx.payload[5]:idx.payload[5] + idx.size[5]] == data[idx.payload[5]:][:idx.size[5]]


def test_mp4_and_avi_payload_is_ffmpeg_pos(storage):
    for fmt in ("avc1/mp4", "mjpeg/avi"):
        key = write_chunk(storage, key_for(fmt), fmt, 30)
        idx = load_packet_index(storage, key)
        np.testing.assert_array_equal(idx.payload, idx.pos)


def test_version_1_index_is_upgraded(storage):
    write_chunk(storage, "a.mkv", "h264/mkv", 30, gop=10)
    ikey = packet_index_key("a.mkv")
    v2 = load_packet_index(storage, "a.mkv")
    v1 = PacketIndex(pts=v2.pts, is_key=v2.is_key, pos=v2.pos, size=v2.size, time_base=v2.time_base,
                     file_size=v2.file_size, version=1)
    old = v1.to_bytes()
    with np.load(__import__("io").BytesIO(old)) as z:
        assert int(z["version"]) == 1 and "payload" not in z.files
    back = PacketIndex.from_bytes(old)
    assert back.version == 1 and back.payload is None and not back.has_payload

    # writable: rebuilt and saved as version 2
    storage.write_bytes(ikey, old)
    with VideoChunkReader(storage, "a.mkv", color=False) as r:
        assert r.direct and frame_number(r.read(17)) == 17
    assert PacketIndex.from_bytes(storage.read_bytes(ikey)).version == 2

    # read-only (local): upgraded in memory, the file left alone
    class ReadOnly(LocalStorage):
        writable = False

    storage.write_bytes(ikey, old)
    ro = ReadOnly(storage.root)
    with VideoChunkReader(ro, "a.mkv", color=False) as r:
        assert r.direct and frame_number(r.read(23)) == 23
    assert storage.read_bytes(ikey) == old
    assert load_packet_index(ro, "a.mkv", rebuild=False).version == 1  # imgstore-recover leaves it be


def test_packets_not_found_in_the_file_fall_back_to_the_demuxer(storage):
    write_chunk(storage, "a.mkv", "h264/mkv", 40, gop=10)
    idx = load_packet_index(storage, "a.mkv")
    payload = idx.payload.copy()
    payload[7] = -1  # e.g. Matroska header stripping: the packet is not in the file verbatim
    odd = PacketIndex(pts=idx.pts, is_key=idx.is_key, pos=idx.pos, size=idx.size, time_base=idx.time_base,
                      file_size=idx.file_size, payload=payload, codec=idx.codec, extradata=idx.extradata,
                      width=idx.width, height=idx.height, pix_fmt=idx.pix_fmt, color=idx.color)
    with VideoChunkReader(storage, "a.mkv", color=False, index=odd) as r:
        assert not r.direct
        assert [frame_number(r.read(p)) for p in (33, 7, 8, 0)] == [33, 7, 8, 0]


def test_decoder_that_gives_nothing_falls_back_to_the_demuxer(storage):
    write_chunk(storage, "a.mkv", "h264/mkv", 40, gop=10)
    idx = load_packet_index(storage, "a.mkv")
    bad = PacketIndex(pts=idx.pts, is_key=idx.is_key, pos=idx.pos, size=idx.size, time_base=idx.time_base,
                      file_size=idx.file_size, payload=idx.payload, codec=idx.codec, extradata=b"\x01garbage",
                      width=idx.width, height=idx.height, pix_fmt=idx.pix_fmt, color=idx.color)
    with VideoChunkReader(storage, "a.mkv", color=False, index=bad) as r:
        assert r.direct
        assert frame_number(r.read(25)) == 25  # through the demuxer
        assert not r.direct
        assert [frame_number(r.read(p)) for p in (3, 39)] == [3, 39]


@pytest.mark.parametrize("fmt", ["h264/mkv", "mjpeg/avi", "ffv1/mkv"])
def test_sequential_read_ahead_then_random_jumps(storage, fmt):
    key = write_chunk(storage, key_for(fmt), fmt, 120, gop=15)
    with VideoChunkReader(storage, key, color=False, cache_frames=16) as r:
        got = [frame_number(r.read(p)) for p in range(50)]
        assert r._ahead is not None  # decoding ahead while we read on
        got += [frame_number(r.read(p)) for p in (110, 4, 51, 52, 53, 119)]
        got += [frame_number(r.read(p)) for p in range(60, 120)]
        assert got == list(range(50)) + [110, 4, 51, 52, 53, 119] + list(range(60, 120))
        seq = r.frames_decoded
        assert seq < 120 + 60  # read ahead decodes each frame once, give or take a GOP per jump
    # a reader dropped without close() lets its read-ahead thread end
    r = VideoChunkReader(storage, key, color=False)
    [r.read(p) for p in range(5)]
    del r


def test_read_many_intra_in_parallel_and_inter_once_per_gop(storage):
    key = write_chunk(storage, "a.avi", "mjpeg/avi", 60)
    pos = [int(p) for p in np.random.default_rng(1).permutation(60)[:40]]
    with VideoChunkReader(storage, key, color=True, cache_frames=4) as r:
        frames = r.read_many(pos)
        assert [frame_number(f) for f in frames] == pos
        assert r.frames_decoded == 40
    key = write_chunk(storage, "b.mkv", "h264/mkv", 60, gop=12)
    with VideoChunkReader(storage, key, color=False, cache_frames=4) as r:
        assert [frame_number(f) for f in r.read_many(pos)] == pos
        assert r.frames_decoded <= 60


def test_h264_gray_is_known_monochrome(storage):
    from imgstore.codecs.video_packets import h264_chroma_format

    write_chunk(storage, "g.mkv", "h264/mkv", 5)
    write_chunk(storage, "c.mkv", "h264/mkv", 5, color=True)
    assert h264_chroma_format(load_packet_index(storage, "g.mkv").extradata) == 0
    assert h264_chroma_format(load_packet_index(storage, "c.mkv").extradata) == 1
    assert h264_chroma_format(b"") is None and h264_chroma_format(b"\x01\x02") is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.parametrize("fmt", ["h264/mkv", "mjpeg/avi"])
def test_reader_keeps_working_in_a_forked_child(storage, fmt):
    """Decoder threads, the read-ahead thread and the shared pools stay in the parent: a child that
    inherits an open reader (a DataLoader worker, say) must neither hang nor return a wrong frame."""
    key = write_chunk(storage, key_for(fmt), fmt, 80, gop=20)
    r = VideoChunkReader(storage, key, color=False)
    assert [frame_number(r.read(p)) for p in range(30)] == list(range(30))  # reading ahead now
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(rd)
            got = [frame_number(r.read(p)) for p in list(range(30, 60)) + [5, 77, 12]]
            r2 = VideoChunkReader(storage, key, color=False)
            got += [frame_number(r2.read(p)) for p in range(40, 70)]
            code = 0 if got == list(range(30, 60)) + [5, 77, 12] + list(range(40, 70)) else 2
        finally:
            os.write(wr, bytes([code]))
            os._exit(code)
    os.close(wr)
    import select

    ready, _, _ = select.select([rd], [], [], 60)
    if not ready:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung")
    code = os.read(rd, 1)
    os.waitpid(pid, 0)
    os.close(rd)
    assert code == b"\x00"
    assert [frame_number(r.read(p)) for p in range(30, 40)] == list(range(30, 40))  # the parent reads on
    r.close()
