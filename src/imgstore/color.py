"""Colour conversions with OpenCV's conventions (BGR order, its gray weights), without OpenCV."""

from __future__ import annotations

import re

import numpy as np

from . import frame_memory
from .errors import OptionalDependencyError, UnsupportedFormatError

try:  # the compiled uint8 loops (docs/design/pixels.md); numpy gives the same bytes without them
    from . import _pixels
except ImportError:  # pragma: no cover - an install that could not compile it
    _pixels = None


def is_color(img_or_shape) -> bool:
    shape = img_or_shape.shape if hasattr(img_or_shape, "shape") else tuple(img_or_shape)
    return len(shape) == 3 and shape[-1] == 3


def _compiled(img: np.ndarray) -> bool:
    """True if the compiled loops take *img* (uint8, 3 channels last)."""
    return _pixels is not None and img.dtype == np.uint8 and img.ndim >= 1 and img.shape[-1] == 3


def swap_rb(img: np.ndarray) -> np.ndarray:
    """BGR <-> RGB as a new C-contiguous array."""
    out = frame_memory.empty(img.shape, dtype=img.dtype)
    if _compiled(img):
        _pixels.swap_rb(np.ascontiguousarray(img), out)
        return out
    out[..., 0] = img[..., 2]  # 3.5x faster than copying a reversed view
    out[..., 1] = img[..., 1]
    out[..., 2] = img[..., 0]
    return out


_GRAY_WEIGHTS = (3735, 19235, 9798)  # B, G, R in 15-bit fixed point: OpenCV's, summing to 2**15


def rgb_to_gray(img: np.ndarray) -> np.ndarray:
    """RGB → gray, the same values as :func:`bgr_to_gray` of the BGR image (no channel swap made)."""
    return _weighted_gray(img, _GRAY_WEIGHTS[::-1])


def bgr_to_gray(img: np.ndarray) -> np.ndarray:
    """BGR → gray with OpenCV's weights; bit-identical to ``cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)`` for uint8.

    OpenCV computes uint8 in 15-bit fixed point, ``(B*3735 + G*19235 + R*9798 + 2**14) >> 15``
    (checked against every BGR value); so does this, in uint32 (uint64 for uint16), on blocks of
    rows that stay in the CPU cache. On one thread, deliberately: a BLAS matrix-vector product
    (1.5 ms wall for 1280x1024 on 2 cores, 2.5 ms on one) kept OpenBLAS's threads spinning
    between calls, and sequential reads of 3-channel H.264 spent 10-12 ms of CPU per frame.
    """
    return _weighted_gray(img, _GRAY_WEIGHTS)


def _weighted_gray(img: np.ndarray, weights: tuple[int, int, int]) -> np.ndarray:
    """``(c0*w0 + c1*w1 + c2*w2 + 2**14) >> 15`` of the channels c0, c1, c2 of *img* (see :func:`bgr_to_gray`)."""
    if _compiled(img):
        out = frame_memory.empty(img.shape[:-1], np.uint8)
        (_pixels.bgr_to_gray if weights == _GRAY_WEIGHTS else _pixels.rgb_to_gray)(np.ascontiguousarray(img), out)
        return out
    if img.dtype == np.uint8 or img.dtype == np.uint16:
        src = np.ascontiguousarray(img)
        h = src.shape[0] if src.ndim == 3 else 1
        src = src.reshape(h, -1, 3)
        acc_t = np.uint32 if img.dtype == np.uint8 else np.uint64
        out = frame_memory.empty(src.shape[:2], img.dtype)
        rows = max(1, 65536 // max(1, src.shape[1]))  # 256 KiB of accumulator per block
        acc = frame_memory.empty((min(rows, h), src.shape[1]), acc_t)
        tmp = np.empty_like(acc)
        for r in range(0, h, rows):
            blk = src[r:r + rows]
            a, t = acc[:len(blk)], tmp[:len(blk)]
            np.multiply(blk[..., 0], acc_t(weights[0]), out=a, dtype=acc_t)
            np.multiply(blk[..., 1], acc_t(weights[1]), out=t, dtype=acc_t)
            a += t
            np.multiply(blk[..., 2], acc_t(weights[2]), out=t, dtype=acc_t)
            a += t
            a += 16384
            a >>= 15
            np.copyto(out[r:r + len(blk)], a, casting="unsafe")
        return out.reshape(img.shape[:-1])
    f = img.astype(np.float64)
    w = (0.114, 0.587, 0.299) if weights == _GRAY_WEIGHTS else (0.299, 0.587, 0.114)
    y = w[0] * f[..., 0] + w[1] * f[..., 1] + w[2] * f[..., 2]
    return y.astype(img.dtype)


def ensure_color(img: np.ndarray, ensure_copy: bool = False) -> np.ndarray:
    """A (h, w, 3) BGR image: gray input is replicated to 3 channels."""
    if is_color(img):
        return img.copy() if ensure_copy else img
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[-1] == 4:
        return np.ascontiguousarray(img[..., :3])
    out = frame_memory.empty(img.shape + (3,), img.dtype)
    if _pixels is not None and img.dtype == np.uint8:
        _pixels.gray_to_bgr(np.ascontiguousarray(img), out)
    else:
        out[..., 0] = out[..., 1] = out[..., 2] = img  # 1.8x faster than np.repeat
    return out


def ensure_grayscale(img: np.ndarray, ensure_copy: bool = False) -> np.ndarray:
    """A (h, w) image: BGR input is converted with OpenCV's weights."""
    if is_color(img):
        return bgr_to_gray(img)
    if img.ndim == 3 and img.shape[-1] == 1:
        return img[..., 0].copy() if ensure_copy else img[..., 0]
    if img.ndim == 3 and img.shape[-1] == 4:
        return bgr_to_gray(img[..., :3])
    return img.copy() if ensure_copy else img


# --- store "encoding" (Bayer and other raw layouts), decoded with OpenCV -------------
_CV_CODE_RE = re.compile(r"^COLOR_(?P<codec>[A-Za-z0-9_]+?)2BGR(?P<method>_[A-Za-z0-9]+)?$")


def _cv2():
    try:
        import cv2  # type: ignore
    except ImportError:
        raise OptionalDependencyError(
            "this store's pixels have a colour encoding (e.g. a Bayer pattern) that needs OpenCV to convert "
            "to BGR: pip install 'imgstore[opencv]'") from None
    return cv2


def cv_conversion_codes(cv2, pattern: re.Pattern = _CV_CODE_RE):
    """``(encoding name, OpenCV constant)`` of each ``COLOR_*2BGR*`` conversion whose name *pattern*
    matches, in ``dir(cv2)`` order (OpenCV's demosaicing variants share the plain pattern's name)."""
    for name in dir(cv2):
        m = pattern.match(name)
        if not m:
            continue
        code = "cv_" + m.group("codec").lower().replace("_", "")
        meth = m.group("method")
        if meth:
            if "bayer" in code:
                continue
            code += "_" + meth.lower().replace("_", "")
        yield code, int(getattr(cv2, name))


def _encoding_table(cv2) -> dict[str, int]:
    table: dict[str, int] = {}
    for code, enum in cv_conversion_codes(cv2):
        table.setdefault(code, enum)
    return table


def encoding_converter(encoding: str | None):
    """A function converting frames in *encoding* to BGR (identity when encoding is empty)."""
    if not encoding:
        return None
    cv2 = _cv2()
    table = _encoding_table(cv2)
    if encoding not in table:
        raise UnsupportedFormatError(f"unknown image encoding {encoding!r}")
    enum = table[encoding]
    return lambda img: cv2.cvtColor(img, enum)


def check_encoding(encoding: str | None) -> None:
    """Raise if *encoding* is set and cannot be converted here."""
    if encoding:
        encoding_converter(encoding)
