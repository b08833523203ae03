"""``ImgStore``, the API shared by every store kind, put together from one mixin per role:
:mod:`.reading` (frame index, chunk readers, ``get_image``), :mod:`.writing` (``add_image``, chunk
rollover, the frame log; a full chunk is finished by :mod:`.chunk_finish`), :mod:`.array_view`
(``store[...]``, ``get_series``, ``to_dask``), :mod:`.chunk_iter` (``iter_chunks``), :mod:`.extra_data`,
:mod:`.index_files` and :mod:`.pickling`. This module holds what both modes share: opening, the metadata properties,
``close`` and the original's attribute names. Map: docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import datetime
import os
import posixpath
from typing import Any

import numpy as np

from ..constants import STORE_INDEX_FILENAME, STORE_MD_FILENAME
from ..errors import StoreFormatError, UnsupportedFormatError
from ..format.layout import Layout
from ..format.metadata import StoreMetadata, created_datetime
from ..storage import open_storage
from ..storage.remote import is_url
from .array_view import ArrayView
from .chunk_iter import ChunkFrames, ChunkIteration  # noqa: F401 - ChunkFrames: the items iter_chunks yields
from .extra_data import ExtraDataReading
from .index_files import IndexFiles
from .pickling import Pickling, _unpickled_store  # noqa: F401 - pickles made before the split name it here
from .reading import FrameMeta, StoreReading  # noqa: F401 - FrameMeta: imported from here before
from .writing import StoreWriting

#: ``imgstore.stores.factory.extract_only_frame`` (it knows every store class, and imports this module,
#: so it sets this itself through :func:`set_frame_extractor`)
_extract_only_frame = None


def set_frame_extractor(extract) -> None:
    """Make ``ImgStore.extract_only_frame(path, i)`` return ``extract(path, i)``."""
    global _extract_only_frame
    _extract_only_frame = extract


class ImgStore(StoreReading, ArrayView, ChunkIteration, StoreWriting, ExtraDataReading, IndexFiles, Pickling):
    """A store of video frames with their frame numbers, times and metadata.

    Open one with :func:`imgstore.new_for_filename` (read) or
    :func:`imgstore.new_for_format` (write).

    State of both modes, owned here: ``_basedir``, ``_mode``, ``_options``, ``_storage``,
    ``_closed``, ``frame_number``, ``frame_time``, and what the store's metadata says (``_md``,
    ``_layout``, ``_imgshape``, ``_imgdtype``, ``_chunksize``, ``_format``, ``_encoding``: set once,
    by ``_init_read`` or ``_init_write``). Each mixin's docstring names the state it owns.
    """

    class_name = "ImgStore"
    _DEFAULT_CHUNKSIZE = 200
    _supported_modes = "rw"
    FRAME_MD = ("frame_number", "frame_time")

    def __init__(self, basedir: str | os.PathLike | None = None, mode: str = "r", imgshape=None,
                 imgdtype=np.uint8, chunksize: int | None = None, metadata: dict | None = None,
                 encoding: str | None = None, format: str | None = None, index=None,
                 **kwargs: Any) -> None:
        if basedir is None:
            raise StoreFormatError("basedir (the store folder) must be given")
        if mode not in ("r", "w") or mode not in self._supported_modes:
            raise UnsupportedFormatError(f"mode {mode!r} not supported (use 'r' or 'w')")
        self._basedir = os.fspath(basedir) if not is_url(str(basedir)) else str(basedir)
        self._mode = mode
        self._options = kwargs
        self._decode_image = None
        self._raw_frames = False
        self._closed = False

        # state visible through properties in both modes
        self.frame_number: Any = np.nan
        self.frame_time: Any = np.nan

        if mode == "w":
            if imgshape is None or imgdtype is None or format is None:
                raise StoreFormatError("imgshape, imgdtype, chunksize, format must not be None")
            if chunksize is None:
                chunksize = self._DEFAULT_CHUNKSIZE
            self._storage = open_storage(self._basedir, create=True, storage_options=kwargs.get("storage_options"))
            self._init_write(tuple(int(x) for x in imgshape), np.dtype(imgdtype).name, int(chunksize),
                             metadata, encoding, format)
        else:
            self._storage = open_storage(self._basedir, storage_options=kwargs.get("storage_options"))
            self._init_read(index)

    def _make_layout(self, md: StoreMetadata) -> Layout:  # pragma: no cover - abstract
        raise NotImplementedError

    def _require_read(self) -> None:
        if self._mode != "r":
            raise UnsupportedFormatError("store is open for writing; reopen it with mode='r' to read")

    def _require_write(self) -> None:
        if self._mode != "w":
            raise UnsupportedFormatError("store is open for reading")
        if self._closed:
            raise UnsupportedFormatError("store is closed")

    def close(self, save_index: bool = False) -> None:
        """Finish writing (write mode) and release files."""
        if self._mode == "w":
            if not self._closed:
                self._closed = True
                try:
                    self._finish_chunk()
                finally:  # even if the last chunk failed: its frames stay readable from its frame log
                    self._drop_frame_index_cache()
                    self._release_lock()
                if save_index:
                    self._write_sqlite_index(STORE_INDEX_FILENAME)
        else:
            self._close_readers()

    def get_frame_metadata(self) -> dict[str, list]:
        """``{'frame_number': [...], 'frame_time': [...]}`` of every frame, in store order."""
        if self._mode == "w":
            raise UnsupportedFormatError("frame metadata is read from a store opened for reading")
        return {"frame_number": self._index.frame_number.tolist(), "frame_time": self._index.frame_time.tolist()}

    @property
    def frame_numbers(self) -> np.ndarray:
        """Frame numbers of every frame as a read-only numpy array (store order)."""
        self._require_read()
        return self._index.frame_number

    @property
    def frame_times(self) -> np.ndarray:
        """Frame times of every frame as a read-only numpy array (store order)."""
        self._require_read()
        return self._index.frame_time

    def _get_chunk_metadata(self, chunk_n: int) -> dict[str, list]:
        md = self._index.chunk_metadata(chunk_n)
        return {k: v.tolist() for k, v in md.items()}

    @property
    def frame_count(self) -> int:
        return self._frame_n if self._mode == "w" else self._index.frame_count

    @property
    def frame_min(self) -> float:
        return float(self._frame_min) if self._mode == "w" else self._index.frame_min

    @property
    def frame_max(self) -> float:
        return float(self._frame_max) if self._mode == "w" else self._index.frame_max

    @property
    def frame_time_min(self) -> float:
        if self._mode == "w":
            return self._t0
        return self._index.frame_time_min if self._index.frame_count else 0.0

    @property
    def frame_time_max(self) -> float:
        if self._mode == "w":
            return self._tN
        return self._index.frame_time_max if self._index.frame_count else 0.0

    @property
    def duration(self) -> float:
        t0, tn = self.frame_time_min, self.frame_time_max
        if t0 is None or tn is None or not np.isfinite(t0) or not np.isfinite(tn):
            return 0.0
        return float(tn - t0)

    @property
    def chunks(self) -> list[int]:
        """Chunk numbers that hold frames (write mode: chunks completed so far)."""
        if self._mode == "w":
            return list(range(0, self._chunk_n))
        return list(self._index.chunks)

    @property
    def user_metadata(self) -> dict[str, Any]:
        return self._md.user

    @property
    def store_metadata(self) -> dict[str, Any]:
        return self._md.store

    @property
    def filename(self) -> str:
        return self._basedir

    @property
    def full_path(self) -> str:
        if is_url(self._basedir):
            return self._basedir.rstrip("/") + "/" + STORE_MD_FILENAME
        return os.path.join(self._basedir, STORE_MD_FILENAME)

    @property
    def image_shape(self) -> tuple[int, ...]:
        if self._encoding:
            return self._imgshape[0], self._imgshape[1], 3
        return tuple(self._imgshape)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.frame_count,) + self._out_shape

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._imgdtype)

    @property
    def chunksize(self) -> int:
        return self._chunksize

    @property
    def format(self) -> str:
        return self._format

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def uuid(self) -> str | None:
        return self._md.uuid

    @property
    def created(self) -> tuple[datetime.datetime, Any]:
        """``(created time in UTC, recording time zone)``."""
        if not hasattr(self, "_created"):
            mtime = None
            if "created_utc" not in self._md.store:
                try:
                    mtime = self._storage.stat(STORE_MD_FILENAME).mtime_ns / 1e9
                except OSError:
                    mtime = None
            name = posixpath.basename(self._basedir.rstrip("/").replace(os.sep, "/"))
            self._created = created_datetime(self._md, name, mtime)
        return self._created

    @property
    def lossless(self) -> bool:  # pragma: no cover - overridden
        return False

    def convert_frame_time_to_datetime(self, frame_time, tz=None) -> datetime.datetime:
        """A frame time (seconds since the epoch) as a datetime in the store's time zone (or *tz*)."""
        if tz is None:
            _, tz = self.created
        return datetime.datetime.fromtimestamp(float(frame_time), tz=tz)

    def _all_chunk_numbers(self) -> list[int]:
        if self._mode == "r" and self._chunk_entries is not None:
            return [e.chunk for e in self._chunk_entries]
        return self._layout.list_chunks(self._storage)

    # ------------------------------------------------------------------ misc
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<{self.class_name} {self._basedir!r} mode={self._mode!r} format={self._format!r} "
                f"frames={self.frame_count} shape={self.image_shape} dtype={self._imgdtype}>")

    @classmethod
    def supported_formats(cls) -> list[str]:  # pragma: no cover - overridden
        return []

    @classmethod
    def supports_format(cls, fmt: str) -> bool:
        return fmt in cls.supported_formats()

    @property
    def _chunk_n_and_chunk_paths(self):
        """(chunk_n, path without extension) of every chunk; None for a store opened with ``index=`` until
        ``_iter_chunk_n_and_chunk_paths()`` has listed them (the original's behaviour)."""
        if self._mode == "r" and self._chunk_entries is None and not getattr(self, "_chunks_listed", False):
            return None
        return [(c, self._storage.describe(self._layout.index_base(c))) for c in self._all_chunk_numbers()]

    def _iter_chunk_n_and_chunk_paths(self):
        self._chunks_listed = True
        yield from self._chunk_n_and_chunk_paths

    #: the original's names of the ``__store`` section of metadata.yaml and of the user metadata
    _metadata = store_metadata
    _user_metadata = user_metadata

    @classmethod
    def extract_only_frame(cls, full_path, frame_index: int, _smd=None) -> np.ndarray:
        """The frame at *frame_index* of the store at *full_path* (the original's classmethod)."""
        return _extract_only_frame(full_path, frame_index)
