"""``imgstore export``: H.264 yuv420p files at the recorded timing, probed and decoded with PyAV."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from cli_helpers import make_store, run
from conftest import decode_frame

from imgstore.apps.export import median_rate, presentation_times


def probe(path):
    """(codec, pix_fmt, width, height, [pts in seconds], [decoded gray frames]) of a video file."""
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        frames = list(c.decode(st))
        return (st.codec_context.name, st.codec_context.pix_fmt, st.codec_context.width, st.codec_context.height,
                [float(f.pts * f.time_base) for f in frames], [f.to_ndarray(format="gray") for f in frames])


def test_mkv_keeps_each_frames_own_time(tmp_path):
    src = make_store(tmp_path / "s", n=60, fmt="mjpeg/avi")
    jitter = src.frame_times - src.frame_times[0]
    out = tmp_path / "clip.mkv"
    p = run("export", src.filename, out, "--json")
    assert json.loads(p.stdout)["frames"] == 60
    codec, pix, w, h, pts, frames = probe(out)
    assert (codec, pix, w, h, len(frames)) == ("h264", "yuv420p", 64, 48, 60)
    assert pts == pytest.approx(jitter.tolist(), abs=0.0006)  # milliseconds
    assert [decode_frame(f) for f in frames] == src.frame_numbers.tolist()


def test_mp4_at_the_median_rate_and_vfr(tmp_path):
    numbers = list(range(40))
    src = make_store(tmp_path / "s", n=40, fps=50.0, numbers=numbers)
    run("export", src.filename, tmp_path / "cfr.mp4", "--every", "2", "-q")
    codec, pix, _, _, pts, frames = probe(tmp_path / "cfr.mp4")
    assert (codec, pix, len(frames)) == ("h264", "yuv420p", 20)
    assert np.diff(pts) == pytest.approx(0.04)  # every 2nd frame of 50 fps: 25 fps, constant
    assert [decode_frame(f) for f in frames] == numbers[::2]
    run("export", src.filename, tmp_path / "vfr.mp4", "--vfr", "--frame-numbers", "10:20", "-q")
    _, _, _, _, pts, frames = probe(tmp_path / "vfr.mp4")
    assert pts == pytest.approx([i * 0.02 for i in range(10)], abs=0.001)
    assert [decode_frame(f) for f in frames] == numbers[10:20]
    p = run("export", src.filename, tmp_path / "vfr.mp4", check=False)
    assert p.returncode == 1 and "already exists" in p.stderr


def test_scale_and_overlay(tmp_path):
    src = make_store(tmp_path / "s", n=10, shape=(48, 64, 3), fmt="npy")
    run("export", src.filename, tmp_path / "big.mkv", "--scale", "2", "--overlay", "-q")
    _, pix, w, h, _, frames = probe(tmp_path / "big.mkv")
    assert (pix, w, h) == ("yuv420p", 128, 96)
    for f, fn in zip(frames, src.frame_numbers):
        assert decode_frame(f[::2, ::2]) == fn  # the barcode, scaled
        assert f[-8:, :40].max() > 200 and f[-8:, :40].min() < 40  # white text on black, at the bottom
    run("export", src.filename, tmp_path / "small.mp4", "--scale", "33x", "-q")
    _, _, w, h, _, frames = probe(tmp_path / "small.mp4")
    assert (w, h, len(frames)) == (34, 26, 10)  # 33x25 rounded up to even sizes for yuv420p


def test_several_stores_tiled_and_aligned(tmp_path):
    a = make_store(tmp_path / "a", n=30, numbers=range(100, 130))
    b = make_store(tmp_path / "b", n=30, numbers=[n for n in range(105, 140) if n % 7], shape=(48, 64))
    run("export", a.filename, b.filename, tmp_path / "ab.mkv", "--missing", "black", "-q")
    _, _, w, h, _, frames = probe(tmp_path / "ab.mkv")
    union = sorted(set(a.frame_numbers.tolist()) | set(b.frame_numbers.tolist()))
    assert (w, h, len(frames)) == (128, 48, len(union))
    for f, fn in zip(frames, union):
        for tile, store in ((f[:, :64], a), (f[:, 64:], b)):
            if fn in store.frame_numbers:
                assert decode_frame(tile) == fn
            else:
                assert tile.max() < 20  # black: this store has no such frame
    run("export", a.filename, b.filename, tmp_path / "grid.mp4", "--columns", "1", "-q")
    _, _, w, h, _, frames = probe(tmp_path / "grid.mp4")
    common = sorted(set(a.frame_numbers.tolist()) & set(b.frame_numbers.tolist()))
    assert (w, h, len(frames)) == (64, 96, len(common))
    assert [(decode_frame(f[:48]), decode_frame(f[48:])) for f in frames] == [(n, n) for n in common]


def test_presentation_times_and_rates():
    assert presentation_times(np.array([10.0, 10.04, 10.04, np.nan, 10.03, 10.2])).tolist() == [0, 40, 41, 42, 43,
                                                                                              200]
    assert float(median_rate(np.arange(10) / 29.97)) == pytest.approx(29.97, rel=1e-4)
    assert median_rate(np.array([5.0])) == 25
