"""Foreign raw video: a binary file of frames (any axis order, any header size) read like a store."""

from __future__ import annotations

import datetime
import os
from typing import Sequence
from zoneinfo import ZoneInfo

import numpy as np

from ..codecs.base import ChunkReader
from ..errors import CorruptChunkError, StoreFormatError
from ..format.metadata import StoreMetadata
from ..index import FrameIndex
from ..index_cache import IndexReport
from ..storage import open_storage
from ..storage.remote import is_url
from .base import ImgStore

_AXES = set("thwc")


class MemmapVideoReader(ChunkReader):
    """All frames of a raw file as one chunk, from a read-only memory map."""

    def __init__(self, frames: np.ndarray, where: str) -> None:
        self.frames = frames  # (t, h, w[, c]) view of the mapping, any strides
        self.where = where

    def _check(self, p: int) -> int:
        if not 0 <= int(p) < len(self.frames):
            raise CorruptChunkError(f"{self.where}: no frame {p} (the file holds {len(self.frames)} frames)")
        return int(p)

    def read(self, position: int) -> np.ndarray:
        return np.ascontiguousarray(self.frames[self._check(position)])

    def read_range(self, start: int, stop: int) -> np.ndarray:
        return self.frames[self._check(start): self._check(stop - 1) + 1]

    def read_many(self, positions: Sequence[int]) -> np.ndarray:
        return self.frames[[self._check(p) for p in positions]]


class RawVideoFile(ImgStore):
    """A read-only store over a raw binary video file (see :func:`open_raw_video`)."""

    class_name = "RawVideoFile"

    def __init__(self, path: str, *, frame_shape: Sequence[int], dtype, offset: int = 0, axis_order: str = "thw",
                 sampling_frequency: float | None = None, timestamps=None, frame_numbers=None,
                 n_frames: int | None = None) -> None:
        path = os.fspath(path)
        self._init_args = dict(path=path, frame_shape=frame_shape, dtype=dtype, offset=offset, axis_order=axis_order,
                               sampling_frequency=sampling_frequency, timestamps=timestamps,
                               frame_numbers=frame_numbers, n_frames=n_frames)
        if is_url(path):
            raise StoreFormatError(f"{path}: raw video files must be local to be memory-mapped")
        axis_order = axis_order.lower()
        if set(axis_order) - _AXES or len(set(axis_order)) != len(axis_order) or not {"t", "h", "w"} <= set(
                axis_order):
            raise StoreFormatError(f"axis_order {axis_order!r} must be a permutation of 'thw' or 'thwc'")
        frame_shape = tuple(int(x) for x in frame_shape)
        if len(frame_shape) not in (2, 3) or ("c" in axis_order) != (len(frame_shape) == 3):
            raise StoreFormatError(f"frame_shape {frame_shape} does not match axis_order {axis_order!r}")
        dt = np.dtype(dtype)
        frame_bytes = int(np.prod(frame_shape)) * dt.itemsize
        try:
            size = os.path.getsize(path)
        except OSError as e:
            raise StoreFormatError(f"{path}: {e.strerror or e}") from None
        available = max(0, (size - int(offset)) // frame_bytes)
        n = available if n_frames is None else int(n_frames)
        if n > available:
            raise StoreFormatError(f"{path}: holds {available} complete frames of {frame_shape} {dt} after "
                                   f"{offset} header bytes, not {n}")
        dims = {"t": n, "h": frame_shape[0], "w": frame_shape[1]}
        if len(frame_shape) == 3:
            dims["c"] = frame_shape[2]
        file_shape = tuple(dims[a] for a in axis_order)
        mm = np.memmap(path, dtype=dt, mode="r", offset=int(offset), shape=file_shape) if n else \
            np.zeros(file_shape, dtype=dt)
        frames = np.transpose(mm, [axis_order.index(a) for a in "thw" + ("c" if "c" in axis_order else "")])

        if timestamps is not None:
            times = np.asarray(timestamps, dtype=np.float64)
            if times.shape != (n,):
                raise StoreFormatError(f"{path}: {len(times)} timestamps for {n} frames")
        elif sampling_frequency:
            times = np.arange(n, dtype=np.float64) / float(sampling_frequency)
        else:
            times = np.arange(n, dtype=np.float64)
        numbers = np.arange(n, dtype=np.int64) if frame_numbers is None else np.asarray(frame_numbers, np.int64)
        if numbers.shape != (n,):
            raise StoreFormatError(f"{path}: {len(numbers)} frame numbers for {n} frames")

        self._basedir = path
        self._mode = "r"
        self._options = {}
        self._decode_image = None
        self._raw_frames = False
        self._closed = False
        self.frame_number = np.nan
        self.frame_time = np.nan
        self._storage = open_storage(os.path.dirname(os.path.abspath(path)))
        self._md = StoreMetadata(store={"class": self.class_name, "format": "raw", "imgshape": list(frame_shape),
                                        "imgdtype": dt.name, "chunksize": max(n, 1), "encoding": None}, user={})
        self._layout = None
        self._imgshape = frame_shape
        self._imgdtype = dt.name
        self._chunksize = max(n, 1)
        self._format = "raw"
        self._encoding = None
        self._cursor = -1
        self._sampling_frequency = sampling_frequency
        self._index = FrameIndex.from_chunks([(0, numbers, times)])
        self._chunk_entries = None
        self._index_report = IndexReport()
        self._readers = {0: MemmapVideoReader(frames, path)}

    def __reduce__(self):
        """Pickled as the arguments it was opened with; mapped again where it is unpickled."""
        return (_raw_video_file, (self._init_args,))

    def _new_chunk_reader(self, chunk_n: int):
        return self._readers[0]

    def _close_readers(self) -> None:
        pass  # the mapping lives as long as the object

    def refresh(self) -> int:
        return 0

    def _all_chunk_numbers(self) -> list[int]:
        return []

    def _iter_extra_data_files(self, extensions=()):
        return iter(())

    @property
    def created(self):
        ts = os.path.getmtime(self._basedir)
        return datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc), ZoneInfo("UTC")

    @property
    def full_path(self) -> str:
        return self._basedir

    @property
    def lossless(self) -> bool:
        return True

    def get_sampling_frequency(self) -> float:
        if self._sampling_frequency:
            return float(self._sampling_frequency)
        return super().get_sampling_frequency()


def _raw_video_file(kwargs: dict) -> RawVideoFile:
    return RawVideoFile(**kwargs)


def open_raw_video(path, *, frame_shape: Sequence[int], dtype, offset: int = 0, axis_order: str = "thw",
                   sampling_frequency: float | None = None, timestamps=None, frame_numbers=None,
                   n_frames: int | None = None) -> RawVideoFile:
    """Read a raw binary video file (frames back to back after *offset* header bytes) like a store.

    ``axis_order`` names the file's axes, e.g. ``"thw"`` (frames of rows of
    pixels), ``"thwc"`` for colour, ``"twh"`` for column-major frames. Frame
    times come from *timestamps*, else ``i / sampling_frequency``; frame
    numbers default to 0..n-1. Ranges are zero-copy views of the mapping.
    """
    return RawVideoFile(path, frame_shape=frame_shape, dtype=dtype, offset=offset, axis_order=axis_order,
                        sampling_frequency=sampling_frequency, timestamps=timestamps, frame_numbers=frame_numbers,
                        n_frames=n_frames)
