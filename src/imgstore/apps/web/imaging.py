"""Frames as JPEG or PNG for the browser: colour order, gray-level stretching, 16-bit PNG.

PNG is lossless for uint8 and uint16 frames (16-bit gray stays 16-bit). Frames of
other dtypes, and any frame asked for with gray levels, are scaled to 8 bits
between the levels first (by default the frame's own minimum and maximum).
"""

from __future__ import annotations

from dataclasses import dataclass

import imagecodecs
import numpy as np

from ...color import swap_rb

FORMATS = ("jpeg", "png")
CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}
JPEG_QUALITY = 90
_PNG_LEVEL = 1
_PNG_STRATEGY = 3  # zlib's Z_RLE: on camera frames about as small as the default, 2-3x faster
_PNG_FILTER = imagecodecs.PNG.FILTER.UP


@dataclass(frozen=True)
class Encoded:
    """One encoded frame and the range of values of the frame it came from."""

    data: bytes
    content_type: str
    value_min: float
    value_max: float


def default_format(dtype: np.dtype, shape: tuple[int, ...]) -> str:
    """PNG for 16-bit gray stores (lossless), JPEG for everything else."""
    gray = len(shape) == 2 or shape[-1] == 1
    return "png" if gray and np.dtype(dtype) == np.uint16 else "jpeg"


def encode_frame(img: np.ndarray, fmt: str, levels: tuple[float, float] | None = None) -> Encoded:
    """*img* (gray or BGR, as the store holds it) as *fmt*, stretched to 8 bits if *levels* are given."""
    img = _squeeze(img)
    lo, hi = _value_range(img)
    needs_8bit = levels is not None or img.dtype not in (np.uint8, np.uint16) or (
        fmt == "jpeg" and img.dtype != np.uint8)
    if needs_8bit:
        a, b = levels if levels is not None else (lo, hi)
        img = stretch(img, a, b if b > a else a + 1.0)  # a flat frame: any width will do
    if img.ndim == 3:
        img = swap_rb(img)
    if fmt == "jpeg":
        data = imagecodecs.jpeg8_encode(np.ascontiguousarray(img), level=JPEG_QUALITY)
    else:
        data = imagecodecs.png_encode(np.ascontiguousarray(img), level=_PNG_LEVEL, strategy=_PNG_STRATEGY,
                                      filter=_PNG_FILTER)
    return Encoded(bytes(data), CONTENT_TYPES[fmt], lo, hi)


def stretch(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """*img* mapped linearly from [lo, hi] to 0..255 (clipped), as uint8."""
    if img.dtype == np.uint8 and (lo, hi) == (0, 255):
        return img
    if img.dtype in (np.uint8, np.uint16):
        return _lut(img.dtype, lo, hi)[img]
    f = (img.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    np.nan_to_num(f, copy=False, nan=0.0)
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)


def _lut(dtype: np.dtype, lo: float, hi: float) -> np.ndarray:
    x = np.arange(np.iinfo(dtype).max + 1, dtype=np.float64)
    return np.clip((x - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)


def _squeeze(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and img.shape[-1] == 1:
        return img[..., 0]
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    return img


def _value_range(img: np.ndarray) -> tuple[float, float]:
    if img.size == 0:
        return 0.0, 0.0
    if img.dtype.kind == "f":
        finite = img[np.isfinite(img)]
        if not finite.size:
            return 0.0, 0.0
        return float(finite.min()), float(finite.max())
    return float(img.min()), float(img.max())
