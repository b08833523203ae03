"""Video chunk codecs: one video file per chunk, written and read with PyAV.

Formats (``VIDEO_FORMATS``; :func:`available_video_formats` probes, once per
process, which of them this FFmpeg build can really write):

============  =========  =========  =====================  ==============================
name          container  encoder    gray / colour pix_fmt  settings
============  =========  =========  =====================  ==============================
mjpeg/avi     AVI        mjpeg      yuvj420p / yuvj420p    qscale 3, every frame a keyframe
avc1/mp4      MP4        libx264    gray / yuv420p         veryfast, tune=zerolatency, crf 23;
                                                           0.5 s fragments until close()
h264/mkv      Matroska   libx264    gray / yuv420p         same; 0.5 s clusters, flushed packets
ffv1/mkv      Matroska   ffv1       gray, gray16le / bgr0  lossless, level 3, 4 slices, intra
hevc/mkv      Matroska   libx265    gray / yuv420p         ultrafast, tune=zerolatency, crf 28
============  =========  =========  =====================  ==============================

Grayscale stays one channel where the codec has a gray input (x264, x265,
ffv1) and is tagged full range, so neither we nor OpenCV stretch 16..235 to
0..255 on decode (untagged, a ramp came back up to 20 levels off).

A killed writer leaves a readable file in every format, missing at most the
frames the muxer still held: MP4 is written fragmented (``empty_moov``, a
``moof``+``mdat`` pair every :data:`FRAGMENT_SECONDS`, each flushed when it
ends) and remuxed into a plain MP4 at ``close()`` (no re-encoding: 0.06-0.08 s
for 3000 frames of 1280x1024, 6.5 kB/frame; the result is byte-for-byte the
size of a plain MP4 written directly); Matroska flushes each cluster; AVI each
packet (see :meth:`VideoChunkWriter.durable_count`). Fragmenting flags,
measured by SIGKILL at random moments at 30 fps (8 kills each, frames lost
max/mean): the chosen ``empty_moov+default_base_moof``, ``frag_duration``
0.5 s, ``flush_packets=1``: 14/9.1; plus ``frag_keyframe``: 16/8.5;
``frag_keyframe`` alone (fragment = GOP, 1.7 s): 42/27; without
``flush_packets`` (the 32 KiB I/O buffer holds whole fragments): 89/52;
without ``empty_moov`` or without ``default_base_moof``: unchanged (14/9.1).

Measured (1280x1024 gray8: textured background, moving blobs, noise; 2 cores
shared with other jobs, so trust ratios; writes through VideoChunkWriter,
reads through VideoChunkReader, random = uniform over a 400-1000 frame chunk
with the cache off):

=============  ==========  ========  ==============  =========
format         write fps   kB/frame  random reads/s  seq. fps
=============  ==========  ========  ==============  =========
h264/mkv GOP50 136-168     13.9      17-20           470-490
hevc/mkv GOP50 63-111      5.6-5.9   22-26           530-570
ffv1/mkv       77          906       72              72
mjpeg/avi      119         430       157             157
=============  ==========  ========  ==============  =========

Paced at 60 fps, ``write()`` returns in 0.1-0.3 ms (median; it only copies
the frame into a bounded queue for the encoder thread). AV1 (libsvtav1) was
not chosen: it has no gray input, and its low-delay mode managed 50-63 fps at
24-65 kB/frame (its default mode reorders 32-frame mini-GOPs).

x264 settings, same content, GOP 250: veryfast + tune=zerolatency 124-274
fps at 7.8 kB/frame; veryfast + bframes=0 80-214 fps at 11.9 kB; superfast
83-162 fps at 40 kB; faster 37-63 fps. zerolatency also means no B-frames and
no look-ahead (a frame reaches the file when it is written), and x264 is run
with slice threads so that every frame has slices a decoder can split over
its threads: sequential decode 571 -> 999 fps with 2 decoder threads, against
540 -> 565 fps for a frame-threaded encode of the same size.

GOP (keyframe interval), h264/mkv, 1000-frame chunk. Random reads cost one
keyframe decode (~300 kB I-frames on noisy content, 15-20 ms) plus on
average GOP/2 P-frames; the LRU cache (64 frames) serves clustered access:

====  ========  ==============  ========================  =========
GOP   kB/frame  random reads/s  reads/s, clustered +-50   seq. fps
====  ========  ==============  ========================  =========
10    38.6      36              73                        264
25    20.7      27              51                        366
50    13.9      19              54                        494
100   10.1      12              22                        512
250   7.6       7               63 (one GOP held it all)  694
====  ========  ==============  ========================  =========

:data:`DEFAULT_GOP` = 50 (2 s at 25 fps): 1.8x the bytes of GOP 250 for
2.7x the random reads/s, where going on to GOP 25 would cost another 1.5x
the bytes for 1.45x. Intra-only codecs (mjpeg, ffv1) default to 1.

Timestamps: ``pts`` = frame count, codec time base ``1/fps`` (``fps`` from
the caller, 25 if None). Matroska stores milliseconds, so above 1000 fps its
nominal rate is capped at 1000 to keep timestamps distinct (real frame times
live in the store's frame index).

Reading never trusts the container's frame count or the decoder's frame
counter: the chunk's packet index (:mod:`.video_index`) gives every frame's
pts, and the frame at position *p* is the *p*-th in pts order (B-frames and
variable frame rate included). Gray output: gray files give their samples;
full-range YUV with exactly neutral chroma gives Y (bit-identical to the
next rule); anything else is converted to BGR and then to gray with
OpenCV's fixed-point weights. On the reference stores written by the
original imgstore (OpenCV), PyAV's ``bgr24`` equals OpenCV's BGR exactly and
this gray path equals OpenCV's gray exactly, where ``to_ndarray('gray')`` of
the yuv420p frames was up to 3 levels off.
"""

from __future__ import annotations

import collections
import functools
import io
import logging
import os
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Mapping, Sequence

import numpy as np

from ..errors import CorruptChunkError, UnsupportedFormatError
from ..storage.base import Storage
from .base import ChunkReader, ChunkWriter
from .video_index import (
    MatroskaProgress,
    Mp4FragmentProgress,
    PacketIndex,
    build_packet_index,
    load_packet_index,
    mp4_is_fragmented,
    open_container,
    packet_index_key,
    packet_ts,
)

log = logging.getLogger(__name__)

#: frames between keyframes for inter-frame codecs (H.264, HEVC); see the module docstring
DEFAULT_GOP = 50
#: frame rate written into the file when the caller gives none
DEFAULT_FPS = 25
#: frames the writer may hold queued for its encoder thread before write() blocks
DEFAULT_QUEUE_SIZE = 16

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


_X264 = _opts(preset="veryfast", tune="zerolatency", crf=23)
#: media seconds per Matroska cluster / MP4 fragment: what the muxer holds in memory, so about
#: what a killed writer loses (measured, 30 fps, SIGKILL at random: at most 29 frames lost with
#: 1 s, 14 with 0.5 s; 0.5 s costs +0.007% bytes in MKV, +0.05% in fragmented MP4 before the remux)
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
            options=_opts(flags="+qscale", global_quality=3 * 118),  # qscale 3 (FF_QP2LAMBDA = 118)
            container_options=_opts(flush_packets=1), default_gop=1, family="mjpeg",
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
def _writable(name: str) -> bool:
    return _probe_write(VIDEO_FORMATS[name])


def available_video_formats() -> dict[str, VideoFormat]:
    """The video formats this installation can really write (probed once per process)."""
    return {name: f for name, f in VIDEO_FORMATS.items() if _writable(name)}


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
    if not _writable(fmt.name):
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


# --------------------------------------------------------------------------------------------
# writing


def _default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def _fragmenting(container_options: Mapping[str, str]) -> bool:
    """True if these ``mp4`` muxer options make it write movie fragments."""
    flags = str(container_options.get("movflags", ""))
    if any(f in flags for f in ("frag_keyframe", "empty_moov", "frag_custom", "frag_every_frame")):
        return True
    return any(float(container_options.get(k, 0) or 0) > 0 for k in ("frag_duration", "frag_size"))


#: FFmpeg muxer for each chunk file extension (what :func:`remux_video_chunk` writes)
_MUXER_OF_EXTENSION = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}


def remux_video_chunk(storage: Storage, key: str, *, max_frames: int | None = None,
                      container: str | None = None) -> int:
    """Rewrite video chunk *key* through a fresh muxer, without re-encoding.

    Makes a fragmented MP4 a plain MP4 (one ``moov`` at the end), and gives
    an MKV or AVI whose writer died its index (Cues / idx1) and sizes, which
    OpenCV needs to seek in it. The muxer is *container* (default: from the
    file extension). Packets are copied in file order; packets cut short by
    the end of the file are dropped, and so is everything after the first
    *max_frames* packets when given. The new file replaces the old one
    atomically (a temporary file beside it, fsynced, then renamed; its name
    does not end in a video extension, so no reader takes it for a chunk).
    The chunk's packet index is stale afterwards (rebuilt on the next load).
    Returns the number of frames (packets) in the new file.
    """
    import av
    import tempfile

    if container is None:
        container = _MUXER_OF_EXTENSION.get(os.path.splitext(key)[1].lower())
        if container is None:
            raise UnsupportedFormatError(f"{storage.describe(key)}: no muxer known for this file extension")
    muxer_options = {}
    if container in ("matroska", "webm"):
        muxer_options = {"cluster_time_limit": str(int(FRAGMENT_SECONDS * 1000))}
    describe = storage.describe(key)
    size = int(storage.stat(key).size)
    path = storage.local_path(key)
    inp, in_fobj = open_container(storage, key)
    tmp = out_buf = None
    n = 0
    try:
        if not inp.streams.video:
            raise CorruptChunkError(f"{describe}: no video stream")
        ist = inp.streams.video[0]
        if path is not None:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-remux-", suffix=".part", dir=os.path.dirname(path) or ".")
            os.close(fd)
            out = av.open(tmp, "w", format=container, options=muxer_options)
        else:
            out_buf = io.BytesIO()
            out = av.open(out_buf, "w", format=container, options=muxer_options)
        try:
            ost = out.add_stream_from_template(ist)
            out.start_encoding()  # the header, even when no packet follows
            try:
                for pkt in inp.demux(ist):
                    if not pkt.size:
                        continue
                    if max_frames is not None and n >= max_frames:
                        break
                    p = pkt.pos if pkt.pos is not None else -1
                    if pkt.is_corrupt or (p >= 0 and p + pkt.size > size):
                        break  # cut short by the end of the file
                    pkt.stream = ost
                    out.mux(pkt)
                    n += 1
            except (av.error.FFmpegError, EOFError) as e:  # a torn last fragment
                log.debug("%s: remux stopped after %d packets: %s", describe, n, e)
        finally:
            out.close()
    except BaseException:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise
    finally:
        inp.close()
        if in_fobj is not None:
            in_fobj.close()
    if tmp is not None:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)  # mkstemp made it private
        except OSError:
            pass
        os.replace(tmp, path)
    else:
        storage.write_bytes(key, out_buf.getvalue(), atomic=True)
    return n


class VideoChunkWriter(ChunkWriter):
    """Encodes frames into one video chunk on a background thread.

    ``write()`` copies the frame into a bounded queue and returns; the
    encoder thread converts, encodes and muxes. An exception in the encoder
    thread is raised by the next ``write()``, ``flush()`` or ``close()``.
    ``close()`` drains the encoder, closes the container, remuxes a
    fragmented MP4 into a plain one and writes the chunk's packet index
    (``NNNNNN.pktidx.npz``).

    *container_options* are added to the format's muxer options; a value of
    None removes one (e.g. ``{"movflags": None, "frag_duration": None}``
    writes a plain, unfragmented MP4 from the start).

    Timestamps: ``pts`` = frame count, time base ``1/fps`` (MKV stores
    milliseconds; above 1000 fps its nominal rate is capped at 1000 so every
    frame keeps a distinct timestamp; real frame times live in the store's
    index anyway).
    """

    def __init__(
        self,
        storage: Storage,
        key: str,
        fmt: VideoFormat | str,
        imgshape: Sequence[int],
        dtype=np.uint8,
        fps: float | None = None,
        gop: int | None = None,
        threads: int | None = None,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        container_options: Mapping[str, object] | None = None,
        write_index: bool = True,
        **options,
    ) -> None:
        import av

        self.storage = storage
        self.key = key
        self.filename = storage.describe(key)
        self.fmt = fmt = get_video_format(fmt)
        shape = tuple(int(x) for x in imgshape)
        if len(shape) == 3 and shape[2] == 1:
            shape = shape[:2]
        if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != 3) or min(shape[:2]) <= 0:
            raise ValueError(f"{self.filename}: cannot store frames of shape {shape} as video (need (h, w) or (h, w, 3))")
        self.imgshape = shape
        self.color = len(shape) == 3
        self.dtype = np.dtype(dtype)
        h, w = shape[:2]
        if fmt.even_dims and (h % 2 or w % 2):
            raise ValueError(
                f"{self.filename}: {fmt.name} ({fmt.codec}) needs even frame height and width, got {h}x{w}"
            )
        try:
            self.pix_fmt = fmt.pix_fmt(self.color, self.dtype)
        except UnsupportedFormatError as e:
            raise UnsupportedFormatError(f"{self.filename}: {e}") from None
        self._in_fmt = "bgr24" if self.color else ("gray16le" if self.dtype == np.uint16 else "gray")
        self._full_range = self.pix_fmt.startswith("gray")

        # small terms: x265 fails on a rate like 30000029/1000000 (what frame times often give)
        rate = Fraction(DEFAULT_FPS if fps is None else fps).limit_denominator(1001)
        if rate <= 0:
            raise ValueError(f"{self.filename}: fps must be positive, got {fps}")
        if fmt.container in ("matroska", "webm") and rate > 1000:
            rate = Fraction(1000)
        self.fps = rate
        self.gop = int(fmt.default_gop if gop is None else gop)
        if self.gop < 1:
            raise ValueError(f"{self.filename}: gop must be >= 1, got {gop}")
        self.threads = _default_threads() if threads is None else int(threads)

        copts = dict(fmt.container_options)
        for k, v in (container_options or {}).items():
            if v is None:
                copts.pop(k, None)  # None removes one of the format's own options
            else:
                copts[k] = str(v)
        codec_opts = fmt.codec_options
        codec_opts.update({k: str(v) for k, v in options.items()})

        self._fobj = None
        self._write_index = write_index
        path = storage.local_path(key)
        try:
            if path is not None:
                self._container = av.open(path, "w", format=fmt.container, options=copts)
            else:
                self._fobj = storage.open_write(key)
                self._container = av.open(self._fobj, "w", format=fmt.container, options=copts)
        except av.error.FFmpegError as e:
            raise OSError(f"{self.filename}: cannot create video file: {e}") from e
        try:
            st = self._container.add_stream(fmt.codec, rate=rate)
            st.width, st.height = w, h
            st.pix_fmt = self.pix_fmt
            cc = st.codec_context
            cc.time_base = 1 / rate
            cc.gop_size = self.gop
            cc.thread_count = self.threads
            cc.thread_type = fmt.thread_type
            if self._full_range:
                # gray samples are full range: say so, or decoders (ours and OpenCV's) stretch them
                cc.color_range = _RANGE_JPEG
            cc.options = codec_opts
            self._stream = st
            self._container.start_encoding()
        except Exception as e:
            self._abort()
            if isinstance(e, av.error.FFmpegError):
                raise UnsupportedFormatError(
                    f"{self.filename}: cannot open encoder {fmt.codec} with options {codec_opts}: {e}"
                ) from e
            raise

        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(queue_size)))
        self._error: BaseException | None = None
        self._closed = False
        self.frames_written = 0  # accepted by write()
        self.frames_encoded = 0  # handed to the encoder
        self._muxed_upto = 0  # frames 0 .. _muxed_upto-1 have all their packets in the muxer
        self._muxed_pending: set[int] = set()
        self._upto_after: list[int] = []  # _muxed_upto after each muxed packet
        self._finished = False
        self._fragmented = fmt.container == "mp4" and _fragmenting(copts)
        if fmt.container in ("matroska", "webm"):
            self._progress = MatroskaProgress(storage, key)  # the muxer holds the current cluster
        elif fmt.container == "avi":
            self._progress = None  # packets go straight to the file (flush_packets=1)
        elif self._fragmented:
            self._progress = Mp4FragmentProgress(storage, key)  # the muxer holds the current fragment
        else:
            self._progress = False  # plain MP4: nothing is readable before the index is written at close
        self._thread = threading.Thread(target=self._run, name=f"imgstore-encode-{key}", daemon=True)
        self._thread.start()

    # -- the encoder thread --------------------------------------------------------------
    def _encode(self, arr: np.ndarray) -> None:
        import av

        vf = av.VideoFrame.from_ndarray(arr, format=self._in_fmt)
        if self._full_range:
            vf.color_range = _RANGE_JPEG
        if vf.format.name != self.pix_fmt:
            vf = vf.reformat(format=self.pix_fmt)
        vf.pts = self.frames_encoded
        self.frames_encoded += 1
        self._mux(self._stream.encode(vf))

    def _mux(self, packets) -> None:
        for pkt in packets:
            ts = pkt.pts  # codec time base: the frame's number in write order
            self._container.mux(pkt)
            if ts is None:
                ts = self._muxed_upto
            self._muxed_pending.add(int(ts))
            while self._muxed_upto in self._muxed_pending:
                self._muxed_pending.discard(self._muxed_upto)
                self._muxed_upto += 1
            self._upto_after.append(self._muxed_upto)

    def _run(self) -> None:
        q = self._queue
        while True:
            kind, payload = q.get()
            try:
                if kind == "frame":
                    if self._error is None:
                        try:
                            self._encode(payload)
                        except BaseException as e:  # noqa: BLE001 - handed to the caller
                            self._error = e
                elif kind == "flush":
                    payload.set()
                elif kind == "close":
                    if self._error is None:
                        try:
                            self._mux(self._stream.encode(None))
                        except BaseException as e:  # noqa: BLE001
                            self._error = e
                    try:
                        self._container.close()
                    except BaseException as e:  # noqa: BLE001
                        if self._error is None:
                            self._error = e
                    return
            finally:
                q.task_done()

    # -- the caller's side ---------------------------------------------------------------
    def _raise_if_failed(self) -> None:
        e = self._error
        if e is not None:
            if hasattr(e, "add_note") and not getattr(e, "_imgstore_noted", False):
                e.add_note(f"while encoding {self.filename}")
                e._imgstore_noted = True
            raise e

    def write(self, img: np.ndarray) -> None:
        """Queue one frame (copied) for encoding."""
        self._raise_if_failed()
        if self._closed:
            raise ValueError(f"{self.filename}: chunk writer is closed")
        a = np.asarray(img)
        if a.ndim == 3 and a.shape[2] == 1 and not self.color:
            a = a[:, :, 0]
        if a.shape != self.imgshape:
            raise ValueError(f"{self.filename}: frame shape {a.shape} does not match the chunk's {self.imgshape}")
        if a.dtype != self.dtype:
            raise ValueError(f"{self.filename}: frame dtype {a.dtype} does not match the chunk's {self.dtype}")
        self._queue.put(("frame", np.array(a, order="C", copy=True)))
        self.frames_written += 1

    def durable_count(self) -> int:
        """Frames (in write order) that a reader would get if the writer died now.

        AVI: frames whose packets were muxed (written and flushed at once).
        MKV: frames whose packets are in clusters complete on disk (the
        muxer holds the current cluster, at most ~1 s, in memory); followed
        by reading the file's new bytes. Fragmented MP4 (the default for
        ``avc1/mp4``): frames in complete ``moof`` + ``mdat`` pairs, the same
        way. Plain MP4 (no fragmenting ``movflags``): 0 until ``close()``.
        """
        self._raise_if_failed()
        if self._finished:
            return self.frames_written
        if self._progress is False:
            return 0
        n = len(self._upto_after)
        if self._progress is not None:
            n = min(n, self._progress.update())
        return self._upto_after[n - 1] if n else 0

    def flush(self) -> None:
        """Wait until every queued frame has been handed to the encoder and muxed.

        Frames the encoder still holds for look-ahead only reach the file at
        ``close()``; with the default H.264/HEVC settings (zero latency, no
        B-frames) that is none. AVI packets are flushed to the file as they
        are muxed; MKV clusters and MP4 fragments when they end.
        """
        if self._closed:
            self._raise_if_failed()
            return
        self._raise_if_failed()
        done = threading.Event()
        self._queue.put(("flush", done))
        while not done.wait(0.5):
            if not self._thread.is_alive():
                break
        self._raise_if_failed()

    def close(self) -> None:
        """Drain the encoder, finish the file and write its packet index."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(("close", None))
        self._thread.join()
        if self._fobj is not None:
            try:
                self._fobj.close()
            except Exception as e:  # noqa: BLE001
                if self._error is None:
                    self._error = e
        self._raise_if_failed()
        self._finished = True
        if not self.frames_written:
            return  # no frames: nothing to index (an MKV or MP4 without frames does not even open)
        if self._fragmented:
            # a plain MP4 (moov at the end) is what every reader, OpenCV's included, expects
            remux_video_chunk(self.storage, self.key, container="mp4")
        if self._write_index:
            build_packet_index(self.storage, self.key, write=True)

    def _abort(self) -> None:
        try:
            self._container.close()
        except Exception:  # noqa: BLE001
            pass
        if self._fobj is not None:
            try:
                self._fobj.close()
            except Exception:  # noqa: BLE001
                pass

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._error is not None:
            # don't mask the caller's exception with the encoder's
            try:
                self.close()
            except BaseException:  # noqa: BLE001
                pass
            return
        self.close()

    def __repr__(self) -> str:
        return f"VideoChunkWriter({self.filename!r}, {self.fmt.name}, {self.imgshape}, {self.dtype})"


# --------------------------------------------------------------------------------------------
# reading

_GRAY8 = {"gray", "gray8"}
_GRAY16 = {"gray16le", "gray16be", "gray16"}


def bgr_to_gray(bgr: np.ndarray) -> np.ndarray:
    """OpenCV's ``cvtColor(BGR2GRAY)`` for uint8, bit-exact: (R*4899 + G*9617 + B*1868 + 8192) >> 14."""
    acc = bgr[..., 2].astype(np.uint32)
    acc *= 4899
    t = bgr[..., 1].astype(np.uint32)
    t *= 9617
    acc += t
    t = bgr[..., 0].astype(np.uint32)
    t *= 1868
    acc += t
    acc += 8192
    acc >>= 14
    return acc.astype(np.uint8)


def _plane(frame, i: int) -> np.ndarray:
    p = frame.planes[i]
    a = np.frombuffer(p, np.uint8)
    return a.reshape(-1, p.line_size)[: p.height, : p.width]


def _full_range_neutral(frame) -> bool:
    """8-bit full-range YUV whose chroma is exactly neutral: then gray == Y, bit for bit."""
    name = frame.format.name
    if not (name.startswith("yuvj") or (name.startswith("yuv") and frame.color_range == _RANGE_JPEG)):
        return False
    if len(frame.planes) < 3 or not name.endswith("p"):
        return False  # only 8-bit planar formats
    for i in (1, 2):
        c = _plane(frame, i)
        if c.min() != 128 or c.max() != 128:
            return False
    return True


class VideoChunkReader(ChunkReader):
    """Exact random access to the frames of one video chunk.

    The frame at position *p* is the *p*-th frame in presentation (pts)
    order, per the chunk's packet index. A read jumps to the keyframe at or
    before the target (container seek on that keyframe's pts), decodes
    forward and picks the frame whose pts is the target's; reading position
    ``last + 1`` just keeps decoding. Frames decoded on the way are kept in
    an LRU cache of *cache_frames* frames.

    Output: colour readers return ``(h, w, 3)`` BGR uint8; gray readers
    ``(h, w)`` uint8 (or uint16 for 16-bit files): gray and full-range
    neutral-chroma files give the stored samples, any other YUV/RGB file is
    converted to BGR and then to gray with OpenCV's fixed-point weights, so
    stores written by the original (OpenCV) imgstore read back exactly as
    it read them.

    The packet index comes from *index*, else the chunk's ``.pktidx.npz``,
    else is built by demuxing (and saved beside the chunk if *write_index*
    and the storage is writable).

    Instrumentation: ``frames_decoded`` (frames out of the decoder),
    ``seeks`` (container seeks, restarts included), ``cache_hits``.
    Not thread-safe by itself; calls are serialized with a lock.
    """

    def __init__(
        self,
        storage: Storage,
        key: str,
        *,
        color: bool,
        imgshape: Sequence[int] | None = None,
        dtype=np.uint8,
        cache_frames: int = 64,
        threads: int = 0,
        index: PacketIndex | None = None,
        write_index: bool = True,
    ) -> None:
        self.storage = storage
        self.key = key
        self.filename = storage.describe(key)
        self.color = bool(color)
        self.imgshape = tuple(int(x) for x in imgshape) if imgshape is not None else None
        self.dtype = np.dtype(dtype)
        self.cache_frames = max(0, int(cache_frames))
        self.threads = int(threads)
        self.frames_decoded = 0
        self.seeks = 0
        self.cache_hits = 0
        self._lock = threading.RLock()
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._container = None
        self._fobj = None

        self.index = index if index is not None else load_packet_index(storage, key, write=write_index)
        idx = self.index
        n = len(idx)
        self._n = n
        self._linear = not idx.unique_pts
        if self._linear:
            log.warning("%s: duplicate timestamps, random access decodes from the start", self.filename)
        # presentation position <-> decode index <-> pts
        self._dec_of_pos = idx.order
        self._pos_of_pts = {int(t): p for p, t in enumerate(idx.pts_sorted)}
        self._dec_of_pts = {int(t): d for d, t in enumerate(idx.pts)}
        self._start_dec = self._keyframe_starts()
        self._open()

    # -- setup ---------------------------------------------------------------------------
    def _keyframe_starts(self) -> np.ndarray:
        """For each presentation position, the decode index of the keyframe to start decoding from."""
        idx = self.index
        n = len(idx)
        if n == 0 or self._linear:
            return np.zeros(n, dtype=np.int64)
        last_key = np.maximum.accumulate(np.where(idx.is_key, np.arange(n), -1))
        dec = self._dec_of_pos
        start = last_key[dec]
        # a keyframe shown *after* the target (open-GOP leading frame): start from the one before
        for p in np.flatnonzero(idx.pts[np.maximum(start, 0)] > idx.pts[dec]):
            k, target = int(start[p]), idx.pts[dec[p]]
            while k > 0 and idx.pts[k] > target:
                k = int(last_key[k - 1])
            start[p] = k
        return np.maximum(start, 0).astype(np.int64)

    def _open(self) -> None:
        self._close_container()
        self._container, self._fobj = open_container(self.storage, self.key)
        vs = self._container.streams.video
        if not vs:
            self._close_container()
            raise CorruptChunkError(f"{self.filename}: no video stream")
        self._stream = vs[0]
        cc = self._stream.codec_context
        cc.thread_type = "SLICE"
        cc.thread_count = self.threads
        # a fresh container sits at the start: decoding can begin without a seek
        self._demux = self._container.demux(self._stream)  # packet iterator; None = seek first
        self._next_dec = 0  # decode index of the next packet we expect to feed
        self._last_out = -1  # presentation position of the last frame out of the decoder
        self._syncing = True  # skipping packets until the keyframe we start from
        self._sync_to: int | None = None  # decode index of that keyframe, None = the first keyframe
        self._floor_pts = None
        self._drained = False
        self._linear_count = 0
        self._last_error: Exception | None = None

    def _close_container(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001
                pass
            self._container = None
        if self._fobj is not None:
            try:
                self._fobj.close()
            except Exception:  # noqa: BLE001
                pass
            self._fobj = None

    # -- public --------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    @property
    def frame_count(self) -> int:
        return self._n

    @property
    def pts(self) -> np.ndarray:
        """Presentation timestamps (stream time base) of the frames, by position."""
        return self.index.pts_sorted

    @property
    def time_base(self) -> Fraction:
        return self.index.time_base

    def read(self, position: int) -> np.ndarray:
        with self._lock:
            return self._convert(self._get_frame(self._check_pos(position)))

    def read_many(self, positions: Sequence[int]) -> list[np.ndarray]:
        """Frames at *positions* (any order, repeats allowed); each GOP is decoded at most once."""
        with self._lock:
            pos = [self._check_pos(p) for p in positions]
            out: dict[int, np.ndarray] = {}
            for p in sorted(set(pos)):
                out[p] = self._convert(self._get_frame(p))
            res = []
            seen = set()
            for p in pos:
                res.append(out[p] if p not in seen else out[p].copy())
                seen.add(p)
            return res

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            self._demux = None
            self._close_container()

    def __repr__(self) -> str:
        return f"VideoChunkReader({self.filename!r}, frames={self._n})"

    # -- decoding ------------------------------------------------------------------------
    def _check_pos(self, position) -> int:
        p = int(position)
        if not 0 <= p < self._n:
            raise IndexError(f"{self.filename}: frame position {position} out of range (chunk has {self._n} frames)")
        return p

    def _get_frame(self, p: int):
        fr = self._cache.get(p)
        if fr is not None:
            self._cache.move_to_end(p)
            self.cache_hits += 1
            return fr
        if self._container is None:
            raise ValueError(f"{self.filename}: reader is closed")
        if not self._can_continue_to(p):
            self._seek_for(p)
        return self._decode_until(p)

    def _can_continue_to(self, p: int) -> bool:
        if self._demux is None or self._drained or p <= self._last_out:
            return False
        if self._linear:
            return True
        return int(self._start_dec[p]) <= self._next_dec

    def _seek_for(self, p: int) -> None:
        import av

        if self._linear:
            self._restart_from_top()
            return
        self.seeks += 1
        start = int(self._start_dec[p])
        try:
            self._container.seek(int(self.index.pts[start]), backward=True, any_frame=False, stream=self._stream)
        except (av.error.FFmpegError, OSError) as e:
            log.debug("%s: seek failed (%s), decoding from the start", self.filename, e)
            self.seeks -= 1
            self._restart_from_top()
            return
        self._stream.codec_context.flush_buffers()
        self._demux = self._container.demux(self._stream)
        self._syncing, self._sync_to = True, start
        self._last_out = -1
        self._floor_pts = None
        self._drained = False

    def _restart_from_top(self) -> None:
        """Reopen the file and decode from its first keyframe."""
        self.seeks += 1
        self._open()

    def _next_packet(self):
        import av

        try:
            return next(self._demux)
        except StopIteration:
            return None
        except (av.error.FFmpegError, EOFError) as e:  # truncated tail
            self._last_error = e
            return None

    def _decode_until(self, p: int):
        import av

        cc = self._stream.codec_context
        found = None
        while found is None:
            pkt = self._next_packet()
            if pkt is None or not pkt.size:
                if self._drained:
                    break
                self._drained = True
                frames = self._safe_decode(cc, None)
            else:
                if self._linear:
                    if self._syncing:
                        self._syncing = False
                else:
                    ts = packet_ts(pkt)
                    d = self._dec_of_pts.get(ts) if ts is not None else None
                    if d is None:
                        continue  # not an indexed frame (e.g. cut short at the end of the file)
                    if self._syncing:
                        # skip (demux only, no decoding) to the keyframe we start from; the
                        # container may land a keyframe or more early
                        if self._sync_to is None:
                            if not self.index.is_key[d]:
                                continue
                        elif d < self._sync_to:
                            continue
                        elif d > self._sync_to:
                            # the container jumped past the keyframe we asked for: go from the top
                            log.debug("%s: seek overshot (%d > %d); restarting", self.filename, d, self._sync_to)
                            self._restart_from_top()
                            continue
                        self._syncing = False
                        self._floor_pts = int(self.index.pts[d])
                    self._next_dec = d + 1
                frames = self._safe_decode(cc, pkt)
            for fr in frames:
                q = self._place(fr)
                if q is None:
                    continue
                self.frames_decoded += 1
                if q > self._last_out:
                    self._last_out = q
                if q == p:
                    found = fr
                    self._remember(q, fr, protect=True)
                else:
                    self._remember(q, fr)
            if found is None and self._last_out > p:
                break
        if found is None:
            why = f": {self._last_error}" if self._last_error else ""
            raise CorruptChunkError(
                f"{self.filename}: frame at position {p} (pts {int(self.index.pts_sorted[p])}) "
                f"could not be decoded{why}"
            )
        return found

    def _safe_decode(self, cc, pkt):
        import av

        try:
            return cc.decode(pkt)
        except (av.error.FFmpegError, EOFError) as e:
            if isinstance(e, EOFError) or getattr(e, "errno", None) == getattr(av.error, "EOF", object()):
                return []
            self._last_error = e
            log.debug("%s: decoder error: %s", self.filename, e)
            return []

    def _place(self, fr) -> int | None:
        """Presentation position of a decoded frame, or None to drop it."""
        if self._linear:
            q = self._linear_count
            self._linear_count += 1
            return q if q < self._n else None
        ts = fr.pts
        if ts is None:
            return self._last_out + 1 if self._last_out + 1 < self._n else None
        if self._floor_pts is not None and ts < self._floor_pts:
            return None  # leading frame of the keyframe we started at: references we never decoded
        return self._pos_of_pts.get(int(ts))

    def _remember(self, q: int, fr, protect: bool = False) -> None:
        if self.cache_frames <= 0 and not protect:
            return
        c = self._cache
        c[q] = fr
        c.move_to_end(q)
        limit = max(self.cache_frames, 1)
        while len(c) > limit:
            c.popitem(last=False)

    # -- pixels --------------------------------------------------------------------------
    def _convert(self, fr) -> np.ndarray:
        name = fr.format.name
        if self.color:
            img = fr.to_ndarray(format="bgr24")
        elif self.dtype == np.uint16:
            if name in _GRAY16:
                img = fr.to_ndarray(format="gray16le")
            else:
                img = self._gray8(fr, name).astype(np.uint16)
        else:
            img = self._gray8(fr, name)
        if self.imgshape is not None:
            h, w = self.imgshape[:2]
            if img.shape[0] < h or img.shape[1] < w:
                raise CorruptChunkError(
                    f"{self.filename}: decoded frame is {img.shape[1]}x{img.shape[0]}, store says {w}x{h}"
                )
            if img.shape[0] > h or img.shape[1] > w:
                img = np.ascontiguousarray(img[:h, :w])
        return img

    def _gray8(self, fr, name: str) -> np.ndarray:
        if name in _GRAY8:
            return fr.to_ndarray(format="gray")
        if _full_range_neutral(fr):
            return _plane(fr, 0).copy()
        return bgr_to_gray(fr.to_ndarray(format="bgr24"))


__all__ = [
    "VideoFormat",
    "VIDEO_FORMATS",
    "FORMAT_ALIASES",
    "DEFAULT_GOP",
    "DEFAULT_FPS",
    "available_video_formats",
    "get_video_format",
    "resolve_video_format",
    "VideoChunkWriter",
    "VideoChunkReader",
    "bgr_to_gray",
    "remux_video_chunk",
    "mp4_is_fragmented",
    "PacketIndex",
    "build_packet_index",
    "load_packet_index",
    "packet_index_key",
]
