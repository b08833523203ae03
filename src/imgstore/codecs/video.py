"""Video chunk codecs: one video file per chunk, written and read with PyAV.

Formats (``VIDEO_FORMATS``; :func:`available_video_formats` probes, once per
process, which of them this FFmpeg build can really write):

============  =========  =========  =====================  ==============================
name          container  encoder    gray / colour pix_fmt  settings
============  =========  =========  =====================  ==============================
mjpeg/avi     AVI        mjpeg      yuvj420p / yuvj420p    qscale 3, every frame a keyframe,
                                                           slice threads (restart markers)
avc1/mp4      MP4        libx264    gray / yuv420p         veryfast, tune=zerolatency,fastdecode,
                                                           crf 23; 0.5 s fragments until close()
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

Measured (the benchmark's content: textured background, moving blobs,
sensor noise; a 600-frame chunk; 2 cores shared with other jobs, so trust
ratios; writes through VideoChunkWriter, reads through VideoChunkReader,
random = uniform over the chunk with the cache off; default GOP;
1280x1024 gray / 640x480 BGR):

=========  =================  ===========  ===============  =====================
format     write fps          kB/frame     random reads/s   seq. fps
=========  =================  ===========  ===============  =====================
h264/mkv   111-176 / 417-550  26.7 / 3.3   62-66 / 225-290  1370-1380 / 3000-3700
hevc/mkv   78-123 / 330       4.7 / 1.0    31-32 / 95       760-790 / 1760
ffv1/mkv   100-110 / 133      881 / 627    89-94 / 125      96-97 / 132
mjpeg/avi  138-146 / 493      340 / 64     358-375 / 1160   407 / 1670-1700
=========  =================  ===========  ===============  =====================

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
540 -> 565 fps for a frame-threaded encode of the same size. ``fastdecode``
(CAVLC instead of CABAC, no deblocking filter, no weighted prediction) makes
decoding 2.5-3x faster (1280x1024 gray, 2 threads: I-frame 15.6 -> 4.9 ms,
P-frame 1.4 -> 0.46 ms; 640x480 BGR: 3.7 -> 1.5 ms and 0.23 -> 0.12 ms) for
15-20% more bytes at the same crf, and the same PSNR against the source
(33.6 vs 33.6 dB gray, 30.0 vs 30.0 BGR on this content; 44.4 vs 44.5 and
40.6 vs 40.5 dB on smooth low-noise frames, no excess error at 8x8 block
edges). Without it the random-read targets (10x the original's avc1/mp4)
were out of reach within 2x its bytes per frame.

MJPEG ``qscale 3`` is pinned with ``qmin = qmax = 3``: PyAV hands the encoder
no per-frame quality, so ``global_quality`` alone left it at ``qmin`` 2 (1.4-
1.6x the bytes and 1.3x the decoding time). At 3 the quantization is what the
original imgstore (OpenCV) writes: 295 kB/frame gray, 54 kB BGR in its files.
MJPEG is encoded on slice threads, which end every MCU row with a restart
marker; a random read cuts the frame there into one band per decoding thread
(:mod:`.jpeg_restart`) and decodes the bands at once, bit for bit the whole
frame's pixels: 208-223 -> 358-375 random reads/s gray, 1042-1066 -> 1160-1207
BGR (2 threads; 1.5-1.7x at 960x720 and larger, measured on noisier content).
The price: FFmpeg's slice-threaded MJPEG uses the standard Huffman tables
instead of tables made for each frame, 15-18% more bytes for the same
quantized pixels (297 -> 340 kB gray, 54 -> 64 kB BGR). ``threads=1`` writes
the smaller files, without markers, at 82 instead of 138-146 fps gray.

GOP (keyframe interval), h264/mkv, same content and 600-frame chunk. A random
read costs one keyframe decode (I-frames are 15-20x the size of P-frames on
noisy content) plus on average GOP/2 P-frames; the cache of decoded frames
(64 frames when this table was measured; now a byte budget, see
:mod:`.frame_cache`) serves clustered access (reads/s, 1280x1024 gray /
640x480 BGR):

====  ===========  ==========  ==================  ===========
GOP   kB/frame     random      clustered +-50      seq. fps
====  ===========  ==========  ==================  ===========
10    53.5 / 8.3   155 / 630   181 / 607           1020 / 2880
25    33.1 / 4.3   90 / 352    134 / 449           1190 / 3180
40    26.7 / 3.3   62 / 225    113 / 409           1370 / 3000
50    24.4 / 2.9   57 / 190    98 / 362            1510 / 3030
100   19.2 / 2.2   28 / 107    86 / 307            1490 / 3420
250   16.1 / 1.8   18 / 80     106 / 422           1650 / 3330
====  ===========  ==========  ==================  ===========

(Without ``fastdecode``, GOP 40: 23.1 / 2.9 kB, 25 / 146 random reads/s, 564 /
2388 fps sequential.) :data:`DEFAULT_GOP` = 40 (1.6 s at 25 fps), measured
against the original imgstore's avc1/mp4 (OpenCV, 17.6 / 2.4 kB/frame, 4.7 /
28 random reads/s in the same benchmark run): with chunks of 100 frames (the
benchmark's) GOP 40 gives 1.6x its bytes and 15x / 11x its random reads/s;
GOP 25 gives 1.9x its bytes (BGR: within 3% of the 2x limit) for 1.3x more
random reads, GOP 50 1.35x the bytes but only ~10x the random reads. Intra-only
codecs (mjpeg, ffv1) default to 1.

Timestamps: ``pts`` = frame count, codec time base ``1/fps`` (``fps`` from
the caller, 25 if None), so container timestamps always increase, whatever the
frame times are. The nominal rate is clamped to 1/1000..1000 fps (see
:func:`container_rate`: Matroska stores milliseconds, FFmpeg's AVI muxer takes
no finer clock), and a muxer whose clock cannot keep frames apart gets 25 fps;
real frame times live in the store's frame index.

Reading never trusts the container's frame count or the decoder's frame
counter: the chunk's packet index (:mod:`.video_index`) gives every frame's
pts, and the frame at position *p* is the *p*-th in pts order (B-frames and
variable frame rate included). Frames are decoded packet-direct
(:mod:`.video_packets`): the packet index knows where each packet's bytes are,
so a random read is one read of the bytes from the keyframe at or before the
target to the end of the packets it needs (one HTTP range request for a
remote store), fed to a bare decoder; no container is opened. Sequential
reading decodes ahead on another thread (inter-frame codecs) or on a pool of
threads with a decoder each (intra-only codecs). Chunks whose packets cannot
be found verbatim in the file, or whose decoder does not return a frame, are
read through the demuxer (container seek, decode forward, pick by pts).
Gray output: gray files give their samples; full-range YUV with exactly
neutral chroma gives Y (monochrome H.264, known from its SPS, without looking
at the chroma: FFmpeg fills it with 128; bit-identical to the next rule);
anything else is converted to BGR and then to gray with OpenCV's fixed-point
weights. On the reference stores written by the original imgstore (OpenCV),
PyAV's ``bgr24`` equals OpenCV's BGR exactly and this gray path equals
OpenCV's gray exactly, where ``to_ndarray('gray')`` of the yuv420p frames was
up to 3 levels off.
"""

from __future__ import annotations

import collections
import functools
import io
import itertools
import logging
import os
import queue
import threading
import weakref
from dataclasses import dataclass
from fractions import Fraction
from typing import Mapping, Sequence

import numpy as np

from ..color import bgr_to_gray
from ..errors import CorruptChunkError, UnsupportedFormatError
from ..storage.base import Storage
from .base import ChunkReader, ChunkWriter
from .frame_cache import FrameCache, shared_frame_cache
from .jpeg_restart import restart_bands
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
from .video_packets import (
    INTRA_CODECS,
    PacketSource,
    direct_decodable,
    give_back_decoder,
    h264_slice_count,
    h264_chroma_format,
    make_decoder,
    orphan_decoder,
    take_decoder,
)

log = logging.getLogger(__name__)

#: frames between keyframes for inter-frame codecs (H.264, HEVC); see the module docstring
DEFAULT_GOP = 40
#: frame rate written into the file when the caller gives none
DEFAULT_FPS = 25
#: frames the writer may hold queued for its encoder thread before write() blocks
DEFAULT_QUEUE_SIZE = 16

#: highest nominal frame rate a chunk's container is given: Matroska counts milliseconds and FFmpeg's
#: AVI muxer refuses finer clocks (at 9686 fps its time base became 1/600 s and the second frame's
#: timestamp collided with the first: "Invalid argument"); the store's frame times are the real ones
MAX_CONTAINER_FPS = 1000
#: lowest nominal frame rate (one frame every 1000 s)
MIN_CONTAINER_FPS = Fraction(1, 1000)
#: x265 takes 16x16 coding tree units for frames smaller than this (height or width): with its default
#: 32x32 units at ultrafast, 1-4 of 600 32x32 barcode frames (sizes 32 and 64) came back with a bar
#: wrong (errors of 255 levels, the frame read as another number); with 16x16 units none in 9600
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


#: x264: veryfast, plus diamond motion search and no sub-8x8 partitions (``me_method=dia``,
#: ``partitions=none``): 1280x1024 gray 173 -> 220 fps, 640x480 BGR 457 -> 629 fps (2 threads),
#: for +1% / +2.6% bytes at the same PSNR (31.39 / 29.97 vs 29.99 dB) and the same decoding speed
_X264 = _opts(preset="veryfast", tune="zerolatency,fastdecode", crf=23, me_method="dia", partitions="none")
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
            # qscale 3: PyAV hands the encoder no per-frame quality, so global_quality alone (FF_QP2LAMBDA
            # = 118) left it at qmin (2: 1.4-1.6x the bytes, 1.3x the decoding time); qmin = qmax pins it
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


# --------------------------------------------------------------------------------------------
# writing


def container_rate(fps, where: str = "") -> Fraction:
    """The nominal frame rate written into a chunk's container for *fps* (None: :data:`DEFAULT_FPS`).

    A fraction with small terms (x265 fails on a rate like 30000029/1000000, what frame times often
    give), clamped to ``[MIN_CONTAINER_FPS, MAX_CONTAINER_FPS]``, so that the muxer keeps every
    frame's timestamp apart; the store's frame times are the real ones.
    """
    if fps is None:
        return Fraction(DEFAULT_FPS)
    try:
        f = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: fps must be a number, got {fps!r}") from None
    if not np.isfinite(f) or f <= 0:
        raise ValueError(f"{where}: fps must be positive and finite, got {fps!r}")
    rate = Fraction(f).limit_denominator(1001)
    return min(max(rate, MIN_CONTAINER_FPS), Fraction(MAX_CONTAINER_FPS))


def nominal_fps(frame_times) -> float:
    """Frames per second from the median of the positive intervals between *frame_times*
    (:data:`DEFAULT_FPS` if there are none)."""
    dt = np.diff(np.asarray(frame_times, dtype=np.float64))
    dt = dt[np.isfinite(dt) & (dt > 0)]
    return 1.0 / float(np.median(dt)) if len(dt) else float(DEFAULT_FPS)


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

    Timestamps: ``pts`` = frame count, time base ``1/fps`` with *fps* made
    a nominal rate every container can keep apart (:func:`container_rate`);
    real frame times live in the store's index.
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

        self.fps = container_rate(fps, self.filename)
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
        if fmt.family == "hevc" and min(h, w) < X265_SMALL_CTU_BELOW:
            codec_opts["x265-params"] = codec_opts.get("x265-params", "") + ":ctu=16"
        codec_opts.update({k: str(v) for k, v in options.items()})

        self._fobj = None
        self._write_index = write_index
        self._open_output(copts, codec_opts)
        if Fraction(self._stream.time_base) > 1 / self.fps and self.fps != DEFAULT_FPS:
            # the muxer's clock is coarser than one frame: timestamps would collide; the nominal rate
            # is only what players show (the store's frame times are the truth)
            log.warning("%s: the %s muxer cannot keep timestamps of %s fps apart; writing at %s fps",
                        self.filename, fmt.container, self.fps, DEFAULT_FPS)
            self._abort()
            self.fps = Fraction(DEFAULT_FPS)
            self._open_output(copts, codec_opts)
        if Fraction(self._stream.time_base) > 1 / self.fps:
            self._abort()
            raise UnsupportedFormatError(f"{self.filename}: the {fmt.container} muxer's time base "
                                         f"{self._stream.time_base} cannot hold {self.fps} fps")

        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(queue_size)))
        self._sws = None  # the caller's pixel format converter (see _to_frame)
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

    def _open_output(self, copts: dict, codec_opts: dict) -> None:
        """Create the chunk file and its encoder at ``self.fps`` (the header is written)."""
        import av

        fmt, rate = self.fmt, self.fps
        h, w = self.imgshape[:2]
        path = self.storage.local_path(self.key)
        try:
            if path is not None:
                self._container = av.open(path, "w", format=fmt.container, options=copts)
            else:
                self._fobj = self.storage.open_write(self.key)
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

    # -- the encoder thread --------------------------------------------------------------
    def _encode(self, vf) -> None:
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
            raise e.with_traceback(None)  # raised again by every later call: its traceback must not grow

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
        self._queue.put(("frame", self._to_frame(a)))
        self.frames_written += 1

    def _to_frame(self, a: np.ndarray):
        """The encoder's input frame for *a*, built on the caller's thread (never a view of *a*): the
        pixel format conversion (BGR -> YUV 4:2:0) then overlaps with the encoding of earlier frames,
        and 640x480 BGR stores write at 710-750 instead of 540 fps on 2 cores; converting from *a* in
        place instead of from a copy of it: 764-849 -> 884-938 fps (7% less CPU per frame)."""
        import av

        a = np.ascontiguousarray(a)
        if self._in_fmt == self.pix_fmt:
            vf = av.VideoFrame.from_ndarray(a, format=self._in_fmt)  # the copy the encoder thread takes
        else:
            # converted into a new frame right here: the caller's array is only read, not copied first
            vf = av.VideoFrame.from_numpy_buffer(a, format=self._in_fmt)
        if self._full_range:
            vf.color_range = _RANGE_JPEG
        if vf.format.name != self.pix_fmt:
            if self._sws is None:
                from av.video.reformatter import VideoReformatter

                self._sws = VideoReformatter()
            vf = self._sws.reformat(vf, format=self.pix_fmt, threads=1)
        return vf

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
_NEUTRAL8 = np.uint64(0x8080808080808080)


def _plane(frame, i: int) -> np.ndarray:
    p = frame.planes[i]
    a = np.frombuffer(p, np.uint8)
    return a.reshape(-1, p.line_size)[: p.height, : p.width]


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
    """``fr.to_ndarray(format="bgr24")``, the same pixels, with a long-lived single-threaded swscale
    context per thread (``to_ndarray`` sets one up for every frame, which cost more than decoding a
    640x480 H.264 P-frame; our own threads already use the cores) and without a second copy where the
    converted frame's rows are not padded."""
    out = _sws().reformat(fr, format="bgr24", threads=1)
    if out is fr:
        return fr.to_ndarray(format="bgr24")  # already BGR: a copy, never a view of a cached frame
    p = out.planes[0]
    h, w = out.height, out.width
    if p.line_size == 3 * w:
        return np.frombuffer(p, np.uint8, 3 * w * h).reshape(h, w, 3)  # owns (keeps alive) the new frame
    return out.to_ndarray()


#: 8-bit pictures the MJPEG decoder returns that :meth:`VideoChunkReader._stack` puts together
_BAND_FORMATS = {"gray", "yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "yuvj411p",
                 "yuv420p", "yuv422p", "yuv444p", "yuv440p", "yuv411p"}


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


#: frames decoded ahead of a sequential reader (inter codecs: by one thread; intra codecs: per worker x 2)
READ_AHEAD = 8
#: frames a reader keeps while reading on (of its *cache_frames*): caching every frame passing by
#: held 64 decoded frames (126 MB at 1280x1024) and made the decoders allocate (and the kernel
#: fault in) a new buffer for nearly every frame, +40% time for the first 100 frames of 640x480
SEQUENTIAL_CACHE = 8
#: mean frames per keyframe from which one-slice H.264 is walked on frame threads (see _walk_threads)
FRAME_THREADS_MIN_GOP = 50
#: most bytes of packets a sequential reader fetches at once
_SEQ_BATCH_BYTES = 4 << 20
#: seconds a read-ahead thread waits for its reader to take a frame before it gives up
_READ_AHEAD_IDLE = 5.0


@functools.cache
def _decode_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


_decode_pool = None
_band_pool = None
_decode_pool_lock = threading.Lock()
_decode_local = threading.local()


def _decode_executor():
    """Threads shared by every reader that decodes intra-only frames in parallel (PyAV releases the
    GIL while decoding and converting); each keeps its own decoders."""
    import concurrent.futures

    global _decode_pool
    with _decode_pool_lock:
        if _decode_pool is None:
            _decode_pool = concurrent.futures.ThreadPoolExecutor(_decode_workers(),
                                                                 thread_name_prefix="imgstore-decode")
        return _decode_pool


def _band_executor():
    """Threads that decode the bands of a frame besides the caller's (one fewer than the bands),
    apart from :func:`_decode_executor`'s. 640x480 BGR random reads right after a sequential read
    (which keeps the shared pool's threads busy), 8 fresh processes each: 0.64-1.10 ms (median 0.88)
    on the shared pool, 0.62-0.75 ms (median 0.65) on a thread of their own; later on 0.63 ms both."""
    import concurrent.futures

    global _band_pool
    with _decode_pool_lock:
        if _band_pool is None:
            _band_pool = concurrent.futures.ThreadPoolExecutor(max(1, _decode_workers() - 1),
                                                               thread_name_prefix="imgstore-band")
        return _band_pool


#: every walker and reader alive (or garbage not yet collected): a forked child must never free their
#: multi-threaded decoders and demuxers, whose threads stayed in the parent (FFmpeg joins them: a hang)
_live_walkers: "weakref.WeakSet[_Walker]" = weakref.WeakSet()
_live_readers: "weakref.WeakSet[VideoChunkReader]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """Threads do not survive fork(): the pools and their decoders are the parent's."""
    global _decode_pool, _band_pool, _decode_pool_lock, _idle_sws_lock
    _decode_pool = None
    _band_pool = None
    _decode_pool_lock = threading.Lock()
    _idle_sws_lock = threading.Lock()
    for w in list(_live_walkers):
        w.forget_decoder()
    for r in list(_live_readers):
        r._forget_container()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _thread_decoder(reader, band: int | None = None):
    """A single-threaded decoder for chunks like *reader*'s, owned by the calling worker thread
    (*band*: for JPEG bands of that height, see :mod:`.jpeg_restart`)."""
    index = reader.index
    cache = getattr(_decode_local, "decoders", None)
    if cache is None:
        cache = _decode_local.decoders = collections.OrderedDict()
    cfg = (index.codec, index.extradata, index.width, index.height, index.pix_fmt, index.codec_tag,
           tuple(index.color), band)
    cc = cache.get(cfg)
    if cc is None:
        # a band decoder is not told the frame size: FFmpeg's MJPEG decoder takes a first picture much
        # shorter than that size for one field of an interlaced frame
        cc = _new_decoder(make_decoder, reader, threads=1, dims=band is None)
        cache[cfg] = cc
        while len(cache) > 8:
            cache.popitem(last=False)
    else:
        cache.move_to_end(cfg)
    return cc


def _new_decoder(make, reader, **kw):
    import av

    try:
        return make(reader.index, **kw)
    except (av.error.FFmpegError, ValueError, TypeError) as e:
        raise CorruptChunkError(f"{reader.filename}: no decoder for its packets ({reader.index.codec}): {e}") from e


class _Walker:
    """One bare decoder walking forward through a chunk's packets, from a keyframe on."""

    def __init__(self, reader: "VideoChunkReader") -> None:
        self.r = reader
        self.cc = None
        self.pid = os.getpid()
        self.k0 = 0  # decode index of the keyframe decoding started from
        self.next_dec = 0  # decode index of the next packet to feed
        self.last_out = -1  # highest presentation position out of the decoder since the restart
        self.floor = None  # frames shown before the keyframe started from are dropped
        self.fresh = True  # nothing fed since the restart / creation: must restart first
        self.drained = False
        _live_walkers.add(self)

    def _check_fork(self) -> None:
        if self.pid != os.getpid():  # a forked child: the decoder's threads stayed in the parent
            self.forget_decoder()

    def forget_decoder(self) -> None:
        """Let go of the decoder without freeing it (in a forked child); the next use makes a new one."""
        orphan_decoder(self.cc)
        self.cc = None
        self.fresh = True
        self.pid = os.getpid()

    def decoder(self):
        self._check_fork()
        if self.cc is None:
            self.cc = _new_decoder(take_decoder, self.r, **self.r._walk_threads())
        return self.cc

    def release(self) -> None:
        """Give the decoder back for another reader (its state is gone: restart before decoding)."""
        self._check_fork()
        if self.cc is not None:
            give_back_decoder(self.r.index, self.cc, **self.r._walk_threads())
            self.cc = None
        self.fresh = True

    def restart(self, k: int) -> None:
        r = self.r
        self._check_fork()
        if self.cc is None:
            self.decoder()
        elif not self.fresh or self.drained:
            self.cc.flush_buffers()
        self.k0 = self.next_dec = int(k)
        self.last_out = -1
        self.floor = int(r.index.pts[k])
        self.fresh = False
        self.drained = False

    def can_continue(self, p: int) -> bool:
        self._check_fork()
        if self.cc is None or self.fresh or self.drained or p <= self.last_out:
            return False
        s = int(self.r._start_dec[p])
        return self.k0 <= s <= self.next_dec

    def feed(self, i: int, data, off: int) -> list:
        """Feed packet *i* (its bytes at ``data[off:]``); the ``(position, frame)`` pairs that came out."""
        import av

        r = self.r
        n = int(r.index.size[i])
        pkt = av.Packet(n)  # FFmpeg's own buffer, with the zeroed padding decoders may read into
        np.frombuffer(pkt, np.uint8)[:] = np.frombuffer(data, np.uint8, n, off)
        pkt.pts = int(r.index.pts[i])
        if r.index.is_key[i]:
            pkt.is_keyframe = True
        self.next_dec = i + 1
        return self._placed(r._safe_decode(self.cc, pkt))

    def drain(self) -> list:
        self.drained = True
        return self._placed(self.r._safe_decode(self.cc, None))

    def _placed(self, frames) -> list:
        out = []
        r = self.r
        for fr in frames:
            ts = fr.pts
            if ts is None or (self.floor is not None and ts < self.floor):
                continue  # no time stamp: never guess; leading frames of an open GOP: references missing
            q = r._pos_of_pts.get(int(ts))
            if q is None:
                continue
            if q > self.last_out:
                self.last_out = q
            out.append((q, fr))
        r._count_decoded(len(out))
        return out


class _ReadAhead:
    """A thread that takes over a reader's walker and decodes the frames after the current one while
    the caller converts and uses the earlier ones (sequential reading of inter-frame codecs; the
    conversion stays with the caller, who would otherwise wait: 640x480 BGR 2220 -> 2570 fps)."""

    def __init__(self, reader: "VideoChunkReader", walker: _Walker, depth: int) -> None:
        self.r = reader
        self.w = walker
        self.q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.stop = threading.Event()
        self.consumed = walker.last_out  # highest position handed to the reader
        self.dead = False
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name=f"imgstore-readahead-{reader.key}", daemon=True)
        self.thread.start()

    def _push(self, item) -> bool:
        waited = 0.0
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.05)
                return True
            except queue.Full:
                waited += 0.05
                if waited > _READ_AHEAD_IDLE:  # nobody reads: let the reader (and this thread) go
                    self.stop.set()
                    return False
        return False

    def _run(self) -> None:
        r, w = self.r, self.w
        n = r._n
        try:
            while not self.stop.is_set():
                if w.next_dec >= n:
                    if not w.drained:
                        for q, fr in w.drain():
                            if not self._push((q, fr)):
                                return
                    self._push(None)  # the end
                    return
                a = w.next_dec
                b = r._batch_end(a)
                base = int(r._payload[a])
                data = r._src.read(base, int(r._end[b]))
                for i in range(a, b + 1):
                    if self.stop.is_set():
                        return
                    for q, fr in w.feed(i, data, int(r._payload[i]) - base):
                        if not self._push((q, fr)):
                            return
        except BaseException as e:  # noqa: BLE001 - handed to the reader
            self._push(e)
        finally:
            _sws_release()
            self.dead = True

    def expects(self, p: int) -> bool:
        return self.consumed < p <= self.consumed + 2 * READ_AHEAD + 1 and not self.stop.is_set() \
            and self.pid == os.getpid()

    def take(self, p: int):
        """The converted frame at position *p* (None if the thread cannot give it)."""
        r = self.r
        while True:
            try:
                item = self.q.get(timeout=0.25)
            except queue.Empty:
                if (self.dead or not self.thread.is_alive()) and self.q.empty():
                    return None  # finished, or the parent's thread in a forked child
                continue
            if item is None:
                self.stop.set()
                return None
            if isinstance(item, BaseException):
                self.stop.set()
                raise item
            q, fr = item
            self.consumed = max(self.consumed, q)
            if q == p:
                r._remember(q, fr, protect=True, limit=SEQUENTIAL_CACHE)
                return r._convert(fr)
            r._remember(q, fr, limit=SEQUENTIAL_CACHE)
            if q > p:
                return None

    def close(self) -> None:
        """Stop the thread; the frames it decoded but nobody took go into the reader's cache."""
        self.stop.set()
        while True:
            try:
                item = self.q.get_nowait()
            except queue.Empty:
                if not self.thread.is_alive():
                    break
                self.thread.join(0.01)
                continue
            if isinstance(item, tuple):
                self.r._remember(item[0], item[1])
        self.thread.join()


class _IntraAhead:
    """Frames of an intra-only chunk decoded (and converted) ahead, in parallel on the shared pool."""

    def __init__(self, reader: "VideoChunkReader") -> None:
        self.r = reader
        self.futs: dict[int, object] = {}
        self.depth = 2 * _decode_workers()
        self.next = 0
        self.pid = os.getpid()

    def expects(self, p: int) -> bool:
        return p in self.futs and self.pid == os.getpid()

    def fill(self, p: int) -> None:
        """Have positions p .. p + depth - 1 under way."""
        r = self.r
        ex = _decode_executor()
        stop = min(r._n, p + self.depth)
        for q in range(max(p, self.next), stop):
            if q not in self.futs:  # intra-only frames are never cached
                self.futs[q] = ex.submit(r._decode_intra, q)
        self.next = max(self.next, stop)

    def take(self, p: int):
        """The converted frame at *p*. Not cached, like any intra-only frame (see
        :meth:`VideoChunkReader._decode_intra_here`): 5-8% less CPU per 640x480 MJPEG frame."""
        return self.futs.pop(p).result()

    def close(self) -> None:
        for f in self.futs.values():
            f.cancel()  # frames under way are dropped when done
        self.futs.clear()


_reader_ids = itertools.count()


class VideoChunkReader(ChunkReader):
    """Exact random access to the frames of one video chunk.

    The frame at position *p* is the *p*-th frame in presentation (pts)
    order, per the chunk's packet index. Frames decoded on the way are kept
    in *cache* (default: the process-wide :func:`.frame_cache.shared_frame_cache`,
    bounded in bytes), at most *cache_frames* of this reader's if given (0:
    only the frame being read).

    Packet-direct decoding (:mod:`.video_packets`, used when the index knows
    where every packet's bytes are and the codec is a known one): a read
    takes the bytes from the keyframe at or before the target to the end of
    the packets the target needs (one ``pread``, or one range request for a
    remote store) and feeds them to a bare decoder; reading on from the last
    frame keeps that decoder going. B-frames: packets are fed in decode
    order up to the last one shown at or before the target (plus the
    reorder delay the index implies), more if the decoder holds the frame
    longer. Every frame is placed by its pts, never by counting. Sequential
    reading (a read at the position after the previous one that has to
    decode) starts decoding ahead: inter-frame codecs on one thread that
    takes the decoder over, intra-only codecs (MJPEG, FFV1) on a pool of
    threads with a decoder each. Intra-only frames are not cached (a read is
    one decode); a single MJPEG frame with restart markers is decoded in
    bands at once, on the caller's thread and band threads (:mod:`.jpeg_restart`).

    Otherwise (no payload offsets: a version 1 index of a remote store, a
    container whose packets are not stored verbatim, duplicate timestamps,
    an unknown codec, or a decoder that did not return the frame) the chunk
    is read through the demuxer: container seek to the keyframe, decode
    forward, pick the frame whose pts is the target's.

    Output: colour readers return ``(h, w, 3)`` BGR uint8; gray readers
    ``(h, w)`` uint8 (or uint16 for 16-bit files): gray and full-range
    neutral-chroma files (monochrome H.264 known from its SPS) give the
    stored samples, any other YUV/RGB file is converted to BGR and then to
    gray with OpenCV's fixed-point weights, so stores written by the
    original (OpenCV) imgstore read back exactly as it read them.

    The packet index comes from *index*, else the chunk's ``.pktidx.npz``,
    else is built by demuxing (and saved beside the chunk if *write_index*
    and the storage is writable). *direct* False forces the demuxer path;
    *read_ahead* False keeps all decoding on the caller's thread.

    Instrumentation: ``frames_decoded`` (frames out of the decoders),
    ``seeks`` (decoding restarted at a keyframe), ``cache_hits``, ``direct``
    (packet-direct decoding in use), ``source`` (its :class:`PacketSource`:
    remote requests and bytes). Calls are serialized with a lock.
    """

    def __init__(
        self,
        storage: Storage,
        key: str,
        *,
        color: bool,
        imgshape: Sequence[int] | None = None,
        dtype=np.uint8,
        cache_frames: int | None = None,
        cache: FrameCache | None = None,
        threads: int = 0,
        index: PacketIndex | None = None,
        write_index: bool = True,
        direct: bool | None = None,
        read_ahead: bool = True,
    ) -> None:
        self.storage = storage
        self.key = key
        self.filename = storage.describe(key)
        self.color = bool(color)
        self.imgshape = tuple(int(x) for x in imgshape) if imgshape is not None else None
        self.dtype = np.dtype(dtype)
        self.cache_frames = None if cache_frames is None else max(0, int(cache_frames))
        self.cache = cache if cache is not None else shared_frame_cache()
        self._owner = next(_reader_ids)
        self.threads = int(threads)
        self.read_ahead = bool(read_ahead)
        self.frames_decoded = 0
        self.seeks = 0
        self.cache_hits = 0
        self._count_lock = threading.Lock()
        self._lock = threading.RLock()
        self._container = None
        self._fobj = None
        self._closed = False
        self._ahead = None
        self._walker = None
        self._src = None
        self.source = None
        self._bands = False
        self._stack_frame = None  # the picture MJPEG bands are put back together in (see _stack)
        _live_readers.add(self)

        self.index = index if index is not None else load_packet_index(storage, key, write=write_index)
        idx = self.index
        n = len(idx)
        self._n = n
        self._linear = not idx.unique_pts
        if self._linear:
            log.warning("%s: duplicate timestamps, random access decodes from the start", self.filename)
        # presentation position <-> decode index <-> pts
        self._dec_of_pos = idx.order
        self._pos_of_pts = idx.derived("pos_of_pts",
                                       lambda: {int(t): p for p, t in enumerate(idx.pts_sorted.tolist())})
        self._dec_of_pts = None  # built when the demuxer path needs it
        self._start_dec = idx.derived("start_dec", self._keyframe_starts)
        self._mono = idx.codec == "h264" and idx.derived("chroma", lambda: h264_chroma_format(idx.extradata)) == 0
        self.direct = bool(direct is not False and not self._linear and n and direct_decodable(idx))
        self._last_req = -2
        self._frame_threads: bool | None = None  # decided at the first walk (see _walk_threads)
        if self.direct:
            self._setup_direct()
        else:
            self._open()

    # -- setup ---------------------------------------------------------------------------
    def _walk_threads(self) -> dict:
        """Threading of the decoder that walks forward from keyframes.

        H.264 coded as one slice per frame with long GOPs (OpenCV's files: one keyframe per
        chunk) decodes on frame threads: walking the 100-frame GOP of an original imgstore's
        1280x1024 chunk takes 2.5 instead of 3.1 ms per frame on 2 cores, worth the frame or two
        the threads hold back. Files cut into slices (ours) or with GOPs shorter than
        :data:`FRAME_THREADS_MIN_GOP` keep slice threads, which hold nothing back; so do remote
        files (finding the slice count would cost a request).
        """
        if self._frame_threads is None:
            idx = self.index
            gop = len(idx) / max(1, int(np.count_nonzero(idx.is_key)))
            self._frame_threads = bool(self.direct and self._src.local and idx.codec == "h264"
                                       and gop >= FRAME_THREADS_MIN_GOP
                                       and idx.derived("slices", self._slices) == 1)
        if self._frame_threads:
            return {"threads": self.threads or _decode_workers(), "thread_type": "FRAME"}
        return {"threads": self.threads}

    def _slices(self) -> int | None:
        """Slices per frame, as coded in the first keyframe."""
        idx = self.index
        keys = np.flatnonzero(idx.is_key)
        if not len(keys):
            return None
        k = int(keys[0])
        try:
            data = self._src.read(int(self._payload[k]), int(self._end[k]))
        except (OSError, CorruptChunkError):
            return None
        return h264_slice_count(idx.extradata, data)

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

    def _setup_direct(self) -> None:
        idx = self.index
        n = self._n
        self._payload = idx.payload
        self._end = idx.payload + idx.size.astype(np.int64)
        # the last packet (decode order) to feed so that the frame at each position can come out: every
        # frame shown before it decoded, plus the reorder delay the stream's order implies
        def upto():
            need = np.maximum.accumulate(self._dec_of_pos)
            delay = int(max(0, int((need - np.arange(n)).max()))) if n else 0
            return np.minimum(np.maximum(need, np.arange(n) + delay), n - 1).astype(np.int64), delay

        self._upto, delay = idx.derived("upto", upto)
        self._intra = idx.codec in INTRA_CODECS and bool(idx.is_key.all()) and delay == 0
        # a single MJPEG frame decodes in bands on several threads where the encoder wrote restart markers
        self._bands = self._intra and idx.codec == "mjpeg" and _decode_workers() > 1 and bool(idx.width)
        self._src = self.source = PacketSource(self.storage, self.key)
        self._walker = _Walker(self)

    def _open(self) -> None:
        self._close_container()
        if self._dec_of_pts is None:
            idx = self.index
            self._dec_of_pts = idx.derived("dec_of_pts", lambda: {int(t): d for d, t in enumerate(idx.pts.tolist())})
        self._container, self._fobj = open_container(self.storage, self.key)
        vs = self._container.streams.video
        if not vs:
            self._close_container()
            raise CorruptChunkError(f"{self.filename}: no video stream")
        self._stream = vs[0]
        cc = self._stream.codec_context
        cc.thread_type = "SLICE"
        cc.thread_count = self.threads
        if not self.index.codec and self._stream.codec_context.name == "h264":
            self._mono = h264_chroma_format(cc.extradata or b"") == 0
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

    def _forget_container(self) -> None:
        """In a forked child: drop the demuxer without freeing it (see :data:`_live_readers`)."""
        if self._container is not None:
            orphan_decoder(self._container)
            orphan_decoder(self._fobj)
            self._container = self._fobj = None
            self._demux = None

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
            p = self._check_pos(position)
            self._check_open()
            img = self._read_one(p)
            self._last_req = p
            return img

    def _read_one(self, p: int) -> np.ndarray:
        fr = self._cache_get(p)
        if fr is not None:
            return self._convert(fr)
        if self.direct:
            return self._read_direct(p)
        return self._convert(self._get_frame(p))

    def read_ahead_from(self, position: int) -> None:
        """Start decoding the frames from *position* on in the background, for a sequential read
        arriving there (a store reading on from the chunk before). Intra-only chunks read
        packet-direct; any other chunk starts reading ahead at its second sequential read."""
        with self._lock:
            p = int(position)
            if self._closed or not self.direct or not self._intra or not self.read_ahead \
                    or self._ahead is not None or not 0 <= p < self._n - 2:
                return  # (a position out of range is for the read to report)
            self._ahead = _IntraAhead(self)
            self._ahead.fill(p)

    def read_many(self, positions: Sequence[int]) -> list[np.ndarray]:
        """Frames at *positions* (any order, repeats allowed); each GOP is decoded at most once.

        Packet-direct: the byte spans the frames need are fetched first (for a
        remote store merged and concurrently), intra-only frames are decoded in
        parallel.
        """
        with self._lock:
            pos = [self._check_pos(p) for p in positions]
            self._check_open()
            uniq = sorted(set(pos))
            out: dict[int, np.ndarray] = {}
            if self.direct and uniq:
                self._stop_ahead()
                try:
                    out = self._read_many_direct(uniq)
                except CorruptChunkError as e:  # read one by one below (through the demuxer if need be)
                    log.debug("%s: packet-direct batch failed: %s", self.filename, e)
                    out = {}
            for p in uniq:
                if p not in out:
                    out[p] = self._read_one(p)
            res = []
            seen = set()
            for p in pos:
                res.append(out[p] if p not in seen else out[p].copy())
                seen.add(p)
            if uniq:
                self._last_req = -2  # a batch is not a sequential read
            return res

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop_ahead()
            self.cache.discard(self._owner)
            self._demux = None
            self._close_container()
            if self._src is not None:
                self._src.close()
            if self._walker is not None:
                self._walker.release()
                self._walker = None

    def __repr__(self) -> str:
        return f"VideoChunkReader({self.filename!r}, frames={self._n})"

    # -- shared --------------------------------------------------------------------------
    def _check_pos(self, position) -> int:
        p = int(position)
        if not 0 <= p < self._n:
            raise IndexError(f"{self.filename}: frame position {position} out of range (chunk has {self._n} frames)")
        return p

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self.filename}: reader is closed")

    def _count_decoded(self, k: int) -> None:
        if k:
            with self._count_lock:
                self.frames_decoded += k

    def _cache_get(self, p: int):
        fr = self.cache.get(self._owner, p)
        if fr is not None:
            self.cache_hits += 1
        return fr

    def _cached(self, p: int) -> bool:
        return (self._owner, p) in self.cache

    def _not_decodable(self, p: int):
        why = f": {self._last_error}" if getattr(self, "_last_error", None) else ""
        return CorruptChunkError(
            f"{self.filename}: frame at position {p} (pts {int(self.index.pts_sorted[p])}) could not be decoded{why}"
        )

    # -- packet-direct decoding ----------------------------------------------------------
    def _batch_end(self, a: int) -> int:
        """Last packet of a sequential batch starting at decode index *a*."""
        n = self._n
        b = min(n - 1, a + 63)
        if b > a and int(self._end[b]) - int(self._payload[a]) > _SEQ_BATCH_BYTES:
            b = a + max(0, int(np.searchsorted(self._end[a:b + 1], int(self._payload[a]) + _SEQ_BATCH_BYTES)) - 1)
        return max(a, b)

    def _stop_ahead(self) -> None:
        ah = self._ahead
        if ah is not None:
            self._ahead = None
            if ah.pid != os.getpid():  # forked child: its threads and futures are the parent's
                if isinstance(ah, _ReadAhead):
                    self._walker = ah.w  # drops its decoder at the next use
                return
            ah.close()
            if isinstance(ah, _ReadAhead):
                self._walker = ah.w  # consistent again now that its thread has stopped

    def _read_direct(self, p: int):
        """The converted frame at *p*, decoded packet-direct (or through the demuxer if that fails)."""
        try:
            return self._read_direct_inner(p)
        except CorruptChunkError as e:  # no decoder for these packets, or bytes missing from the file
            log.debug("%s: packet-direct read of frame %d failed: %s", self.filename, p, e)
            return self._fall_back(p)

    def _read_direct_inner(self, p: int):
        ah = self._ahead
        if ah is not None:
            if ah.expects(p):
                try:
                    img = ah.take(p)
                except CorruptChunkError:
                    img = None
                except BaseException:
                    self._stop_ahead()
                    raise
                if img is not None:
                    if isinstance(ah, _IntraAhead):
                        ah.fill(p + 1)
                    return img
            self._stop_ahead()
            fr = self._cache_get(p)  # decoded by the read-ahead after all
            if fr is not None:
                return self._convert(fr)
        sequential = self.read_ahead and p == self._last_req + 1 and self._n - p > 2
        if self._intra:
            if sequential:
                ah = self._ahead = _IntraAhead(self)
                ah.fill(p)
                try:
                    img = ah.take(p)
                    ah.fill(p + 1)
                    return img
                except CorruptChunkError:
                    self._stop_ahead()
                except BaseException:
                    self._stop_ahead()
                    raise
            if self._bands:
                img = self._read_intra_bands(p)
                if img is not None:
                    return img
            fr = self._decode_intra_here(p)
        else:
            w = self._walker
            continuing = w.can_continue(p)
            fr = self._walk_to(p)
            if fr is not None and sequential and continuing and self._n - p > 2:
                # reading on: a thread decodes the next frames while the caller uses this one
                self._walker = _Walker(self)  # the read-ahead thread owns this one until it stops
                self._ahead = _ReadAhead(self, w, READ_AHEAD)
        if fr is None:
            return self._fall_back(p)
        return self._convert(fr)

    def _walk_to(self, p: int, keep: int | None = None):
        """Decode (main thread) until the frame at *p* comes out; it, or None if it does not.
        *keep*: cache at most that many of this reader's frames (default: as many as the budget holds)."""
        w = self._walker
        if not w.can_continue(p):
            k = int(self._start_dec[p])
            if not (w.fresh and k == 0):
                self.seeks += 1  # a jump (decoding from the first packet of a fresh reader is none)
            w.restart(k)
        n = self._n
        want = int(self._upto[p])
        found = None
        while found is None:
            if w.next_dec >= n:
                if w.drained:
                    break
                frames = w.drain()
            else:
                a = w.next_dec
                b = max(a, want)
                base = int(self._payload[a])
                data = self._src.read(base, int(self._end[b]))
                frames = []
                for i in range(a, b + 1):
                    frames += w.feed(i, data, int(self._payload[i]) - base)
                want = w.next_dec  # the decoder held it longer than the order implies: one more packet
            for q, fr in frames:
                if q == p:
                    found = fr
                    self._remember(q, fr, protect=True, limit=keep)
                else:
                    self._remember(q, fr, limit=keep)
            if found is None and w.last_out > p:
                break
        return found

    def _decode_packet_alone(self, cc, d: int):
        """Decode the (intra) packet at decode index *d* with decoder *cc*: the frame, or None."""
        import av

        data = self._src.read(int(self._payload[d]), int(self._end[d]))
        pkt = av.Packet(len(data))
        np.frombuffer(pkt, np.uint8)[:] = np.frombuffer(data, np.uint8)
        want = int(self.index.pts[d])
        pkt.pts = want
        pkt.is_keyframe = True
        frames = self._safe_decode(cc, pkt)
        if not frames:
            frames = self._safe_decode(cc, None)
            cc.flush_buffers()
        self._count_decoded(len(frames))
        for fr in frames:
            if fr.pts is not None and int(fr.pts) == want:
                return fr
        return None

    def _decode_intra_here(self, p: int):
        """The frame at *p* of an intra-only chunk, decoded on this thread. Not cached: a read is one
        decode, and a kept frame takes fresh memory (the decoder's buffer pool cannot reuse it), which
        cost 0.6 ms per 1280x1024 read, a fifth of a decode in bands."""
        return self._decode_packet_alone(self._walker.decoder(), int(self._dec_of_pos[p]))

    def _read_intra_bands(self, p: int) -> np.ndarray | None:
        """The frame at *p* decoded in bands on several threads (a JPEG with restart markers, see
        :mod:`.jpeg_restart`), converted; None if this chunk's frames cannot be cut.

        Each band is converted on its thread, straight into its rows of the output: gray or neutral
        chroma to a gray reader as its samples, anything else as swscale converts it, which is row
        for row what it makes of the whole picture where the picture's height is even (its
        converter then works on pairs of rows; at odd heights it is not, so those pictures are
        converted once from the bands stacked back together)."""
        d = int(self._dec_of_pos[p])
        data = self._src.read(int(self._payload[d]), int(self._end[d]))
        bands = restart_bands(data, _decode_workers())
        if bands is None:
            self._bands = False  # the chunk's encoder wrote no usable markers: not looked for again
            return None
        w, h = int(self.index.width), int(self.index.height)
        out = np.empty((h, w, 3) if self.color else (h, w), np.uint16 if self.dtype == np.uint16 else np.uint8)
        tops = [top for _, top in bands] + [h]
        ex = _band_executor()
        futs = [(j, ex.submit(self._decode_band, jpeg, tops[j], tops[j + 1], out))
                for j, (jpeg, _) in enumerate(bands) if j]
        done = []
        try:
            done.append(self._decode_band(bands[0][0], 0, tops[1], out))
        finally:
            for j, f in futs:
                # a band no thread has started yet is decoded here (the pool may be busy, or slow to wake)
                done.append(self._decode_band(bands[j][0], tops[j], tops[j + 1], out) if f.cancel() else f.result())
        if any(fr is None for fr, _ in done):
            self._bands = False
            return None
        self._count_decoded(1)
        if not all(filled for _, filled in done):
            out = self._pixels(self._stack([fr for fr, _ in done], tops))
        return self._crop(out)  # not cached, see _decode_intra_here

    def _decode_band(self, jpeg: bytes, top: int, bottom: int, out: np.ndarray):
        """Decode band *jpeg* (rows *top* .. *bottom* of *out*): ``(frame, filled)``, *filled* True if
        its converted pixels are in *out*; ``(None, False)`` if it did not decode to a picture of that
        size."""
        import av

        cc = _thread_decoder(self, band=bottom - top)
        try:
            frames = cc.decode(av.Packet(jpeg))
        except (av.error.FFmpegError, EOFError) as e:
            log.debug("%s: band decode failed: %s", self.filename, e)
            return None, False
        if len(frames) != 1:
            return None, False
        fr = frames[0]
        if fr.width != out.shape[1] or fr.height != bottom - top or fr.format.name not in _BAND_FORMATS:
            return None, False
        if out.ndim == 2 and out.dtype == np.uint8 and (fr.format.name == "gray" or _full_range_neutral(fr)):
            out[top:bottom] = _plane(fr, 0)
        elif out.shape[0] % 2 == 0:
            out[top:bottom] = self._pixels(fr)
        else:
            return fr, False
        return fr, True

    def _stack(self, frames: list, tops: list[int]):
        """One picture of the decoded bands *frames* (top rows *tops*), in a frame this reader reuses."""
        import av

        f0 = frames[0]
        w, h, fmt = f0.width, tops[-1], f0.format.name
        asm = self._stack_frame
        if asm is None or (asm.width, asm.height, asm.format.name) != (w, h, fmt):
            asm = self._stack_frame = av.VideoFrame(w, h, fmt)
        asm.color_range = f0.color_range
        asm.colorspace = f0.colorspace
        for i, plane in enumerate(asm.planes):
            dst = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
            shift = (f0.height // f0.planes[i].height).bit_length() - 1  # band 0: whole MCU rows
            for fr, top in zip(frames, tops):
                src = _plane(fr, i)
                dst[top >> shift:(top >> shift) + src.shape[0], :src.shape[1]] = src
        return asm

    def _decode_intra(self, p: int) -> np.ndarray:
        """Pool job: the frame at *p*, decoded on this worker's own decoder and converted."""
        fr = self._decode_packet_alone(_thread_decoder(self), int(self._dec_of_pos[p]))
        if fr is None:
            raise self._not_decodable(p)
        return self._convert(fr)

    def _read_many_direct(self, uniq: list[int]) -> dict[int, np.ndarray]:
        """Frames at the sorted positions *uniq* that are not cached; the caller reads any left out."""
        out: dict[int, np.ndarray] = {}
        todo = [p for p in uniq if not self._cached(p)]
        if not todo:
            return out
        # remote: every span needed, fetched at once (merged, concurrently), in batches that fit the cache
        if not self._src.local:
            spans, total = [], 0
            limit = self._src.cache_bytes // 2
            for p in todo:
                a, b = int(self._payload[self._start_dec[p]]), int(self._end[self._upto[p]])
                if spans and total + (b - a) > limit:
                    break
                spans.append((a, b))
                total += b - a
            self._src.prefetch(spans)
        if self._intra and len(todo) > 1:
            ex = _decode_executor()
            futs = [(p, ex.submit(self._decode_intra, p)) for p in todo]
            for p, f in futs:
                try:
                    out[p] = f.result()  # not cached, like any intra-only frame
                except CorruptChunkError:
                    continue  # read one by one (and through the demuxer if need be) by the caller
            return out
        for p in todo:
            fr = self._cache_get(p)
            if fr is None:
                fr = self._walk_to(p, keep=SEQUENTIAL_CACHE)  # a batch: every frame wanted is returned
                if fr is None:
                    break  # the caller reads the rest (through the demuxer)
            out[p] = self._convert(fr)
        return out

    def _fall_back(self, p: int) -> np.ndarray:
        """Packet-direct decoding did not give frame *p*: read this chunk through the demuxer from now on."""
        log.warning("%s: frame at position %d did not come out of the bare decoder; reading through the demuxer",
                    self.filename, p)
        self._stop_ahead()
        try:
            self._open()
        except CorruptChunkError as e:  # the demuxer cannot even open it: stay packet-direct
            raise self._not_decodable(p) from e
        self.direct = False
        return self._convert(self._get_frame(p))

    # -- demuxer path --------------------------------------------------------------------
    def _get_frame(self, p: int):
        fr = self._cache_get(p)
        if fr is not None:
            return fr
        if self._closed:
            raise ValueError(f"{self.filename}: reader is closed")
        if self._container is None:  # let go of in a forked child
            self._open()
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
            raise self._not_decodable(p)
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

    def _remember(self, q: int, fr, protect: bool = False, limit: int | None = None) -> None:
        """Cache frame *fr* (position *q*); *limit*: keep at most that many of this reader's frames
        (reading on); *protect*: cache it even if this reader caches nothing (it is being read)."""
        cap = self.cache_frames
        if cap == 0 and not protect:
            return
        if cap is not None:
            limit = cap if limit is None else min(cap, limit)
        self.cache.put(self._owner, q, fr, limit=limit)

    # -- pixels --------------------------------------------------------------------------
    def _convert(self, fr) -> np.ndarray:
        """The output image of decoded frame *fr*."""
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
                img = self._gray8(fr, name).astype(np.uint16)
        else:
            img = self._gray8(fr, name)
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

    def _gray8(self, fr, name: str) -> np.ndarray:
        if name in _GRAY8:
            return fr.to_ndarray(format="gray")
        if self._mono and _full_range_yuv8(fr, name):
            return _plane(fr, 0).copy()  # monochrome H.264: the decoder fills chroma with 128
        if _full_range_neutral(fr):
            return _plane(fr, 0).copy()
        return bgr_to_gray(_to_bgr24(fr))


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
    "PacketSource",
    "build_packet_index",
    "load_packet_index",
    "packet_index_key",
]
