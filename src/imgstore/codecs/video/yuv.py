"""YUV 4:2:0 frames to BGR (or OpenCV's gray of that BGR) in one pass, bit for bit as swscale makes them.

swscale's unscaled YUV420P -> BGR24 costs ~0.45 ms a 640x480 frame here; ``imgstore._pixels`` does
the same arithmetic (swscale's x86 SIMD path) in ~0.1 ms without the GIL, and straight to gray
without a BGR frame in between. Its coefficients are swscale's for BT.601 limited and full range;
before a kernel is used for frames of some format, range and colourspace, it is checked once per
process against swscale itself on ramps over every sample value and on random frames (and on a
random frame of each new width), and frames
that do not pass go through swscale as before. Measurements: docs/design/pixels.md.
"""

from __future__ import annotations

import threading

import numpy as np

try:  # the C extension is optional (pyproject: optional = true)
    from ... import _pixels as _ext
except ImportError:  # pragma: no cover
    _ext = None

from ... import frame_memory
from .formats import _RANGE_JPEG

#: (yoff, ycoef, coff, ub, ug, vg, vr): swscale's terms, e.g. B = clamp(mulhi((Y<<3) - yoff, ycoef)
#: + mulhi((U<<3) - coff, ub)), fitted to and checked against its output
_LIMITED = (128, 9539, 1024, 16525, -3209, -6658, 13075)
_FULL = (-8, 8160, 1024, 14517, -2819, -5846, 11485)
_FORMATS = {"yuv420p": False, "yuvj420p": True}

_checked: dict[tuple, bool] = {}
_lock = threading.Lock()


def _coeffs(name: str, color_range: int):
    full = _FORMATS.get(name)
    if full is None:
        return None
    return _FULL if (full or color_range == _RANGE_JPEG) else _LIMITED


def _planes(fr):
    return [(p, p.line_size) for p in fr.planes[:3]]


def _convert(fr, coeffs, to_gray: bool) -> np.ndarray:
    w, h = fr.width, fr.height
    out = frame_memory.empty((h, w) if to_gray else (h, w, 3))
    (y, ys), (u, us), (v, vs) = _planes(fr)
    _ext.yuv420_to_bgr(y, u, v, out, w, h, ys, us, vs, coeffs, to_gray)
    return out


def _test_frames(name: str, colorspace: int, color_range: int):
    """Frames of this format and these tags: a ramp over every Y (chroma neutral), ramps over every U
    and V at several Y, and random samples."""
    import av

    frames = []

    def make(yp, up, vp):
        fr = av.VideoFrame(yp.shape[1], yp.shape[0], name)
        fr.colorspace, fr.color_range = colorspace, color_range
        for p, a in zip(fr.planes, (yp, up, vp)):
            np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[: a.shape[0], : a.shape[1]] = a
        frames.append(fr)

    # the ramps as bands of 2 rows (one chroma row) of one frame: one swscale set-up, not 16
    ramp = np.arange(256, dtype=np.uint8)
    neutral = np.full(256, 128, np.uint8)
    bands = [(ramp.repeat(2), neutral, neutral)]
    for yv in (16, 60, 128, 200, 240):
        flat = np.full(512, yv, np.uint8)
        bands += [(flat, ramp, neutral), (flat, neutral, ramp), (flat, ramp, ramp[::-1])]
    make(np.stack([b[0] for b in bands]).repeat(2, 0), np.stack([b[1] for b in bands]),
         np.stack([b[2] for b in bands]))
    for h, w in ((48, 64), (34, 98)):
        make(_noise((h, w), 1), _noise((h // 2, w // 2), 2), _noise((h // 2, w // 2), 3))
    return frames


def _noise(shape, seed: int) -> np.ndarray:
    """Samples that look random (a multiplicative hash: importing numpy.random costs ~9 ms)."""
    x = np.arange(seed << 24, (seed << 24) + int(np.prod(shape)), dtype=np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)  # splitmix64's mixer
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (x >> np.uint64(56)).astype(np.uint8).reshape(shape)


def _width_frame(name: str, colorspace: int, color_range: int, w: int):
    """A random 4-row frame *w* wide: swscale's SIMD code works in steps of 8 or 16 pixels and ends a
    row in C, so where that tail begins depends on the width."""
    import av

    fr = av.VideoFrame(w, 4, name)
    fr.colorspace, fr.color_range = colorspace, color_range
    for p in fr.planes[:3]:
        a = np.frombuffer(p, np.uint8).reshape(-1, p.line_size)
        a[:] = _noise(a.shape, w)
    return fr


def _agrees(fr, coeffs, reference) -> bool:
    want = reference(fr)
    if not np.array_equal(_convert(fr, coeffs, False), want):
        return False
    gray = (want[..., 0].astype(np.uint32) * 3735 + want[..., 1].astype(np.uint32) * 19235
            + want[..., 2].astype(np.uint32) * 9798 + 16384) >> 15
    return bool(np.array_equal(_convert(fr, coeffs, True), gray.astype(np.uint8)))


def _passes(key: tuple, coeffs, reference) -> bool:
    name, colorspace, color_range = key[:3]
    if len(key) == 4:  # one more width of frames already checked
        return _agrees(_width_frame(name, colorspace, color_range, key[3]), coeffs, reference)
    for fr in _test_frames(name, colorspace, color_range):
        if not _agrees(fr, coeffs, reference):
            return False
    return True


def fast_coeffs(fr, reference):
    """The kernel's coefficients for decoded frame *fr*, or None where swscale (*reference*: frame ->
    BGR array) must convert it: no extension, another pixel format, odd sizes, or tags whose output
    the kernel did not match."""
    if _ext is None or fr.width % 2 or fr.height % 2:
        return None
    name = fr.format.name
    coeffs = _coeffs(name, fr.color_range)
    if coeffs is None:
        return None
    key = (name, int(fr.colorspace), int(fr.color_range))
    return coeffs if _check(key, coeffs, reference) and _check(key + (fr.width,), coeffs, reference) else None


def _check(key: tuple, coeffs, reference) -> bool:
    ok = _checked.get(key)
    if ok is None:
        with _lock:
            ok = _checked.get(key)
            if ok is None:
                ok = _checked[key] = _passes(key, coeffs, reference)
    return ok


def yuv_to_bgr(fr, coeffs) -> np.ndarray:
    """*fr* (YUV 4:2:0, even sizes) as a new BGR array."""
    return _convert(fr, coeffs, False)


def yuv_to_gray(fr, coeffs) -> np.ndarray:
    """*fr* as OpenCV's gray of its BGR, without making the BGR frame."""
    return _convert(fr, coeffs, True)


def bgr_to_yuv420_frame(a: np.ndarray):
    """A new ``yuv420p`` VideoFrame of C-contiguous BGR uint8 *a* (even sizes), BT.601 limited range
    as swscale makes it (each sample within 1 of it), or None without the extension or for odd sizes."""
    h, w = a.shape[:2]
    if _ext is None or w % 2 or h % 2 or a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 \
            or not a.flags.c_contiguous:
        return None
    import av

    vf = av.VideoFrame(w, h, "yuv420p")
    y, u, v = vf.planes[:3]
    _ext.bgr_to_yuv420(a, w, h, 3 * w, y, u, v, y.line_size, u.line_size, v.line_size)
    return vf
