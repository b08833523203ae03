"""``VideoImgStore``: one video file per chunk, encoded and decoded with FFmpeg through PyAV."""

from __future__ import annotations

import os
import shutil
from typing import Any

import numpy as np

from ..codecs.base import ChunkWriter
from ..color import is_color
from ..errors import CorruptChunkError, StoreFormatError, UnsupportedFormatError
from ..format.chunkindex import write_chunk_index
from ..format.layout import Layout
from ..format.metadata import StoreMetadata
from .base import ImgStore


def _video():
    from ..codecs import video  # PyAV is imported only when video is used

    return video


class _LazyVideoWriter(ChunkWriter):
    """Opens the chunk's video file at the first frames, so its frame rate can come from the frame times."""

    def __init__(self, store: "VideoImgStore", chunk_n: int) -> None:
        self.store = store
        self.chunk_n = chunk_n
        self.writer = None
        self.pending: list[np.ndarray] = []

    def _fps(self, final: bool) -> float | None:
        """The chunk's nominal frame rate: the caller's ``fps``, else from the frame times of the last
        chunk and this one (None: wait for a second frame time)."""
        fps = self.store._options.get("fps")
        if fps:
            return float(fps)
        times = self.store._prev_chunk_times + self.store._chunk_ft
        if len(times) < 2 and not final:
            return None
        return _video().nominal_fps(times)

    def _open(self, fps: float) -> None:
        s = self.store
        self.writer = _video().VideoChunkWriter(
            s._storage, s._layout.chunk_key(self.chunk_n), s._video_format, s._imgshape, s._imgdtype,
            fps=fps, gop=s._options.get("gop"), threads=s._options.get("threads"),
            **s._options.get("encoder_options", {}))
        for img in self.pending:
            self.writer.write(img)
        self.pending = []

    def write(self, img: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.write(img)
            return
        self.pending.append(np.array(img, copy=True))
        fps = self._fps(final=False)
        if fps is not None:
            self._open(fps)

    def durable_count(self) -> int:
        return 0 if self.writer is None else self.writer.durable_count()

    def flush(self) -> None:
        if self.writer is None and self.pending:
            self._open(self._fps(final=True))
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is None and self.pending:
            self._open(self._fps(final=True))
        if self.writer is not None:
            self.writer.close()

    def abort(self) -> None:
        """Drop an empty chunk: nothing was written."""
        self.pending = []
        if self.writer is not None:
            self.writer.close()


class VideoImgStore(ImgStore):
    """A store whose chunks are video files (``mjpeg/avi``, ``avc1/mp4``, ``h264/mkv``, ``ffv1/mkv``, ...).

    Extra keyword arguments when writing: ``fps`` (container frame rate; by
    default taken from the frame times), ``gop`` (keyframe interval),
    ``threads`` (encoder threads), ``encoder_options`` (FFmpeg options).
    """

    class_name = "VideoImgStore"
    _DEFAULT_CHUNKSIZE = 10000

    def __init__(self, **kwargs) -> None:
        kwargs.pop("seek", None)  # the original's OpenCV seek switch: seeking here is always exact
        kwargs.pop("gpu_id", None)
        kwargs.pop("videosize", None)
        self._prev_chunk_times: list[float] = []
        super().__init__(**kwargs)

    # --- reading ---------------------------------------------------------
    def _check_class(self, md: StoreMetadata) -> None:
        if not md.is_video:
            super()._check_class(md)

    def _make_layout(self, md: StoreMetadata) -> Layout:
        return Layout("video", extension=md.extension)

    def _read_format(self, md: StoreMetadata):
        try:
            return _video().resolve_video_format(md.format, md.extension)
        except UnsupportedFormatError:
            return None

    def _read_imgshape(self, md: StoreMetadata):
        shape = list(md.imgshape)
        fmt = self._read_format(md)
        if fmt is None or fmt.even_dims:
            # the original wrote (h, w) rounded down to even, and corrected old stores that recorded odd sizes
            shape[0] &= -2
            shape[1] &= -2
        return tuple(shape)

    def _new_chunk_reader(self, chunk_n: int):
        key = self._layout.chunk_key(chunk_n)
        try:  # no exists() first: over HTTP, fsspec's exists() downloads the whole file
            return _video().VideoChunkReader(self._storage, key, color=is_color(self._imgshape),
                                             imgshape=self._imgshape, dtype=self._imgdtype,
                                             write_index=self._storage.writable)
        except FileNotFoundError:
            raise CorruptChunkError(f"{self._storage.describe(key)}: chunk video file is missing") from None

    def _new_ahead_reader(self, chunk_n: int, alone: bool = False):
        """A reader with a single-threaded decoder (unless *alone*: then its own threads), no read-ahead
        thread, a small cache (the frames a B-frame walk passes by): its chunk is read once, in order,
        on a thread of its own (:mod:`.chunk_ahead`)."""
        return _video().VideoChunkReader(self._storage, self._layout.chunk_key(chunk_n),
                                         color=is_color(self._imgshape), imgshape=self._imgshape,
                                         dtype=self._imgdtype, write_index=self._storage.writable,
                                         threads=0 if alone else 1, read_ahead=False, cache_frames=16)

    def _frame_bytes(self) -> int:
        """0 for intra-only codecs: their frames are decoded ahead in parallel within the chunk already."""
        n = self.__dict__.get("_frame_bytes_n")
        if n is None:
            md = getattr(self, "_md", None)
            vf = self._read_format(md) if md is not None else None
            intra = vf is not None and vf.family in ("mjpeg", "ffv1")
            n = 0 if intra else int(np.prod(self._out_shape)) * np.dtype(self._imgdtype).itemsize
            self.__dict__["_frame_bytes_n"] = n
        return n

    def _held_frame_bytes(self) -> int:
        """Colour frames are held ahead as decoded, YUV 4:2:0 as the original and most programs write
        them (half of BGR); a chunk whose frames take more holds fewer (:class:`.chunk_ahead.ChunkAhead`)."""
        n = self._frame_bytes()
        return max(1, n // 2) if is_color(self._imgshape) else n

    # --- writing ---------------------------------------------------------
    def _prepare_write(self, fmt, imgshape, imgdtype, encoding):
        if not isinstance(fmt, str):
            raise UnsupportedFormatError(f"unknown format {fmt!r}")
        vf = _video().get_video_format(fmt)
        vf.pix_fmt(is_color(imgshape), imgdtype)  # raises for frames this codec cannot hold
        if len(imgshape) not in (2, 3) or (len(imgshape) == 3 and imgshape[2] not in (1, 3)):
            raise UnsupportedFormatError(f"imgshape {imgshape} is not (h, w) or (h, w, 3)")
        shape = list(imgshape[:2]) + ([3] if is_color(imgshape) else [])
        if vf.even_dims:
            shape[0] &= -2
            shape[1] &= -2
            if min(shape[:2]) <= 0:
                raise UnsupportedFormatError(f"imgshape {imgshape} is too small for {vf.name}")
        self._video_format = vf
        h, w = shape[:2]
        crop = None
        if (h, w) != tuple(imgshape[:2]):
            def crop(img, h=h, w=w):  # the original drops the last odd row/column
                return np.ascontiguousarray(img[:h, :w])
        name = vf.name
        return name, tuple(shape), encoding or None, crop

    def _extra_store_metadata(self, fmt) -> dict[str, Any]:
        return {"extension": self._video_format.extension}

    def _new_chunk_writer(self, chunk_n: int):
        return _LazyVideoWriter(self, chunk_n)

    def _finish_chunk(self, wait: bool = True) -> None:
        self._prev_chunk_times = list(self._chunk_ft[-200:])
        super()._finish_chunk(wait)

    def _delete_chunk(self, chunk_n: int) -> None:
        super()._delete_chunk(chunk_n)
        for key in (self._layout.chunk_key(chunk_n), _video().packet_index_key(self._layout.chunk_key(chunk_n))):
            if self._storage.exists(key):
                self._storage.remove(key)

    def insert_chunk(self, video_path: str, frame_numbers, frame_times, move: bool = True) -> None:
        """Add a video file written by another program as the next chunk, with its frame numbers and times."""
        self._require_write()
        frame_numbers = np.asarray(frame_numbers, dtype=np.int64)
        frame_times = np.asarray(frame_times, dtype=np.float64)
        if frame_numbers.shape != frame_times.shape or frame_numbers.ndim != 1:
            raise ValueError(f"{video_path}: {frame_numbers.shape} frame numbers but {frame_times.shape} frame times")
        ext = self._layout.extension
        if not str(video_path).endswith(ext):
            raise ValueError(f"{video_path}: chunks of this store must be {ext} files")
        local = self._storage.local_path("")
        if local is None:
            raise UnsupportedFormatError("insert_chunk needs a local store")
        if self._chunk_fn:  # the chunk being written has frames: finish it first
            self._finish_chunk()
            self._start_chunk(self._chunk_n + 1)
        self._writer.abort()
        self._frame_log.close(remove=True)
        key = self._layout.chunk_key(self._chunk_n)
        dest = self._storage.local_path(key)
        (shutil.move if move else shutil.copy)(os.fspath(video_path), dest)
        video = _video()

        def undo():  # leave the caller's file where it was and the store as it was
            if move:
                shutil.move(dest, os.fspath(video_path))
            else:
                os.unlink(dest)
            pkey = video.packet_index_key(key)
            if self._storage.exists(pkey):
                self._storage.remove(pkey)

        try:
            pidx = video.build_packet_index(self._storage, key)
        except Exception as e:
            undo()
            raise CorruptChunkError(f"{video_path}: cannot be read as video ({e})") from None
        if pidx.frame_count != len(frame_numbers):
            undo()
            raise StoreFormatError(f"{video_path}: holds {pidx.frame_count} frames but {len(frame_numbers)} frame "
                                   f"numbers were given")
        write_chunk_index(self._storage, self._layout.index_base(self._chunk_n), frame_numbers, frame_times,
                          store_md=self._md.store)
        self._frame_n += len(frame_numbers)
        if len(frame_numbers):
            fmax, fmin = float(frame_numbers.max()), float(frame_numbers.min())
            self._frame_max = fmax if np.isnan(self._frame_max) else max(self._frame_max, fmax)
            self._frame_min = fmin if np.isnan(self._frame_min) else min(self._frame_min, fmin)
        self._start_chunk(self._chunk_n + 1)

    @classmethod
    def supported_formats(cls) -> list[str]:
        try:
            return list(_video().available_video_formats())
        except ImportError:
            return []

    @classmethod
    def supports_format(cls, fmt: str) -> bool:
        if not isinstance(fmt, str):
            return False
        try:
            video = _video()
        except ImportError:
            return False
        name = video.FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
        return name in video.VIDEO_FORMATS and video.format_is_writable(name)  # probes this format only

    @property
    def _ext(self) -> str:
        """Chunk file extension, e.g. ``.mp4`` (the original's attribute)."""
        return self._layout.extension

    @property
    def _chunk_paths(self) -> list[str]:
        """Paths of the chunk video files (the original's attribute)."""
        return [self._storage.describe(self._layout.chunk_key(c)) for c in self._all_chunk_numbers()]

    @property
    def lossless(self) -> bool:
        fmt = self._read_format(self._md)
        return bool(fmt is not None and fmt.lossless)
