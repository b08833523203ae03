"""Chunk index files: ``NNNNNN.npz`` / ``NNNNNN/index.npz`` (or legacy ``.yaml``).

Each holds ``frame_number`` and ``frame_time``, one entry per frame of the
chunk in write order. Writers also copy the ``__store`` keys into it.
"""

from __future__ import annotations

import io
import os
import zipfile
from typing import Any

import numpy as np
import yaml

from ..errors import CorruptChunkError
from ..storage import Storage

INDEX_EXTENSIONS = (".npz", ".yaml", ".frames")

#: append-only log of a chunk being written: one record per frame, written as
#: soon as the frame itself is on disk, so a killed writer loses no metadata.
#: Removed when the chunk is finished and its ``.npz`` written (the original's layout).
FRAME_LOG_EXT = ".frames"
FRAME_LOG_DTYPE = np.dtype([("frame_number", "<i8"), ("frame_time", "<f8")])


def find_chunk_index(storage: Storage, base: str) -> str | None:
    """Key of the existing index file for *base* (``.npz`` preferred), or None."""
    for ext in INDEX_EXTENSIONS:
        if storage.exists(base + ext):
            return base + ext
    return None


def _as_arrays(fn: Any, ft: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        fn_arr = np.asarray(fn)
        ft_arr = np.asarray(ft, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise CorruptChunkError(f"{where}: frame_number/frame_time are not numeric ({e})") from None
    if fn_arr.size == 0:
        fn_arr = fn_arr.astype(np.int64)
    if fn_arr.ndim != 1 or ft_arr.ndim != 1:
        raise CorruptChunkError(f"{where}: frame_number/frame_time must be 1-D arrays")
    if fn_arr.dtype.kind == "f":
        finite = np.isfinite(fn_arr)
        if not finite.all() or not np.all(fn_arr == np.round(fn_arr)):
            raise CorruptChunkError(f"{where}: frame_number holds non-integer values")
        fn_arr = fn_arr.astype(np.int64)
    elif fn_arr.dtype.kind in "iu":
        fn_arr = fn_arr.astype(np.int64, copy=False)
    elif fn_arr.dtype.kind == "b":
        fn_arr = fn_arr.astype(np.int64)
    else:
        raise CorruptChunkError(f"{where}: frame_number has dtype {fn_arr.dtype}, expected integers")
    if len(fn_arr) != len(ft_arr):
        raise CorruptChunkError(f"{where}: {len(fn_arr)} frame numbers but {len(ft_arr)} frame times")
    return fn_arr, ft_arr


def parse_chunk_index(data: bytes, key: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(frame_number int64[], frame_time float64[])`` from index file bytes. Never unpickles."""
    if key.endswith(FRAME_LOG_EXT):
        n = len(data) // FRAME_LOG_DTYPE.itemsize  # a torn last record is ignored
        rec = np.frombuffer(data, dtype=FRAME_LOG_DTYPE, count=n)
        return rec["frame_number"].astype(np.int64), rec["frame_time"].astype(np.float64)
    if key.endswith(".yaml"):
        try:
            doc = yaml.safe_load(data)
            return _as_arrays(doc["frame_number"], doc["frame_time"], where)
        except (yaml.YAMLError, KeyError, TypeError) as e:
            raise CorruptChunkError(f"{where}: unreadable chunk index ({e.__class__.__name__}: {e})") from None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            fn = z["frame_number"]
            ft = z["frame_time"]
    except KeyError as e:
        raise CorruptChunkError(f"{where}: chunk index lacks {e}") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, TypeError) as e:
        raise CorruptChunkError(f"{where}: unreadable chunk index ({e.__class__.__name__}: {e})") from None
    return _as_arrays(fn, ft, where)


def read_chunk_index(storage: Storage, base: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The chunk index below *base*, or None when the chunk has no index file."""
    key = find_chunk_index(storage, base)
    if key is None:
        return None
    try:
        data = storage.read_bytes(key)
    except FileNotFoundError:
        return None
    return parse_chunk_index(data, key, storage.describe(key))


def encode_chunk_index(frame_numbers, frame_times, store_md: dict[str, Any] | None = None,
                       extra: dict[str, Any] | None = None) -> bytes:
    """``.npz`` bytes with the keys and dtypes the original writes."""
    data: dict[str, Any] = {
        "frame_number": np.asarray(frame_numbers, dtype=np.int64),
        "frame_time": np.asarray(frame_times, dtype=np.float64),
    }
    if extra:
        data.update(extra)
    if store_md:
        for k, v in store_md.items():
            if k not in data:
                data[k] = v
    buf = io.BytesIO()
    np.savez(buf, **data)
    return buf.getvalue()


def write_chunk_index(storage: Storage, base: str, frame_numbers, frame_times,
                      store_md: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> str:
    """Write ``base + '.npz'`` atomically; returns its key."""
    key = base + ".npz"
    storage.write_bytes(key, encode_chunk_index(frame_numbers, frame_times, store_md, extra))
    return key


class FrameLog:
    """Appends ``(frame_number, frame_time)`` records to a chunk's ``.frames`` log."""

    def __init__(self, storage: Storage, base: str) -> None:
        self.storage = storage
        self.key = base + FRAME_LOG_EXT
        self._fp = storage.open_write(self.key)
        self.count = 0

    def append(self, frame_numbers, frame_times) -> None:
        rec = np.empty(len(frame_numbers), dtype=FRAME_LOG_DTYPE)
        rec["frame_number"] = frame_numbers
        rec["frame_time"] = frame_times
        self._fp.write(rec.tobytes())
        self._fp.flush()  # in the OS: survives the process being killed
        self.count += len(rec)

    def sync(self) -> None:
        """Also survive a power cut (fsync)."""
        try:
            os.fsync(self._fp.fileno())
        except (OSError, AttributeError, ValueError):
            pass

    def close(self, remove: bool = True) -> None:
        if self._fp is not None:
            self._fp.close()
            self._fp = None
        if remove:
            try:
                self.storage.remove(self.key)
            except FileNotFoundError:
                pass
