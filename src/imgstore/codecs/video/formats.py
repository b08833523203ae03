"""The video chunk formats: container, encoder, pixel formats and options of each, and which ones
this installation can write (probed once per process).

Why these settings (measured): docs/design/video-formats.md.
"""

from __future__ import annotations

import functools
import io
import logging
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ...errors import UnsupportedFormatError

log = logging.getLogger(__name__)

#: frames between keyframes for inter-frame codecs (H.264, HEVC); see docs/design/video-formats.md
DEFAULT_GOP = 40
#: frame rate written into the file when the caller gives none
DEFAULT_FPS = 25

#: x265 takes 16x16 coding tree units for frames smaller than this (height or width): with its 32x32
#: default, some small frames came back wrong (docs/design/video-formats.md, "x265 on small frames")
X265_SMALL_CTU_BELOW = 128

# AVColorRange values
_RANGE_JPEG = 2


def _opts(**kw) -> tuple[tuple[str, str], ...]:
    return tuple((k, str(v)) for k, v in kw.items())


@dataclass(frozen=True)
class VideoFormat:
    """One way of writing a video chunk: container + encoder + pixel formats + options."""

    #: store format name, e.g. ``"h264/mkv"``
    name: str
    #: chunk file extension including the dot, e.g. ``".mkv"``
    extension: str
    #: FFmpeg muxer name, e.g. ``"matroska"``
    container: str
    #: FFmpeg encoder name, e.g. ``"libx264"``
    codec: str
    #: encoder pixel format for 8-bit grayscale frames
    pix_fmt_gray: str
    #: encoder pixel format for BGR colour frames
    pix_fmt_color: str
    #: encoder options (FFmpeg AVOptions, string values)
    options: tuple[tuple[str, str], ...] = ()
    #: decoding returns exactly the pixels written
    lossless: bool = False
    #: 16-bit grayscale (uint16) frames can be written
    supports_16bit: bool = False
    #: encoder pixel format for 16-bit grayscale frames
    pix_fmt_gray16: str | None = None
    #: muxer options
    container_options: tuple[tuple[str, str], ...] = ()
    #: frame height and width must be even
    even_dims: bool = True
    #: keyframe interval used when the writer is given none (1 = every frame is a keyframe)
    default_gop: int = DEFAULT_GOP
    #: codec family: ``h264``, ``hevc``, ``mjpeg``, ``ffv1``, ``av1``
    family: str = ""
    #: encoder threading: ``SLICE`` makes x264 cut every frame into slices, which a
    #: decoder can then spread over its threads (decoding 1.75x faster on 2 cores)
    thread_type: str = "AUTO"

    def pix_fmt(self, color: bool, dtype=np.uint8) -> str:
        """Encoder pixel format for frames of this kind; UnsupportedFormatError if there is none."""
        dtype = np.dtype(dtype)
        if dtype == np.uint8:
            return self.pix_fmt_color if color else self.pix_fmt_gray
        if dtype == np.uint16 and not color and self.supports_16bit and self.pix_fmt_gray16:
            return self.pix_fmt_gray16
        kind = "colour" if color else "grayscale"
        raise UnsupportedFormatError(f"video format {self.name!r} cannot store {kind} {dtype} frames")

    @property
    def codec_options(self) -> dict[str, str]:
        return dict(self.options)

    def encoder_options(self, h: int, w: int, extra: Mapping[str, object] = ()) -> dict[str, str]:
        """The encoder's options for frames of *h* x *w*: this format's, then the caller's *extra*."""
        codec_opts = self.codec_options
        if self.family == "hevc" and min(h, w) < X265_SMALL_CTU_BELOW:
            codec_opts["x265-params"] = codec_opts.get("x265-params", "") + ":ctu=16"
        codec_opts.update({k: str(v) for k, v in dict(extra).items()})
        return codec_opts

    def muxer_options(self, changes: Mapping[str, object] | None = None) -> dict[str, str]:
        """This format's muxer options with *changes* applied (a value of None removes one)."""
        copts = dict(self.container_options)
        for k, v in (changes or {}).items():
            if v is None:
                copts.pop(k, None)  # None removes one of the format's own options
            else:
                copts[k] = str(v)
        return copts


#: x264: veryfast, zero latency, fast to decode, diamond motion search and no sub-8x8 partitions
#: (each measured: docs/design/video-formats.md, "x264 settings")
_X264 = _opts(preset="veryfast", tune="zerolatency,fastdecode", crf=23, me_method="dia", partitions="none")
#: media seconds per Matroska cluster / MP4 fragment: what the muxer holds in memory, so about
#: what a killed writer loses (docs/design/crash-safety.md)
FRAGMENT_SECONDS = 0.5
_MKV = _opts(cluster_time_limit=int(FRAGMENT_SECONDS * 1000), flush_packets=1)
#: MP4 while it is written: fragmented (header first, then a moof+mdat pair every
#: FRAGMENT_SECONDS), each fragment flushed to the file when it ends, so a killed writer leaves
#: a readable file; ``close()`` remuxes it into a plain MP4 (see :func:`remux_video_chunk`)
_FMP4 = _opts(movflags="empty_moov+default_base_moof", frag_duration=int(FRAGMENT_SECONDS * 1e6),
              flush_packets=1)

VIDEO_FORMATS: dict[str, VideoFormat] = {
    f.name: f
    for f in (
        VideoFormat(
            "mjpeg/avi", ".avi", "avi", "mjpeg", "yuvj420p", "yuvj420p",
            # qscale 3, pinned by qmin = qmax: global_quality alone (FF_QP2LAMBDA = 118) left it at qmin 2
            # (docs/design/video-formats.md, "MJPEG quality")
            options=_opts(flags="+qscale", global_quality=3 * 118, qmin=3, qmax=3),
            container_options=_opts(flush_packets=1), default_gop=1, family="mjpeg", thread_type="SLICE",
        ),
        VideoFormat(
            "avc1/mp4", ".mp4", "mp4", "libx264", "gray", "yuv420p",
            options=_X264, container_options=_FMP4, family="h264", thread_type="SLICE",
        ),
        VideoFormat(
            "h264/mkv", ".mkv", "matroska", "libx264", "gray", "yuv420p",
            options=_X264, container_options=_MKV, family="h264", thread_type="SLICE",
        ),
        VideoFormat(
            "ffv1/mkv", ".mkv", "matroska", "ffv1", "gray", "bgr0",
            options=_opts(level=3, slices=4, slicecrc=1, context=0),
            lossless=True, supports_16bit=True, pix_fmt_gray16="gray16le",
            container_options=_MKV, even_dims=False, default_gop=1, family="ffv1",
        ),
        VideoFormat(
            "hevc/mkv", ".mkv", "matroska", "libx265", "gray", "yuv420p",
            options=_opts(preset="ultrafast", tune="zerolatency", crf=28,
                          **{"x265-params": "open-gop=0:log-level=error"}),
            container_options=_MKV, family="hevc",
        ),
    )
}

#: other names accepted for writing
FORMAT_ALIASES: dict[str, str] = {"mjpeg": "mjpeg/avi"}


def _probe_write(fmt: VideoFormat) -> bool:
    """Really encode two tiny frames of each kind into an in-memory container."""
    import av

    kinds = [(False, np.uint8), (True, np.uint8)]
    if fmt.supports_16bit:
        kinds.append((False, np.uint16))
    try:
        for color, dtype in kinds:
            buf = io.BytesIO()
            with av.open(buf, "w", format=fmt.container) as c:
                s = c.add_stream(fmt.codec, rate=DEFAULT_FPS)
                s.width, s.height = 64, 48
                s.pix_fmt = fmt.pix_fmt(color, dtype)
                s.codec_context.options = fmt.codec_options
                shape = (48, 64, 3) if color else (48, 64)
                in_fmt = "bgr24" if color else ("gray16le" if dtype == np.uint16 else "gray")
                for i in range(2):
                    vf = av.VideoFrame.from_ndarray(np.zeros(shape, dtype), format=in_fmt)
                    vf.pts = i
                    for p in s.encode(vf):
                        c.mux(p)
                for p in s.encode():
                    c.mux(p)
            if not buf.getvalue():
                return False
        return True
    except Exception as e:  # noqa: BLE001 - anything means: not usable here
        log.debug("video format %s not writable here: %s", fmt.name, e)
        return False


@functools.lru_cache(maxsize=None)
def format_is_writable(name: str) -> bool:
    """This installation can encode and mux format *name* (a key of VIDEO_FORMATS; probed once)."""
    return _probe_write(VIDEO_FORMATS[name])


def available_video_formats() -> dict[str, VideoFormat]:
    """The video formats this installation can really write (probed once per process)."""
    return {name: f for name, f in VIDEO_FORMATS.items() if format_is_writable(name)}


def get_video_format(name: str | VideoFormat) -> VideoFormat:
    """The format to *write* called *name* (canonical name or alias such as ``mjpeg``)."""
    if isinstance(name, VideoFormat):
        return name
    key = FORMAT_ALIASES.get(str(name).lower(), str(name).lower())
    fmt = VIDEO_FORMATS.get(key)
    if fmt is None:
        raise UnsupportedFormatError(
            f"unknown video format {name!r}; known: {', '.join(sorted(VIDEO_FORMATS))}"
        )
    if not format_is_writable(fmt.name):
        raise UnsupportedFormatError(f"this installation cannot write video format {fmt.name!r} ({fmt.codec})")
    return fmt


def _family_of(codec: str) -> str | None:
    c = codec.lower()
    if "mjp" in c or "jpeg" in c or c == "mjpg":
        return "mjpeg"
    if "264" in c or "avc" in c:
        return "h264"
    if "265" in c or "hevc" in c:
        return "hevc"
    if "ffv1" in c:
        return "ffv1"
    if "av1" in c or c == "av01":
        return "av1"
    return None


def resolve_video_format(name: str, extension: str | None = None) -> VideoFormat:
    """Interpret a (possibly legacy or Motif) store format name, for *reading*.

    Accepts ``codec/container`` or a bare codec name: ``mjpeg``, ``libx264``,
    ``h264_nvenc``, ``nvenc-h264``, anything containing ``264`` -> H.264,
    ``265``/``hevc`` -> HEVC, ``ffv1``, ``av1``. The container comes from the
    name, else *extension* (``.mp4``/``.avi``/``.mkv``), else ``.avi`` for
    MJPEG and ``.mp4`` otherwise (the original's default). The result's
    ``extension`` is what the chunk files are called; decoding itself does
    not depend on it (the codec is read from each file).
    """
    raw = str(name).strip()
    codec_part, _, cont_part = raw.lower().partition("/")
    family = _family_of(codec_part)
    if family is None:
        raise UnsupportedFormatError(f"unknown video format {name!r}")
    ext = None
    if cont_part:
        ext = "." + cont_part.lstrip(".")
    elif extension:
        ext = extension if extension.startswith(".") else "." + extension
    else:
        ext = ".avi" if family == "mjpeg" else ".mp4"
    ext = ext.lower()
    for f in VIDEO_FORMATS.values():
        if f.family == family and f.extension == ext:
            return f if f.name == raw.lower() else _replace(f, name=raw)
    base = next((f for f in VIDEO_FORMATS.values() if f.family == family), None)
    container = {".mp4": "mp4", ".mov": "mov", ".avi": "avi", ".mkv": "matroska", ".webm": "webm"}.get(ext, ext.lstrip("."))
    if base is None:  # av1: reading only
        return VideoFormat(raw, ext, container, "libsvtav1", "yuv420p", "yuv420p", family=family)
    return _replace(base, name=raw, extension=ext, container=container)


def _replace(fmt: VideoFormat, **kw) -> VideoFormat:
    from dataclasses import replace

    return replace(fmt, **kw)
