"""Decoded frames as the arrays a reader hands out: BGR, or gray (and 16-bit gray) exactly as the
original imgstore (OpenCV) reads them; swscale contexts kept per thread.

Why gray comes from Y only where chroma is exactly neutral: docs/design/video-formats.md ("Gray").
"""

from __future__ import annotations

import os
import threading

import numpy as np

from ... import frame_memory
from ...color import bgr_to_gray
from ...errors import CorruptChunkError
from .formats import _RANGE_JPEG
from .yuv import fast_coeffs, yuv_to_bgr, yuv_to_gray

_GRAY8 = {"gray", "gray8"}
_GRAY16 = {"gray16le", "gray16be", "gray16"}
_NEUTRAL8 = np.uint64(0x8080808080808080)
#: OpenCV's FFmpeg reader (the original's) converts with ``SWS_BICUBIC`` and never hands swscale the
#: stream's colour matrix, so a BT.709-tagged stream is read with BT.601's (docs/design/video-formats.md)
_OPENCV_MATRIX = "ITU601"
_OPENCV_SWS_FLAGS = "BICUBIC"


def _plane(frame, i: int) -> np.ndarray:
    p = frame.planes[i]
    a = np.frombuffer(p, np.uint8)
    return a.reshape(-1, p.line_size)[: p.height, : p.width]


def _plane_copy(frame, i: int) -> np.ndarray:
    """Plane *i* of 8-bit *frame* as a new array (on reused frame memory: :mod:`imgstore.frame_memory`)."""
    src = _plane(frame, i)
    out = frame_memory.empty(src.shape)
    np.copyto(out, src)
    return out


_tls = threading.local()
_idle_sws: list = []
_idle_sws_lock = threading.Lock()


def _sws():
    """This thread's swscale context: taken from the idle ones (a read-ahead thread lives as long as one
    sequential run in one chunk; setting a context up costs ~0.3 ms), given back by :func:`_sws_release`."""
    sws = getattr(_tls, "sws", None)
    if sws is None:
        with _idle_sws_lock:
            sws = _idle_sws.pop() if _idle_sws else None
        if sws is None:
            from av.video.reformatter import VideoReformatter

            sws = VideoReformatter()
        _tls.sws = sws
    return sws


def _sws_release() -> None:
    sws = getattr(_tls, "sws", None)
    if sws is not None:
        _tls.sws = None
        with _idle_sws_lock:
            if len(_idle_sws) < 8:
                _idle_sws.append(sws)


def _to_bgr24(fr) -> np.ndarray:
    """``fr.to_ndarray(format="bgr24")``, the same pixels: YUV 4:2:0 in one pass (:mod:`.yuv`), else
    :func:`_sws_bgr24`."""
    coeffs = fast_coeffs(fr, _sws_bgr24)
    return _sws_bgr24(fr) if coeffs is None else yuv_to_bgr(fr, coeffs)


def _sws_bgr24(fr) -> np.ndarray:
    """``fr.to_ndarray(format="bgr24")``, the same pixels, with a long-lived single-threaded swscale
    context per thread (``to_ndarray`` sets one up for every frame, which cost more than decoding a
    640x480 H.264 P-frame; our own threads already use the cores) and without a second copy where the
    converted frame's rows are not padded."""
    out = _sws().reformat(fr, format="bgr24", src_colorspace=_OPENCV_MATRIX, dst_colorspace=_OPENCV_MATRIX,
                          interpolation=_OPENCV_SWS_FLAGS, threads=1)
    if out is fr:
        return fr.to_ndarray(format="bgr24")  # already BGR: a copy, never a view of a cached frame
    p = out.planes[0]
    h, w = out.height, out.width
    if p.line_size == 3 * w:
        return np.frombuffer(p, np.uint8, 3 * w * h).reshape(h, w, 3)  # owns (keeps alive) the new frame
    return out.to_ndarray()


def _all_128(c: np.ndarray) -> bool:
    """Every sample of the 2-D uint8 array *c* (rows may be padded) is 128."""
    if c.shape[1] % 8 == 0 and c.strides[0] % 8 == 0 and c.ctypes.data % 8 == 0:
        return bool(np.all(c.view(np.uint64) == _NEUTRAL8))  # 8 samples at a time
    return bool(c.min() == 128 and c.max() == 128)


def _full_range_yuv8(frame, name: str) -> bool:
    return (name.startswith("yuvj") or (name.startswith("yuv") and frame.color_range == _RANGE_JPEG)) \
        and name.endswith("p") and len(frame.planes) >= 3


def _full_range_neutral(frame) -> bool:
    """8-bit full-range YUV whose chroma is exactly neutral: then gray == Y, bit for bit."""
    if not _full_range_yuv8(frame, frame.format.name):
        return False  # only 8-bit planar full-range formats
    return _all_128(_plane(frame, 1)) and _all_128(_plane(frame, 2))


def _after_fork_in_child() -> None:
    """A thread that held the idle contexts' lock did not survive fork()."""
    global _idle_sws_lock
    _idle_sws_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Unconverted:
    """A decoded frame whose output image is made later, on the thread that calls :meth:`image`."""

    __slots__ = ("frame", "output")

    def __init__(self, frame, output: "PixelOutput") -> None:
        self.frame = frame
        self.output = output

    def image(self) -> np.ndarray:
        """The output image (raises as the reader's own read would)."""
        fr, self.frame = self.frame, None
        return self.output._crop(self.output._pixels(fr))


class PixelOutput:
    """The part of :class:`~.reader.VideoChunkReader` that turns a decoded frame into its output image
    (reads ``color``, ``dtype``, ``imgshape``, ``filename`` and ``_mono`` of the reader)."""

    #: the thread whose conversions hand out :class:`Unconverted` frames meanwhile (``read_unconverted``);
    #: the reader's own read-ahead threads keep converting theirs
    _defer: int | None = None

    def _convert(self, fr) -> np.ndarray:
        """The output image of decoded frame *fr*."""
        if self._defer is not None and self._defer == threading.get_ident():
            return Unconverted(fr, self)  # type: ignore[return-value]
        return self._crop(self._pixels(fr))

    def _pixels(self, fr) -> np.ndarray:
        """*fr* converted to this reader's pixel format, not cropped."""
        name = fr.format.name
        if self.color:
            img = _to_bgr24(fr)
        elif self.dtype == np.uint16:
            if name in _GRAY16:
                img = fr.to_ndarray(format="gray16le")
            else:
                img = _gray8(fr, name, self._mono).astype(np.uint16)
        else:
            img = _gray8(fr, name, self._mono)
        return img

    def _crop(self, img: np.ndarray) -> np.ndarray:
        """*img* cut to the store's frame shape (the original imgstore rounds odd sizes down to even)."""
        if self.imgshape is not None:
            h, w = self.imgshape[:2]
            if img.shape[0] < h or img.shape[1] < w:
                raise CorruptChunkError(
                    f"{self.filename}: decoded frame is {img.shape[1]}x{img.shape[0]}, store says {w}x{h}"
                )
            if img.shape[0] > h or img.shape[1] > w:
                img = np.ascontiguousarray(img[:h, :w])
        return img


def _gray8(fr, name: str, mono: bool = False) -> np.ndarray:
    """8-bit gray of decoded frame *fr* (pixel format *name*; *mono*: monochrome H.264)."""
    if name in _GRAY8:
        return _plane_copy(fr, 0)  # what to_ndarray(format="gray") gives
    if mono and _full_range_yuv8(fr, name):
        return _plane_copy(fr, 0)  # monochrome H.264: the decoder fills chroma with 128
    if _full_range_neutral(fr):
        return _plane_copy(fr, 0)
    coeffs = fast_coeffs(fr, _sws_bgr24)
    return bgr_to_gray(_sws_bgr24(fr)) if coeffs is None else yuv_to_gray(fr, coeffs)


def frame_image(fr, gray: bool) -> np.ndarray:
    """8-bit decoded frame *fr* as the original imgstore (OpenCV) reads it: BGR, or OpenCV's gray of
    that BGR."""
    return _gray8(fr, fr.format.name) if gray else _to_bgr24(fr)
