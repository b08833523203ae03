"""BMP, PPM and PGM frames read straight from their bytes: the same pixels as the image libraries give."""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from imgstore.codecs.images import IMAGE_FORMATS, _bmp_pixels, _from_file, _pnm_pixels
from imgstore.color import ensure_color, ensure_grayscale

rng = np.random.default_rng(7)
SHAPES = [(1, 1), (5, 7), (48, 65), (49, 66), (33, 47, 3), (48, 64, 3)]


def library_decode(fmt: str, data: bytes, color: bool) -> np.ndarray:
    """What the frame decoders gave before (imagecodecs for BMP, Pillow for PNM)."""
    if fmt == "bmp":
        return _from_file(imagecodecs.bmp_decode(data), color)
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im)
    return _from_file(arr.astype(np.uint16) if arr.dtype == np.int32 else arr, color)


# (ppm files hold colour, pgm files gray)
@pytest.mark.parametrize("fmt,shape", [(f, s) for f in ("bmp", "ppm", "pgm") for s in SHAPES
                                       if not (f == "ppm" and len(s) == 2) and not (f == "pgm" and len(s) == 3)], ids=str)
@pytest.mark.parametrize("color", [False, True])
def test_fast_path_equals_the_libraries(fmt, shape, color):
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    data = IMAGE_FORMATS[fmt].encode(img)
    assert (_bmp_pixels(data) if fmt == "bmp" else _pnm_pixels(data)) is not None  # the fast path is taken
    got = IMAGE_FORMATS[fmt].decode(data, color)
    want = library_decode(fmt, data, color)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert np.array_equal(got, ensure_color(img) if color else ensure_grayscale(img))


def test_files_opencv_wrote():
    cv2 = pytest.importorskip("cv2")
    gray, bgr = rng.integers(0, 256, (49, 65), np.uint8), rng.integers(0, 256, (49, 65, 3), np.uint8)
    g16 = rng.integers(0, 65536, (49, 65), np.uint16)
    for ext, img in ((".bmp", gray), (".bmp", bgr), (".pgm", gray), (".ppm", bgr), (".pgm", g16)):
        ok, buf = cv2.imencode(ext, img)
        assert ok
        got = IMAGE_FORMATS[ext[1:]].decode(buf.tobytes(), img.ndim == 3)
        assert got.dtype == img.dtype and np.array_equal(got, img), ext


def test_pnm_headers_with_comments_and_16_bit():
    img = rng.integers(0, 65536, (6, 9), dtype=np.uint16)
    data = b"P5\n# a comment\n9 # width\n6\n65535\n" + img.astype(">u2").tobytes()
    assert np.array_equal(IMAGE_FORMATS["pgm"].decode(data, False), img)


@pytest.mark.parametrize("data", [
    b"P5\n4 2\n1023\n" + np.arange(8, dtype=">u2").tobytes(),  # another maxval: as the library reads it
    b"P2\n2 2\n255\n0 1\n2 3\n",                                 # ASCII PGM
])
def test_other_pnm_kinds_go_to_the_library(data):
    assert _pnm_pixels(data) is None
    assert np.array_equal(IMAGE_FORMATS["pgm"].decode(data, False), library_decode("pgm", data, False))


def test_other_bmp_kinds_go_to_the_library():
    img = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
    data = bytearray(imagecodecs.bmp_encode(img))
    top_down = bytearray(data)
    top_down[22:26] = (-8).to_bytes(4, "little", signed=True)  # rows stored top first
    got = IMAGE_FORMATS["bmp"].decode(bytes(top_down), True)
    assert np.array_equal(got, library_decode("bmp", bytes(top_down), True))
    gray = bytearray(imagecodecs.bmp_encode(img[..., 0]))
    gray[54 + 4 * 10] = 99  # palette entry 10 is no longer gray
    assert _bmp_pixels(bytes(gray)) is None
    assert np.array_equal(IMAGE_FORMATS["bmp"].decode(bytes(gray), False), library_decode("bmp", bytes(gray), False))


def test_truncated_files_are_not_read_past_their_end():
    img = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    for fmt in ("bmp", "pgm"):
        data = IMAGE_FORMATS[fmt].encode(img)[:-10]
        assert (_bmp_pixels(data) if fmt == "bmp" else _pnm_pixels(data)) is None


def _npy_bytes(a, version=None) -> bytes:
    buf = io.BytesIO()
    if version is None:
        np.save(buf, a)
    else:
        np.lib.format.write_array(buf, a, version=version)
    return buf.getvalue()


def test_npy_frames_of_many_headers_in_one_process():
    """Parsed headers are kept by their bytes: each file still gets its own shape, dtype and order."""
    from imgstore.codecs.images import _npy_decode

    arrays = [np.arange(12, dtype=np.uint8).reshape(3, 4), np.arange(12, dtype=">u2").reshape(4, 3),
              np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)), np.zeros((0, 5)),
              np.arange(24, dtype=np.int16).reshape(2, 3, 4)]
    for _ in range(2):
        for a in arrays:
            for version in (None, (2, 0), (3, 0)):
                got = _npy_decode(_npy_bytes(a, version), False)
                assert got.dtype == a.dtype and got.shape == a.shape and np.array_equal(got, a)
    with pytest.raises(ValueError):
        _npy_decode(_npy_bytes(arrays[0])[:-1], False)  # a file cut short


@pytest.mark.parametrize("fmt", ["npy", "pgm"])
def test_mapped_frames_are_private_writable_and_outlive_their_files(tmp_path, fmt):
    """npy and 8-bit pgm frames of local stores are the files' pages mapped copy-on-write: drawing on a
    frame never reaches the file, and frames stay as read when the store is closed or its files are
    replaced; a few hundred frames held need no open file each."""
    import resource

    import imgstore
    from imgstore.apps.synthetic import make_frame, read_frame_number

    shape = (512, 640)  # above the size from which files are mapped
    s = imgstore.new_for_format(fmt, basedir=str(tmp_path / "s"), imgshape=shape, imgdtype=np.uint8, chunksize=50)
    for i in range(120):
        s.add_image(make_frame(i, shape), i, 1000.0 + i)
    s.close()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    s = imgstore.new_for_filename(str(tmp_path / "s"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(64, hard), hard))
    try:
        held = [s.get_next_image()[0] for _ in range(120)]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    first = held[0]
    base = first
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base, memoryview) and type(base.obj).__name__ == "Mapped" and first.flags.writeable
    path = next(p for p in sorted((tmp_path / "s" / "000000").iterdir()) if p.suffix == "." + fmt)
    before = path.read_bytes()
    first[:] = 7
    assert path.read_bytes() == before
    s.close()
    for p in (tmp_path / "s" / "000000").iterdir():  # replaced as the store's writer replaces files
        if p.suffix == "." + fmt:
            tmp = p.with_suffix(".tmp")
            tmp.write_bytes(b"\0" * 10)
            tmp.replace(p)
    assert (first == 7).all()
    assert [read_frame_number(im) for im in held[1:]] == list(range(1, 120))
