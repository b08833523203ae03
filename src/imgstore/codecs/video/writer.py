"""``VideoChunkWriter``: frames encoded into one video chunk on a background thread, and how many of
them are durable (complete on disk) at any moment. Crash safety of each container:
docs/design/crash-safety.md.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from fractions import Fraction
from typing import Mapping, Sequence

import numpy as np

from ...errors import UnsupportedFormatError
from ...storage.base import Storage
from ..base import ChunkWriter
from .formats import DEFAULT_FPS, _RANGE_JPEG, VideoFormat, get_video_format
from .yuv import bgr_to_yuv420_frame
from .mkv_progress import MatroskaProgress
from .mp4_progress import Mp4FragmentProgress
from .packet_index import build_packet_index
from .rates import container_rate
from .remux import remux_video_chunk

log = logging.getLogger(__name__)

#: frames the writer may hold queued for its encoder thread before write() blocks
DEFAULT_QUEUE_SIZE = 16


def _default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def _fragmenting(container_options: Mapping[str, str]) -> bool:
    """True if these ``mp4`` muxer options make it write movie fragments."""
    flags = str(container_options.get("movflags", ""))
    if any(f in flags for f in ("frag_keyframe", "empty_moov", "frag_custom", "frag_every_frame")):
        return True
    return any(float(container_options.get(k, 0) or 0) > 0 for k in ("frag_duration", "frag_size"))


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
        self._set_frame_kind(imgshape, dtype)
        self.fps = container_rate(fps, self.filename)
        self.gop = int(fmt.default_gop if gop is None else gop)
        if self.gop < 1:
            raise ValueError(f"{self.filename}: gop must be >= 1, got {gop}")
        self.threads = _default_threads() if threads is None else int(threads)

        copts = fmt.muxer_options(container_options)
        self._fobj = None
        self._write_index = write_index
        self._open_at_rate(copts, fmt.encoder_options(*self.imgshape[:2], options))

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
        self._progress = self._progress_tracker()
        self._thread = threading.Thread(target=self._run, name=f"imgstore-encode-{key}", daemon=True)
        self._thread.start()

    def _set_frame_kind(self, imgshape: Sequence[int], dtype) -> None:
        """Check and set the frames' shape, dtype and the encoder's pixel format for them."""
        fmt = self.fmt
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

    def _open_at_rate(self, copts: dict, codec_opts: dict) -> None:
        """Open the file and its encoder at ``self.fps``, or at :data:`DEFAULT_FPS` where the muxer's
        clock cannot keep frames at that rate apart."""
        fmt = self.fmt
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

    def _progress_tracker(self):
        """What counts the frames on disk while writing: a tracker, None (AVI: every muxed packet is on
        disk) or False (plain MP4: none before close)."""
        fmt, storage, key = self.fmt, self.storage, self.key
        if fmt.container in ("matroska", "webm"):
            return MatroskaProgress(storage, key)  # the muxer holds the current cluster
        if fmt.container == "avi":
            return None  # packets go straight to the file (flush_packets=1)
        if self._fragmented:
            return Mp4FragmentProgress(storage, key)  # the muxer holds the current fragment
        return False  # plain MP4: nothing is readable before the index is written at close

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
        pixel format conversion (BGR -> YUV 4:2:0) then overlaps with the encoding of earlier frames;
        it reads *a* in place, without copying it first (docs/design/video-formats.md)."""
        import av

        a = np.ascontiguousarray(a)
        if self._in_fmt == "bgr24" and self.pix_fmt == "yuv420p":
            vf = bgr_to_yuv420_frame(a)  # 0.3 ms a 640x480 frame; swscale took 0.85 (2026-12-03)
            if vf is not None:
                return vf
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
