"""VideoImgStore through the public API: every format, frame rate from frame times, insert_chunk, odd sizes."""

from __future__ import annotations

import os

import av
import numpy as np
import pytest

import imgstore
from imgstore.apps.synthetic import make_frame, read_frame_number, write_frames_file, write_video_file

VIDEO_FORMATS = [f for f in ("mjpeg/avi", "avc1/mp4", "h264/mkv", "ffv1/mkv", "hevc/mkv")
                 if f in imgstore.get_supported_formats()]


def test_supported_formats_are_really_writable():
    fmts = imgstore.get_supported_formats()
    for f in ("mjpeg/avi", "avc1/mp4", "h264/mkv", "ffv1/mkv"):
        assert f in fmts
    assert imgstore.VideoImgStore.supports_format("mjpeg")  # the original's alias


def write(path, fmt, shape=(48, 64), n=23, chunksize=10, rate=30.0, dtype=np.uint8, **kw):
    """A store whose frame times advance at *rate* per second; **kw go to new_for_format."""
    numbers = [7 + 3 * i for i in range(n)]
    times = [1.7e9 + i / rate for i in range(n)]
    with imgstore.new_for_format(fmt, basedir=str(path), imgshape=shape, imgdtype=dtype, chunksize=chunksize,
                                 **kw) as s:
        for k, t in zip(numbers, times):
            s.add_image(make_frame(k, shape, dtype), k, t)
    return str(path), numbers, times


@pytest.mark.parametrize("fmt", VIDEO_FORMATS)
@pytest.mark.parametrize("color", [False, True])
def test_round_trip_random_access_and_frame_rate(tmp_path, fmt, color):
    shape = (48, 64, 3) if color else (48, 64)
    path, numbers, times = write(tmp_path / "s", fmt, shape)
    s = imgstore.new_for_filename(path)
    assert s.frame_count == 23 and s.chunks == [0, 1, 2] and s.image_shape == shape
    assert s.store_metadata["extension"] == "." + fmt.split("/")[1]
    rng = np.random.default_rng(0)
    for i in rng.permutation(23):
        img, (fn, ft) = s.get_image(numbers[i])
        assert (fn, ft) == (numbers[i], times[i])
        assert img.shape == shape and read_frame_number(img) == numbers[i]
    s.get_image(None, frame_index=4)
    assert [read_frame_number(s.get_next_image()[0]) for _ in range(10)] == numbers[5:15]
    # the container's frame rate comes from the frame times, not a constant 25
    ext = s.store_metadata["extension"]
    with av.open(os.path.join(path, "000000" + ext)) as c:
        rate = c.streams.video[0].average_rate or c.streams.video[0].guessed_rate
        assert abs(float(rate) - 30.0) < 0.5
    assert s.lossless == (fmt == "ffv1/mkv")


def test_explicit_fps_and_gop(tmp_path):
    path, numbers, _ = write(tmp_path / "s", "h264/mkv", n=30, chunksize=30, rate=10.0, gop=5, fps=50)
    with av.open(os.path.join(path, "000000.mkv")) as c:
        st = c.streams.video[0]
        assert abs(float(st.average_rate or st.guessed_rate) - 50) < 0.5
        keys = [p.is_keyframe for p in c.demux(st) if p.size]
    kpos = np.flatnonzero(keys)
    assert len(keys) == 30 and kpos[0] == 0
    assert np.diff(np.append(kpos, 30)).max() <= 5  # never more than 5 frames from a keyframe
    s = imgstore.new_for_filename(path)
    assert [read_frame_number(x) for x in s[::7]] == numbers[::7]


def test_ffv1_uint16_is_bit_exact(tmp_path):
    shape = (48, 64)
    frames = [np.random.default_rng(i).integers(0, 65536, shape, dtype=np.uint16) for i in range(12)]
    with imgstore.new_for_format("ffv1/mkv", basedir=str(tmp_path / "s"), imgshape=shape, imgdtype=np.uint16,
                                 chunksize=5) as s:
        for i, f in enumerate(frames):
            s.add_image(f, i, float(i))
    r = imgstore.new_for_filename(str(tmp_path / "s"))
    assert r.dtype == np.uint16 and r.lossless
    for i in [11, 0, 6, 5, 4]:
        img, _ = r.get_image(i)
        assert img.dtype == np.uint16 and np.array_equal(img, frames[i])


@pytest.mark.parametrize("fmt,kept", [("h264/mkv", (48, 64)), ("mjpeg/avi", (48, 64)), ("ffv1/mkv", (49, 65))])
def test_odd_sizes(tmp_path, fmt, kept):
    path, numbers, _ = write(tmp_path / "s", fmt, shape=(49, 65), n=5)
    s = imgstore.new_for_filename(path)
    assert s.image_shape == kept
    img, (fn, _) = s.get_image(numbers[3])
    assert img.shape == kept and read_frame_number(img) == numbers[3]


def test_extract_only_frame_with_partly_filled_chunks(tmp_path):
    # insert chunks of 3 and 5 frames into a store of chunksize 10: frame_index // chunksize is wrong here
    path = str(tmp_path / "s")
    s = imgstore.new_for_format("h264/mkv", basedir=path, imgshape=(48, 64), imgdtype=np.uint8, chunksize=10)
    for i in range(3):
        s.add_image(make_frame(100 + i, (48, 64)), 100 + i, float(i))
    s.insert_chunk(_foreign_video(tmp_path / "a.mkv", range(200, 205)), range(200, 205), np.arange(5) + 10.0)
    s.close()
    r = imgstore.new_for_filename(path)
    assert r.frame_count == 8 and r.chunks == [0, 1]
    expected = [100, 101, 102, 200, 201, 202, 203, 204]
    for i, n in enumerate(expected):
        assert read_frame_number(imgstore.extract_only_frame(path, i)) == n


def _foreign_video(path, numbers, shape=(48, 64), bframes=2):
    """A video written by 'another program': PyAV, B-frames, yuv420p colour."""
    return write_video_file(path, numbers, shape, options={"bf": bframes, "g": 12, "crf": 12})


def test_insert_chunk_of_foreign_video_with_b_frames(tmp_path):
    path = str(tmp_path / "s")
    s = imgstore.new_for_format("avc1/mp4", basedir=path, imgshape=(48, 64), imgdtype=np.uint8, chunksize=100)
    s.empty()
    a = _foreign_video(tmp_path / "a.mp4", range(0, 30))
    b = _foreign_video(tmp_path / "b.mp4", range(57, 77))
    s.insert_chunk(a, list(range(30)), 1000.0 * np.arange(30))
    s.insert_chunk(b, list(range(57, 77)), 1000.0 * np.arange(57, 77), move=False)
    assert os.path.exists(b) and not os.path.exists(a)
    s.close()
    r = imgstore.new_for_filename(path)
    fns = list(range(30)) + list(range(57, 77))
    assert r.frame_count == 50
    for f in np.random.default_rng(1).permutation(fns):
        img, (fn, ft) = r.get_image(int(f))
        assert fn == f and ft == 1000.0 * f and read_frame_number(img) == f


def test_insert_chunk_refuses_a_wrong_frame_count_and_keeps_the_file(tmp_path):
    path = str(tmp_path / "s")
    s = imgstore.new_for_format("h264/mkv", basedir=path, imgshape=(48, 64), imgdtype=np.uint8, chunksize=100)
    a = _foreign_video(tmp_path / "a.mkv", range(10))
    with pytest.raises(imgstore.ImgStoreError, match="a.mkv"):
        s.insert_chunk(a, range(12), np.arange(12.0))
    assert os.path.exists(a)
    with pytest.raises(ValueError, match=".mkv"):
        s.insert_chunk(str(tmp_path / "x.avi"), [1], [1.0])
    s.insert_chunk(a, range(10), np.arange(10.0))
    s.close()
    assert imgstore.new_for_filename(path).frame_count == 10


@pytest.mark.parametrize("fmt", ["mjpeg/avi", "h264/mkv"])
def test_original_compatible_files(tmp_path, fmt):
    path, _, _ = write(tmp_path / "s", fmt, n=12, chunksize=5)
    names = sorted(os.listdir(path))
    ext = ".avi" if fmt == "mjpeg/avi" else ".mkv"
    for c in range(3):
        assert f"{c:06d}{ext}" in names and f"{c:06d}.npz" in names
    with np.load(os.path.join(path, "000000.npz")) as z:
        assert z["frame_number"].dtype == np.int64 and z["frame_time"].dtype == np.float64
        assert str(z["extension"]) == ext and str(z["class"]) == "VideoImgStore"
    assert not any(n.endswith(".frames") for n in names)  # frame logs are gone after close


@pytest.mark.parametrize("fmt", ["mjpeg/avi", "ffv1/mkv"])
def test_reading_on_into_the_next_chunk_decodes_it_ahead(tmp_path, fmt):
    # intra-only chunks: crossing into a chunk by reading on starts its read-ahead at its first frame,
    # instead of at its second read; a jump to the first frame of a chunk starts nothing
    path, numbers, _ = write(tmp_path / "s", fmt, n=35, chunksize=10)
    s = imgstore.new_for_filename(path)
    got = []
    for i in range(35):
        img, (fn, _) = s.get_next_image()
        assert read_frame_number(img) == fn == numbers[i]
        got.append(fn)
        if i in (10, 20):
            r = s._readers[i // 10]
            assert r._ahead is not None and r._ahead.expects(1)  # frames 1.. already under way
    assert got == numbers
    s.close()
    s = imgstore.new_for_filename(path)
    img, (fn, _) = s.get_image(numbers[20])
    assert read_frame_number(img) == fn == numbers[20] and s._readers[2]._ahead is None
    s.get_image(numbers[9])
    img, (fn, _) = s.get_next_image()  # reading on from the last frame of chunk 0
    assert fn == numbers[10] and s._readers[1]._ahead is not None
    s.close()


def _opencv_frames(cv2, video, n):
    cap = cv2.VideoCapture(video)
    frames = [cap.read()[1] for _ in range(n)]
    cap.release()
    return frames


def _store_of(tmp_path, fmt, video, n, shape, color):
    """A store of one chunk, the file *video* of *n* frames, opened for reading."""
    path = str(tmp_path / "s")
    s = imgstore.new_for_format(fmt, basedir=path, imgshape=tuple(shape) + ((3,) if color else ()),
                                imgdtype=np.uint8, chunksize=100)
    s.insert_chunk(video, list(range(n)), np.arange(float(n)))
    s.close()
    return imgstore.new_for_filename(path)


def _bgr_by_matrix(fr, kr, kb):
    """BGR of 8-bit limited-range YUV frame *fr* by the textbook formula for luma weights kr, kb."""
    y, u, v = (np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[: p.height, : p.width].astype(float)
               for p in fr.planes[:3])
    if u.shape != y.shape:  # 4:2:0: each chroma sample covers 2x2 pixels
        u, v = (np.repeat(np.repeat(c, 2, 0), 2, 1)[: y.shape[0], : y.shape[1]] for c in (u, v))
    y, u, v = (y - 16) * 255 / 219, (u - 128) * 255 / 224, (v - 128) * 255 / 224
    r = y + 2 * (1 - kr) * v
    b = y + 2 * (1 - kb) * u
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.stack([b, g, r], -1), 0, 255)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])
@pytest.mark.parametrize("color", [True, False])
def test_bt709_tagged_video_reads_as_the_original_reads_it(tmp_path, pix_fmt, color):
    """Other programs tag HD video BT.709. OpenCV 4 (the original's reader) ignores the tag and
    converts with BT.601's matrix (OpenCV 5 uses the tag); a store gives the original's pixels."""
    from imgstore.color import bgr_to_gray

    shape = (64, 96)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    # saturated colours, where the two matrices differ most
    frames = [np.stack([(xx * 8 + i * 20) % 256, (yy * 4 + 40) % 256, 255 - xx * 2], -1).astype(np.uint8)
              for i in range(6)]
    video = write_frames_file(tmp_path / "a.mp4", frames, "libx264", pix_fmt,
                              {"crf": 12, "x264-params": "colormatrix=bt709:colorprim=bt709:transfer=bt709"})
    with av.open(video) as c:
        frames = list(c.decode(video=0))
    assert frames[0].colorspace == 1  # the tag is in the stream
    bt601 = [_bgr_by_matrix(f, 0.299, 0.114) for f in frames]
    bt709 = [_bgr_by_matrix(f, 0.2126, 0.0722) for f in frames]
    cv2 = None
    try:
        import cv2
    except ImportError:
        pass
    if cv2 is not None and cv2.__version__.startswith("4."):
        opencv4 = _opencv_frames(cv2, video, 6)
    r = _store_of(tmp_path, "avc1/mp4", video, 6, shape, color)
    for i in [3, 0, 5, 1, 2, 4]:
        img, (fn, _) = r.get_image(i)
        assert fn == i
        want601, want709 = (w if color else bgr_to_gray(np.rint(w).astype(np.uint8)).astype(float)
                            for w in (bt601[i], bt709[i]))
        assert np.abs(img - want601).max() <= 3, i  # swscale's fixed point: within 3 of the formula
        assert np.abs(img - want709.astype(float)).max() >= 8, i  # the matrices differ here: the check above can fail
        if cv2 is not None and cv2.__version__.startswith("4."):
            assert np.array_equal(img, opencv4[i] if color else cv2.cvtColor(opencv4[i], cv2.COLOR_BGR2GRAY))
    r.close()


@pytest.mark.parametrize("color", [True, False])
def test_odd_sized_foreign_mjpeg_reads_as_opencv_reads_it(tmp_path, color):
    """At odd sizes swscale scales the chroma planes, so its filter (OpenCV asks for bicubic) shows in
    the pixels (bilinear was up to 44 levels off)."""
    cv2 = pytest.importorskip("cv2")
    shape = (75, 101)
    rng = np.random.default_rng(5)
    blocks = [rng.integers(0, 256, (19, 26, 3), np.uint8) for _ in range(4)]
    video = write_frames_file(tmp_path / "a.avi", [np.repeat(np.repeat(b, 4, 0), 4, 1)[: shape[0], : shape[1]]
                                                   for b in blocks], "mjpeg", "yuvj420p")
    want = _opencv_frames(cv2, video, 4)
    r = _store_of(tmp_path, "mjpeg/avi", video, 4, shape, color)
    for i in [2, 0, 3, 1]:
        img, (fn, _) = r.get_image(i)
        expected = (want[i] if color else cv2.cvtColor(want[i], cv2.COLOR_BGR2GRAY))[:74, :100]  # rounded to even
        assert fn == i and np.array_equal(img, expected), i
    r.close()
