"""JPEG bands at restart markers: what FFmpeg decodes from the bands, stacked, is the whole picture.

Pictures come from FFmpeg's MJPEG encoder on slice threads (a restart marker
after every MCU row, as the ``mjpeg/avi`` format writes) and from Pillow
(libjpeg: other restart intervals, one-component gray); every check decodes
pixels with FFmpeg and compares bands against the whole picture.
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from imgstore.codecs.video import bands as bands_mod
from imgstore.codecs.video import pools as pools_mod
from imgstore.codecs.jpeg_restart import restart_bands
from imgstore.codecs.video import VideoChunkReader, VideoChunkWriter
from imgstore.storage import LocalStorage


def picture(h: int, w: int, seed: int = 0, color: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(xx / 5.0 + seed) * np.cos(yy / 7.0)
    img = np.stack([base + 40 * np.sin(yy / (3.0 + c)) for c in range(3)], -1) if color else base
    img = img + rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def ffmpeg_jpeg(img: np.ndarray, pix_fmt: str = "yuvj420p", threads: int = 2) -> bytes:
    """One JPEG from FFmpeg's MJPEG encoder; on slice threads it writes a restart marker per MCU row."""
    h, w = img.shape[:2]
    cc = av.CodecContext.create("mjpeg", "w")
    cc.width, cc.height, cc.pix_fmt = w, h, pix_fmt
    cc.time_base = Fraction(1, 25)
    cc.thread_type, cc.thread_count = "SLICE", threads
    cc.options = {"flags": "+qscale", "global_quality": str(3 * 118), "qmin": "3", "qmax": "3"}
    src = av.VideoFrame.from_ndarray(img, "bgr24" if img.ndim == 3 else "gray").reformat(format=pix_fmt)
    src.pts = 0
    out = b"".join(bytes(p) for p in cc.encode(src)) + b"".join(bytes(p) for p in cc.encode(None))
    return out


def pillow_jpeg(img: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img[..., ::-1] if img.ndim == 3 else img).save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def decode(jpeg: bytes):
    cc = av.CodecContext.create("mjpeg", "r")  # a fresh decoder, told no frame size
    (fr,) = cc.decode(av.Packet(jpeg))
    return fr


def planes(fr) -> list[np.ndarray]:
    out = []
    for p in fr.planes:
        a = np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[: p.height, : p.width]
        out.append(a.copy())
    return out


def assert_bands_decode_whole(jpeg: bytes, k: int) -> list:
    bands = restart_bands(jpeg, k)
    assert bands is not None
    assert 2 <= len(bands) <= k
    whole = decode(jpeg)
    frames = [decode(b) for b, _ in bands]
    tops = [t for _, t in bands]
    assert tops[0] == 0 and tops == sorted(set(tops))
    assert sum(f.height for f in frames) == whole.height
    assert all(f.width == whole.width for f in frames)
    assert [f.format.name for f in frames] == [whole.format.name] * len(frames)
    for f, t in zip(frames, tops):
        assert t == sum(g.height for g in frames[: frames.index(f)])
    # every plane, and the BGR the reader makes, identical row for row
    wp = planes(whole)
    for i in range(len(wp)):
        assert np.array_equal(np.concatenate([planes(f)[i] for f in frames]), wp[i]), f"plane {i}"
    return bands


@pytest.mark.parametrize("pix_fmt", ["yuvj420p", "yuvj422p", "yuvj444p"])
@pytest.mark.parametrize("h, w", [(96, 128), (1000, 1270), (77, 101), (33, 17)])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_ffmpeg_slices_cut_into_identical_bands(pix_fmt, h, w, k):
    jpeg = ffmpeg_jpeg(picture(h, w, seed=h + w), pix_fmt)
    assert b"\xff\xdd" in jpeg  # DRI: slice threads wrote restart markers
    assert_bands_decode_whole(jpeg, k)


def test_gray_picture_as_neutral_chroma():
    jpeg = ffmpeg_jpeg(picture(240, 320, color=False))
    bands = assert_bands_decode_whole(jpeg, 2)
    assert [t for _, t in bands] == [0, 128]  # 15 MCU rows of 16: the first (the caller's) takes 8


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("kw", [{"restart_marker_rows": 1}, {"restart_marker_rows": 3},
                                {"restart_marker_blocks": 5}, {"restart_marker_blocks": 1}])
def test_libjpeg_restart_intervals(mode, kw):
    img = picture(203, 157, seed=3, color=mode == "RGB")
    # 157 px: 20 blocks per row (gray) or 10 MCUs (4:2:0); markers every 5 MCUs end rows
    assert_bands_decode_whole(pillow_jpeg(img, **kw), 3)


def test_cuts_only_at_row_ends():
    # 10 MCUs per row (4:2:0, 157 px), a marker every 3 MCUs: rows end at a marker every 3 rows
    jpeg = pillow_jpeg(picture(203, 157, seed=4), restart_marker_blocks=3)
    bands = assert_bands_decode_whole(jpeg, 2)
    assert all(t % (3 * 16) == 0 for _, t in bands)


def test_not_cut():
    img = picture(96, 128, seed=5)
    plain = pillow_jpeg(img)
    assert restart_bands(plain, 2) is None  # no restart markers
    assert restart_bands(pillow_jpeg(img, progressive=True, restart_marker_rows=1), 2) is None
    with_rst = ffmpeg_jpeg(img)
    assert restart_bands(with_rst, 1) is None
    assert restart_bands(with_rst[:-2], 2) is None  # no end of image
    assert restart_bands(with_rst[: len(with_rst) // 2], 2) is None  # truncated: markers missing
    assert restart_bands(with_rst + with_rst, 2) is None  # two images (fields) in one packet
    assert restart_bands(b"", 2) is None
    assert restart_bands(b"\xff\xd8\xff", 2) is None
    assert restart_bands(b"not a jpeg at all", 2) is None
    # a marker out of order
    a = bytearray(with_rst)
    i = a.index(b"\xff\xd3")
    a[i + 1] = 0xD5
    assert restart_bands(bytes(a), 2) is None
    # one MCU row: nowhere to cut
    assert restart_bands(ffmpeg_jpeg(picture(16, 64)), 2) is None
    # padding after the end of the image is allowed
    assert restart_bands(with_rst + b"\x00" * 7, 2) is not None


def test_plans_of_several_headers(monkeypatch):
    """Cutting plans are kept per header (the last few): JPEGs of more headers than that, taken in
    turn, are cut as a fresh cut would, and a JPEG with a known header but a broken scan is not cut."""
    from imgstore.codecs import jpeg_restart

    jpegs = [ffmpeg_jpeg(picture(h, w, seed=h), fmt) for h, w, fmt in
             [(96, 128, "yuvj420p"), (96, 128, "yuvj444p"), (64, 96, "yuvj420p"), (48, 160, "yuvj422p"),
              (80, 64, "yuvj420p"), (120, 40, "yuvj444p")]]
    jpegs.append(pillow_jpeg(picture(96, 128, seed=9), restart_marker_rows=1))
    fresh = {}
    for i, j in enumerate(jpegs):
        for k in (2, 3):
            monkeypatch.setattr(jpeg_restart, "_recent_plans", ())
            fresh[i, k] = restart_bands(j, k)
            assert fresh[i, k] is not None
    for _ in range(3):
        for i, j in enumerate(jpegs):
            for k in (3, 2):
                assert restart_bands(j, k) == fresh[i, k]
    assert len(jpeg_restart._recent_plans) < len(jpegs)  # bounded
    broken = bytearray(jpegs[0])
    i = broken.index(b"\xff\xd2")
    del broken[i:i + 2]  # one restart marker gone
    restart_bands(jpegs[0], 2)  # its header's plan is at hand
    assert restart_bands(bytes(broken), 2) is None
    assert_bands_decode_whole(jpegs[0], 2)


def test_flipped_bytes_never_raise():
    jpeg = ffmpeg_jpeg(picture(64, 96, seed=6))
    rng = np.random.default_rng(7)
    for _ in range(400):
        a = bytearray(jpeg)
        for i in rng.integers(0, len(a), rng.integers(1, 4)):
            a[i] = int(rng.integers(0, 256))
        res = restart_bands(bytes(a), 3)
        assert res is None or (isinstance(res, list) and len(res) >= 2)


# ------------------------------------------------------------------ through the chunk reader
def barcode_frames(n: int, h: int, w: int, color: bool) -> list[np.ndarray]:
    out = []
    for i in range(n):
        img = picture(h, w, seed=i, color=color)
        img[:32] = 0
        for b in range(16):
            if (i >> (15 - b)) & 1:
                img[:32, 4 * b:4 * b + 4] = 255
        out.append(img)
    return out


def read_barcode(img: np.ndarray) -> int:
    g = img if img.ndim == 2 else img.mean(axis=2)
    return sum(int(g[:32, 4 * k + 1:4 * k + 3].mean() > 127) << (15 - k) for k in range(16))


@pytest.fixture
def two_workers(monkeypatch):
    monkeypatch.setattr(pools_mod, "_decode_workers", lambda: 2)


def write_chunk(tmp_path, frames, color, threads=2):
    storage = LocalStorage(str(tmp_path))
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:  # our writer wants even sizes: an AVI as another program writes it
        with av.open(str(tmp_path / "000000.avi"), "w") as c:
            st = c.add_stream("mjpeg", rate=25)
            st.width, st.height, st.pix_fmt = w, h, "yuvj420p"
            st.codec_context.thread_type, st.codec_context.thread_count = "SLICE", threads
            for f in frames:
                c.mux(st.encode(av.VideoFrame.from_ndarray(f, "bgr24" if color else "gray")))
            c.mux(st.encode(None))
        return storage
    wr = VideoChunkWriter(storage, "000000.avi", "mjpeg/avi", frames[0].shape, threads=threads)
    for f in frames:
        wr.write(f)
    wr.close()
    return storage


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("h, w", [(160, 192), (150, 190), (151, 101)])
def test_random_reads_in_bands_equal_whole_frames(tmp_path, two_workers, monkeypatch, color, h, w):
    frames = barcode_frames(12, h, w, color)
    storage = write_chunk(tmp_path, frames, color)
    calls = []
    real = bands_mod.restart_bands
    monkeypatch.setattr(bands_mod, "restart_bands", lambda d, k: calls.append(k) or real(d, k))
    stacked = []
    real_stack = VideoChunkReader._stack
    monkeypatch.setattr(VideoChunkReader, "_stack", lambda self, *a: stacked.append(1) or real_stack(self, *a))
    whole = VideoChunkReader(storage, "000000.avi", color=color, imgshape=frames[0].shape, read_ahead=False)
    whole._bands = False
    banded = VideoChunkReader(storage, "000000.avi", color=color, imgshape=frames[0].shape, read_ahead=False)
    order = np.random.default_rng(1).permutation(12)
    for p in order:
        a = banded.read(int(p))
        assert banded._bands and calls, "read in bands"
        b = whole.read(int(p))
        assert np.array_equal(a, b)
        assert read_barcode(a) == p
        a[:] = 0  # the caller's own array: the next read of it is unchanged
        assert np.array_equal(banded.read(int(p)), b)
    assert banded.frames_decoded == 24 and banded.cache_hits == 0 and len(calls) == 24
    # bands are converted each on its thread, except colour at odd heights: stacked, then converted
    assert len(stacked) == (24 if color and h % 2 else 0)
    whole.close()
    banded.close()


def test_gray_output_of_colour_frames_with_neutral_bands(tmp_path, two_workers):
    # top band gray (neutral chroma: Y), bottom band coloured (BGR then gray): same as the whole frame
    frames = barcode_frames(3, 128, 128, True)
    for f in frames:
        f[:64] = f[:64].mean(axis=2, keepdims=True).astype(np.uint8)
    storage = write_chunk(tmp_path, frames, True)
    banded = VideoChunkReader(storage, "000000.avi", color=False, imgshape=(128, 128))
    whole = VideoChunkReader(storage, "000000.avi", color=False, imgshape=(128, 128))
    whole._bands = False
    for p in (2, 0, 1):
        a = banded.read(p)
        assert banded._bands
        assert np.array_equal(a, whole.read(p))
    banded.close()
    whole.close()


def test_one_encoder_thread_writes_no_markers(tmp_path, two_workers):
    frames = barcode_frames(4, 96, 128, False)
    storage = write_chunk(tmp_path, frames, False, threads=1)
    rd = VideoChunkReader(storage, "000000.avi", color=False, imgshape=(96, 128))
    assert read_barcode(rd.read(2)) == 2
    assert rd._bands is False  # looked once, found no markers, reads whole frames from then on
    assert read_barcode(rd.read(1)) == 1
    rd.close()


def test_band_read_does_not_wait_for_a_busy_pool(tmp_path, two_workers):
    # every band thread is busy (other threads' band reads, say): the caller decodes all bands itself
    import threading

    frames = barcode_frames(4, 96, 128, True)
    storage = write_chunk(tmp_path, frames, True)
    rd = VideoChunkReader(storage, "000000.avi", color=True, imgshape=(96, 128, 3), read_ahead=False)
    release = threading.Event()
    ex = pools_mod._band_executor()
    blockers = [ex.submit(release.wait, 10) for _ in range(8)]
    safety = threading.Timer(10, release.set)
    safety.start()
    try:
        img = rd.read(3)
        assert not release.is_set(), "the read waited for the pool"
        assert rd._bands and read_barcode(img) == 3
    finally:
        release.set()
        safety.cancel()
        for b in blockers:
            b.result()
        rd.close()
