"""Directory-store frame formats: one file per frame.

``npy`` is raw numpy; ``png``, ``jpg`` and ``bmp`` go through imagecodecs
(about twice Pillow's PNG encode speed here, and 16-bit colour PNG), ``tif``
through tifffile, ``ppm``/``pgm`` through Pillow. Files hold RGB as every
image viewer expects; frames in and out are BGR like OpenCV's, so stores
stay interchangeable with the original implementation.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import frame_memory
from ..color import bgr_to_gray, ensure_color, ensure_grayscale, is_color, rgb_to_gray, swap_rb
from ..format.chunkindex import read_npy_header

#: OpenCV's default JPEG quality, used by the original
JPEG_QUALITY = 95
#: OpenCV's PNG defaults (zlib level 1, RLE strategy, SUB filter): as small as the
#: original's files and 3-5x faster than zlib's default strategy here
PNG_LEVEL = 1


def _to_file_order(img: np.ndarray) -> np.ndarray:
    return swap_rb(img) if is_color(img) else np.ascontiguousarray(img)


def _from_file(arr: np.ndarray, color: bool) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3:
        arr = swap_rb(arr)  # RGB -> BGR
    return ensure_color(arr) if color else ensure_grayscale(arr)


def _npy_encode(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(img), allow_pickle=False)
    return buf.getvalue()


#: parsed ``.npy`` headers by their bytes: the frames of a store share one, and numpy's parser
#: (``ast.literal_eval``) took 50-100 us of the 200 a mapped 1280x1024 frame took to read
_npy_headers: dict[bytes, tuple] = {}


def _npy_header(data) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, data offset)`` of an ``.npy`` file's bytes."""
    head = bytes(memoryview(data)[:12])
    key = size = None
    if len(head) >= 10:  # magic, version, header length (2 bytes in version 1, else 4), header
        size = 10 + int.from_bytes(head[8:10], "little") if head[6] == 1 else 12 + int.from_bytes(head[8:12], "little")
        key = bytes(memoryview(data)[:size]) if size <= 65536 else None
    got = _npy_headers.get(key) if key is not None else None
    if got is None:
        f = io.BytesIO(memoryview(data)[:65536])
        shape, fortran, dtype = read_npy_header(f)
        got = (shape, fortran, dtype, f.tell())
        if key is not None and f.tell() == size:
            if len(_npy_headers) >= 64:
                _npy_headers.clear()
            _npy_headers[key] = got
    return got


def _npy_decode(data: bytes, color: bool) -> np.ndarray:
    """The array of an ``.npy`` file's bytes, a view of *data* (writable if *data* is); never unpickles.
    (``np.load`` of a BytesIO copied a 1280x1024 frame in 8 pieces: 2.1 instead of 0.15 ms.)"""
    shape, fortran, dtype, offset = _npy_header(data)
    if dtype.hasobject:
        raise ValueError("the frame holds Python objects (pickled data is never loaded)")
    count = int(np.prod(shape, dtype=np.int64))
    arr = np.frombuffer(data, dtype, count, offset)  # ValueError if the file is short
    return arr.reshape(shape, order="F" if fortran else "C")


def _png_encode(img: np.ndarray) -> bytes:
    import imagecodecs

    return imagecodecs.png_encode(_to_file_order(img), level=PNG_LEVEL, strategy=imagecodecs.PNG.STRATEGY.RLE,
                                  filter=imagecodecs.PNG.FILTER.SUB)


def _png_decode(data: bytes, color: bool) -> np.ndarray:
    import imagecodecs

    return _from_file(imagecodecs.png_decode(data), color)


def _jpg_encode(img: np.ndarray) -> bytes:
    import imagecodecs

    return imagecodecs.jpeg8_encode(_to_file_order(img), level=JPEG_QUALITY)


def _jpg_decode(data: bytes, color: bool) -> np.ndarray:
    import imagecodecs

    if color:  # libjpeg-turbo writes BGR directly
        return imagecodecs.jpeg8_decode(data, outcolorspace=imagecodecs.JPEG8.CS.EXT_BGR)
    return _from_file(imagecodecs.jpeg8_decode(data), color)


def _bmp_encode(img: np.ndarray) -> bytes:
    import imagecodecs

    return imagecodecs.bmp_encode(_to_file_order(img))


def _bmp_decode(data: bytes, color: bool) -> np.ndarray:
    arr = _bmp_pixels(data)
    if arr is None:
        import imagecodecs

        return _from_file(imagecodecs.bmp_decode(data), color)
    return _bmp_finish(arr, color)


def _bmp_finish(arr: np.ndarray, color: bool) -> np.ndarray:
    if arr.ndim == 3:  # BMP rows hold BGR, as frames do
        return arr if color else bgr_to_gray(arr)
    return ensure_color(arr) if color else arr


@dataclass(frozen=True)
class RowLayout:
    """Where an uncompressed frame file keeps its pixels: every byte before them (headers, palette),
    then ``rows`` rows of ``row_bytes``, ``stride`` bytes apart, the last row first if ``bottom_up``.
    A file whose first ``len(head)`` bytes equal ``head`` keeps them the same way."""

    head: bytes
    rows: int
    row_bytes: int
    stride: int
    bottom_up: bool
    shape: tuple


def _bmp_layout(data: bytes) -> RowLayout | None:
    """The layout of an uncompressed 24-bit BMP (BGR) or 8-bit BMP with a gray palette; None for any
    other kind of BMP."""
    if len(data) < 54 or data[:2] != b"BM":
        return None
    offset, header = int.from_bytes(data[10:14], "little"), int.from_bytes(data[14:18], "little")
    w, h = int.from_bytes(data[18:22], "little", signed=True), int.from_bytes(data[22:26], "little", signed=True)
    bits, compression = int.from_bytes(data[28:30], "little"), int.from_bytes(data[30:34], "little")
    if header < 40 or compression != 0 or bits not in (8, 24) or w <= 0 or h == 0 or offset < 14 + header:
        return None
    channels = bits // 8
    stride = (w * channels + 3) & ~3
    if offset + stride * abs(h) > len(data):
        return None
    if bits == 8:
        colors = int.from_bytes(data[46:50], "little") or 256
        if colors != 256 or 14 + header + 4 * colors > offset:
            return None
        palette = np.frombuffer(data, np.uint8, 4 * colors, 14 + header).reshape(colors, 4)[:, :3]
        if not (palette == np.arange(256, dtype=np.uint8)[:, None]).all():
            return None  # a palette that is not plain gray
    return RowLayout(bytes(data[:offset]), abs(h), w * channels, stride, h > 0,
                     (abs(h), w, 3) if channels == 3 else (abs(h), w))


def _bmp_pixels(data: bytes) -> np.ndarray | None:
    """The pixels of a BMP that :func:`_bmp_layout` reads, as read straight from the bytes; else None."""
    lay = _bmp_layout(data)
    if lay is None:
        return None
    rows = np.frombuffer(data, np.uint8, lay.stride * lay.rows, len(lay.head)).reshape(lay.rows, lay.stride)
    rows = rows[:, : lay.row_bytes]
    if lay.bottom_up:
        rows = rows[::-1]
    if rows.flags.c_contiguous:
        out = rows
    else:
        out = frame_memory.empty(rows.shape)
        out[...] = rows
    return out.reshape(lay.shape)


def _tif_encode(img: np.ndarray) -> bytes:
    import tifffile

    buf = io.BytesIO()
    arr = _to_file_order(img)
    tifffile.imwrite(buf, arr, photometric="rgb" if arr.ndim == 3 else "minisblack", compression="lzw")
    return buf.getvalue()


def _tif_decode(data: bytes, color: bool) -> np.ndarray:
    """libtiff through imagecodecs (an LZW-compressed 640x480 frame as OpenCV writes it, in 120 strips:
    2.0 ms, tifffile 6.7 ms); tifffile for what libtiff does not read."""
    try:
        import imagecodecs

        arr = imagecodecs.tiff_decode(data)
    except Exception:  # noqa: BLE001 - tifffile reads more kinds of TIFF, and says what is wrong
        import tifffile

        arr = tifffile.imread(io.BytesIO(data))
    return _from_file(arr, color)


def _pnm_encode(img: np.ndarray, want_color: bool) -> bytes:
    from PIL import Image

    img = ensure_color(img) if want_color else ensure_grayscale(img)
    buf = io.BytesIO()
    Image.fromarray(_to_file_order(img)).save(buf, format="PPM")
    return buf.getvalue()


def _pnm_decode(data: bytes, color: bool) -> np.ndarray:
    arr = _pnm_pixels(data)
    if arr is None:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im)
        if arr.dtype == np.int32:  # Pillow opens 16-bit PGM as 32-bit integers
            arr = arr.astype(np.uint16)
        return _from_file(arr, color)
    if arr.ndim == 3 and not color:
        return rgb_to_gray(arr)  # no channel swap first
    return _from_file(arr, color)


_PNM_WS = b" \t\r\n\v\f"


def _pnm_pixels(data: bytes) -> np.ndarray | None:
    """The pixels of a binary PGM (P5) or PPM (P6, RGB) with maxval 255 or 65535, straight from the
    bytes (16-bit samples are big-endian); None for any other kind of PNM."""
    if data[:2] not in (b"P5", b"P6"):
        return None
    fields, i, n = [], 2, len(data)
    while len(fields) < 3:
        while i < n and data[i] in _PNM_WS:
            i += 1
        if i < n and data[i] == 35:  # '#': a comment to the end of the line
            while i < n and data[i] not in b"\r\n":
                i += 1
            continue
        j = i
        while j < n and 48 <= data[j] <= 57:
            j += 1
        if j == i or j >= n or data[j] not in _PNM_WS:
            return None
        fields.append(int(bytes(data[i:j])))
        i = j
    w, h, maxval = fields
    channels = 3 if data[:2] == b"P6" else 1
    dtype = {255: np.dtype(np.uint8), 65535: np.dtype(">u2")}.get(maxval)
    count = w * h * channels
    if dtype is None or not w or not h or n - (i + 1) < count * dtype.itemsize:
        return None
    arr = np.frombuffer(data, dtype, count, i + 1).reshape((h, w, 3) if channels == 3 else (h, w))
    return arr.astype(np.uint16) if dtype.itemsize == 2 else arr  # a view of *data*


@dataclass(frozen=True)
class ImageFormat:
    """One directory-store frame format."""

    name: str
    extension: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes, bool], np.ndarray]
    lossless: bool
    dtypes: tuple[str, ...]
    colors: tuple[bool, ...] = (False, True)  # gray, colour
    #: frames are compressed: decoding them costs more than reading them, so a sequential reader
    #: decodes the next few on other threads (uncompressed ones: a thread hand-off costs more)
    compressed: bool = True
    #: frames (False: gray, True: colour) that are their file's bytes, a view of them: local files are
    #: mapped instead of read, so a frame costs only the pages used. Where the bytes are converted
    #: anyway (BMP rows stored bottom-up, PPM's RGB, gray PGM as colour), reading is cheaper than
    #: faulting the pages in (a 640x480 BMP: 0.26 against 0.35 ms, 2026-12-03)
    mapped: tuple[bool, ...] = ()
    #: uncompressed files whose pixels are rows at a place the first file read tells
    #: (:class:`RowLayout`); the next ones are read straight into a frame, each checked to have the
    #: same head (one copy, not two: a bottom-up BMP is read and flipped)
    row_layout: Callable[[bytes], RowLayout | None] | None = None
    #: the frame of rows read that way (colour or gray asked)
    from_rows: Callable[[np.ndarray, bool], np.ndarray] | None = None

    def check(self, imgshape, dtype) -> None:
        """Raise ValueError if frames of this shape/dtype cannot be stored losslessly in this format."""
        dt = np.dtype(dtype).name
        if dt not in self.dtypes:
            raise ValueError(f"format {self.name!r} cannot store {dt} frames (supports {', '.join(self.dtypes)})")


IMAGE_FORMATS: dict[str, ImageFormat] = {
    f.name: f
    for f in (
        ImageFormat("npy", "npy", _npy_encode, _npy_decode, True,
                    ("uint8", "uint16", "uint32", "int8", "int16", "int32", "int64", "uint64",
                     "float16", "float32", "float64", "bool"), compressed=False, mapped=(False, True)),
        ImageFormat("png", "png", _png_encode, _png_decode, True, ("uint8", "uint16")),
        ImageFormat("jpg", "jpg", _jpg_encode, _jpg_decode, False, ("uint8",)),
        ImageFormat("tif", "tif", _tif_encode, _tif_decode, True, ("uint8", "uint16", "float32")),
        ImageFormat("bmp", "bmp", _bmp_encode, _bmp_decode, True, ("uint8",), compressed=False,
                    row_layout=_bmp_layout, from_rows=_bmp_finish),
        ImageFormat("ppm", "ppm", lambda img: _pnm_encode(img, True), _pnm_decode, True, ("uint8",), (True,),
                    compressed=False),
        ImageFormat("pgm", "pgm", lambda img: _pnm_encode(img, False), _pnm_decode, True, ("uint8", "uint16"),
                    (False,), compressed=False, mapped=(False,)),
    )
}

#: the original's names for "write colour frames converted from the store encoding"
COLOR_VARIANTS = ("tif+color", "png+color", "jpg+color", "bmp+color")


def image_format(name: str) -> ImageFormat:
    return IMAGE_FORMATS[name]
