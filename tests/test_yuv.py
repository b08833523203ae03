"""YUV 4:2:0 -> BGR / gray in one pass (codecs/video/yuv.py): bit for bit what swscale gives."""

from __future__ import annotations

import numpy as np
import pytest

av = pytest.importorskip("av")

from imgstore.apps.synthetic import make_frame, write_video_file  # noqa: E402
from imgstore.codecs.video import pixels, yuv  # noqa: E402
from imgstore.color import bgr_to_gray  # noqa: E402

pytestmark = pytest.mark.skipif(yuv._ext is None, reason="imgstore._pixels is not built")


def _frame(name, h, w, rng, color_range=0, colorspace=2):
    fr = av.VideoFrame(w, h, name)
    fr.colorspace, fr.color_range = colorspace, color_range
    for p, (ph, pw) in zip(fr.planes, ((h, w), (h // 2, w // 2), (h // 2, w // 2))):
        np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:ph, :pw] = rng.integers(0, 256, (ph, pw), np.uint8)
    return fr


@pytest.mark.parametrize("name,color_range", [("yuv420p", 0), ("yuv420p", 1), ("yuvj420p", 2), ("yuv420p", 2)])
@pytest.mark.parametrize("h,w", [(480, 640), (2, 2), (6, 34), (100, 258), (1024, 1280)])
def test_random_frames_match_swscale(name, color_range, h, w):
    rng = np.random.default_rng(h * w)
    fr = _frame(name, h, w, rng, color_range)
    want = pixels._sws_bgr24(fr)
    coeffs = yuv.fast_coeffs(fr, pixels._sws_bgr24)
    assert coeffs is not None
    assert np.array_equal(yuv.yuv_to_bgr(fr, coeffs), want)
    assert np.array_equal(yuv.yuv_to_gray(fr, coeffs), bgr_to_gray(want))
    assert np.array_equal(pixels._to_bgr24(fr), fr.to_ndarray(format="bgr24"))


def test_odd_sizes_and_other_formats_go_through_swscale():
    rng = np.random.default_rng(0)
    assert yuv.fast_coeffs(_frame("yuv420p", 7, 9, rng), pixels._sws_bgr24) is None
    assert yuv.fast_coeffs(av.VideoFrame(16, 16, "yuv444p"), pixels._sws_bgr24) is None
    odd = _frame("yuv420p", 7, 9, rng)
    # OpenCV's flags (SWS_BICUBIC): at odd sizes swscale scales chroma, and the filter shows
    want = odd.reformat(format="bgr24", interpolation="BICUBIC", src_colorspace="ITU601", dst_colorspace="ITU601")
    assert np.array_equal(pixels._to_bgr24(odd), want.to_ndarray())
    assert not np.array_equal(pixels._to_bgr24(odd), odd.to_ndarray(format="bgr24"))  # BILINEAR differs


def test_tags_the_kernel_does_not_match_are_left_to_swscale(monkeypatch):
    monkeypatch.setattr(yuv, "_checked", {})
    fr = _frame("yuv420p", 16, 16, np.random.default_rng(1), colorspace=1)

    def other(f):  # a "swscale" that rounds differently
        out = pixels._sws_bgr24(f).copy()
        out[0, 0, 0] ^= 1
        return out

    assert yuv.fast_coeffs(fr, other) is None
    assert yuv._checked == {("yuv420p", 1, 0): False}  # the width check never ran


@pytest.mark.parametrize("codec,pix_fmt", [("libx264", "yuv420p"), ("mjpeg", "yuvj420p")])
def test_decoded_video_frames_match(tmp_path, codec, pix_fmt):
    path = tmp_path / ("v.mkv" if codec == "libx264" else "v.avi")
    write_video_file(path, range(12), shape=(96, 128, 3), codec=codec, pix_fmt=pix_fmt)
    with av.open(str(path)) as c:
        for fr in c.decode(video=0):
            assert fr.format.name == pix_fmt
            want = fr.to_ndarray(format="bgr24")
            assert np.array_equal(pixels._to_bgr24(fr), want)
            coeffs = yuv.fast_coeffs(fr, pixels._sws_bgr24)
            assert coeffs is not None and np.array_equal(yuv.yuv_to_gray(fr, coeffs), bgr_to_gray(want))


def test_every_even_width_matches_swscale():
    """swscale's SIMD loop ends each row in C at a point that depends on the width."""
    rng = np.random.default_rng(7)
    for w in range(2, 260, 2):
        fr = _frame("yuv420p", 4, w, rng)
        coeffs = yuv.fast_coeffs(fr, pixels._sws_bgr24)
        assert coeffs is not None, w
        want = pixels._sws_bgr24(fr)
        assert np.array_equal(yuv.yuv_to_bgr(fr, coeffs), want), w
        # (rows of 32 pixels and more go through the AVX2 loop where the CPU has it, then SSE2, then C)
        assert np.array_equal(yuv.yuv_to_gray(fr, coeffs), bgr_to_gray(want)), w


def test_a_width_the_kernel_does_not_match_is_left_to_swscale(monkeypatch):
    monkeypatch.setattr(yuv, "_checked", {})

    def other(f):  # a "swscale" that differs at one width only
        out = pixels._sws_bgr24(f)
        if f.width == 70:
            out = out.copy()
            out[0, -1, 2] ^= 1
        return out

    rng = np.random.default_rng(2)
    assert yuv.fast_coeffs(_frame("yuv420p", 8, 64, rng), other) is not None
    assert yuv.fast_coeffs(_frame("yuv420p", 8, 70, rng), other) is None
    assert yuv.fast_coeffs(_frame("yuv420p", 8, 72, rng), other) is not None
    assert yuv._checked[("yuv420p", 2, 0, 70)] is False


@pytest.mark.parametrize("shape", [(480, 640), (2, 2), (34, 98), (1024, 1280)])
def test_bgr_to_yuv420_is_within_one_of_swscale(shape):
    """Frames written as H.264/HEVC are converted by the kernel: each sample within 1 of swscale's."""
    from av.video.reformatter import VideoReformatter

    from imgstore.codecs.video.yuv import bgr_to_yuv420_frame

    rng = np.random.default_rng(shape[0])
    img = rng.integers(0, 256, shape + (3,), np.uint8)
    img[:2, :2] = [[0, 0, 0], [255, 255, 255]]  # the extremes
    ours = bgr_to_yuv420_frame(img)
    ref = VideoReformatter().reformat(av.VideoFrame.from_ndarray(img, format="bgr24"), format="yuv420p", threads=1)
    for i in range(3):
        a, b = (np.frombuffer(f.planes[i], np.uint8).reshape(-1, f.planes[i].line_size)[:, :f.planes[i].width]
                for f in (ours, ref))
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, i
    assert bgr_to_yuv420_frame(img[:, :-1].copy()) is None  # odd width: swscale does it
