"""BMP, PPM and PGM frames read straight from their bytes: the same pixels as the image libraries give."""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
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


def _rows_model(data: bytes, head_len: int, rows: int, width: int, stride: int, bottom_up: bool):
    """What read_rows must give: the header, the rows (zeros where the file ended), the byte count."""
    head = data[:head_len]
    out = np.zeros((rows, width), np.uint8)
    n = len(head)
    for i in range(rows):
        part = data[head_len + i * stride: head_len + i * stride + width]
        out[rows - 1 - i if bottom_up else i, : len(part)] = np.frombuffer(part, np.uint8)
        n += len(part)
        if len(part) < width:
            break
    return head, out, n


@settings(max_examples=150, deadline=None)
@given(head_len=st.integers(0, 70), rows=st.integers(0, 1300), width=st.integers(1, 40), pad=st.integers(0, 3),
       bottom_up=st.booleans(), cut=st.integers(0, 60000), seed=st.integers(0, 2**16))
def test_read_rows_places_header_and_rows_like_a_model(tmp_path_factory, head_len, rows, width, pad, bottom_up, cut,
                                                       seed):
    """LocalStorage.read_rows (one preadv of up to 1024 buffers at a time, gaps between rows skipped)
    and the plain Storage.read_rows against a model, whole and truncated files alike."""
    from imgstore.storage import open_storage
    from imgstore.storage.base import Storage

    stride = width + pad
    size = head_len + max(0, rows * stride - pad)
    data = np.random.default_rng(seed).integers(0, 256, size, np.uint8).tobytes()[: min(size, cut)]
    d = tmp_path_factory.mktemp("rows")
    (d / "f").write_bytes(data)
    storage = open_storage(str(d))
    want_head, want_rows, want_n = _rows_model(data, head_len, rows, width, stride, bottom_up)
    for read in (storage.read_rows, lambda *a, **k: Storage.read_rows(storage, *a, **k)):
        head = bytearray(head_len)
        dst = np.zeros((rows, width), np.uint8)
        n = read("f", head, dst, stride, bottom_up=bottom_up)
        assert n == want_n
        assert bytes(head[: len(want_head)]) == want_head
        np.testing.assert_array_equal(dst, want_rows)


def test_read_rows_of_a_missing_file(tmp_path):
    from imgstore.storage import open_storage

    with pytest.raises(FileNotFoundError):
        open_storage(str(tmp_path)).read_rows("nope", bytearray(4), np.zeros((2, 2), np.uint8), 2)


@pytest.mark.parametrize("color", [True, False])
def test_bmp_frames_of_other_kinds_in_one_chunk_read_right(tmp_path, color):
    """After the first file, BMP frames are read straight into their rows where the file's head is the
    last one's: files of another size, bit depth, row order or palette, and short ones, are still
    read as their own bytes say (or fail naming the file)."""
    import imgstore
    from imgstore.apps.synthetic import make_frame, read_frame_number

    shape = (48, 64, 3) if color else (48, 64)
    path = str(tmp_path / "s")
    s = imgstore.new_for_format("bmp", basedir=path, imgshape=shape, imgdtype=np.uint8, chunksize=100)
    for i in range(8):
        s.add_image(make_frame(i, shape), i, float(i))
    s.close()
    chunk = tmp_path / "s" / "000000"
    f = sorted(chunk.iterdir())
    bgr = make_frame(3, (48, 64, 3))
    f[3].write_bytes(IMAGE_FORMATS["bmp"].encode(bgr if not color else bgr[..., 0]))  # the other bit depth
    top_down = bytearray(f[4].read_bytes())
    h = int.from_bytes(top_down[22:26], "little", signed=True)
    stride = len(top_down[int.from_bytes(top_down[10:14], "little"):]) // h
    rows = [top_down[-(k + 1) * stride: len(top_down) - k * stride] for k in range(h)]
    top_down[int.from_bytes(top_down[10:14], "little"):] = b"".join(rows)
    top_down[22:26] = (-h).to_bytes(4, "little", signed=True)  # rows stored top first
    f[4].write_bytes(bytes(top_down))
    expected = {i: make_frame(i, shape) for i in range(8)}
    expected[3] = ensure_color(bgr[..., 0]) if color else ensure_grayscale(bgr)
    r = imgstore.new_for_filename(path)
    for i in range(8):
        if i == 6:
            f[7].write_bytes(f[7].read_bytes()[:-100])  # shorter from here on: not read past its end
        if i == 7:
            with pytest.raises(imgstore.CorruptChunkError, match="000007"):
                r.get_next_image()
            continue
        img, (fn, _) = r.get_next_image()
        assert fn == i and np.array_equal(img, expected[i]), i
        assert read_frame_number(img) == i or i == 3
    r.close()
