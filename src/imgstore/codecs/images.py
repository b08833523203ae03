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

from ..color import ensure_color, ensure_grayscale, is_color, swap_rb

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


def _npy_decode(data: bytes, color: bool) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


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
    import imagecodecs

    return _from_file(imagecodecs.bmp_decode(data), color)


def _tif_encode(img: np.ndarray) -> bytes:
    import tifffile

    buf = io.BytesIO()
    arr = _to_file_order(img)
    tifffile.imwrite(buf, arr, photometric="rgb" if arr.ndim == 3 else "minisblack", compression="lzw")
    return buf.getvalue()


def _tif_decode(data: bytes, color: bool) -> np.ndarray:
    import tifffile

    return _from_file(tifffile.imread(io.BytesIO(data)), color)


def _pnm_encode(img: np.ndarray, want_color: bool) -> bytes:
    from PIL import Image

    img = ensure_color(img) if want_color else ensure_grayscale(img)
    buf = io.BytesIO()
    Image.fromarray(_to_file_order(img)).save(buf, format="PPM")
    return buf.getvalue()


def _pnm_decode(data: bytes, color: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im)
    if arr.dtype == np.int32:  # Pillow opens 16-bit PGM as 32-bit integers
        arr = arr.astype(np.uint16)
    return _from_file(arr, color)


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
                     "float16", "float32", "float64", "bool")),
        ImageFormat("png", "png", _png_encode, _png_decode, True, ("uint8", "uint16")),
        ImageFormat("jpg", "jpg", _jpg_encode, _jpg_decode, False, ("uint8",)),
        ImageFormat("tif", "tif", _tif_encode, _tif_decode, True, ("uint8", "uint16", "float32")),
        ImageFormat("bmp", "bmp", _bmp_encode, _bmp_decode, True, ("uint8",)),
        ImageFormat("ppm", "ppm", lambda img: _pnm_encode(img, True), _pnm_decode, True, ("uint8",), (True,)),
        ImageFormat("pgm", "pgm", lambda img: _pnm_encode(img, False), _pnm_decode, True, ("uint8", "uint16"),
                    (False,)),
    )
}

#: the original's names for "write colour frames converted from the store encoding"
COLOR_VARIANTS = ("tif+color", "png+color", "jpg+color", "bmp+color")


def image_format(name: str) -> ImageFormat:
    return IMAGE_FORMATS[name]
