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


_INT64_MAX = np.iinfo(np.int64).max


def _as_arrays(fn: Any, ft: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        fn_arr = np.asarray(fn)
        ft_arr = np.asarray(ft)
    except (TypeError, ValueError) as e:
        raise CorruptChunkError(f"{where}: frame_number/frame_time are not numeric ({e})") from None
    if fn_arr.size == 0 and fn_arr.ndim == 1:
        fn_arr = fn_arr.astype(np.int64)
    if ft_arr.size == 0 and ft_arr.ndim == 1:
        ft_arr = ft_arr.astype(np.float64)
    if fn_arr.ndim != 1 or ft_arr.ndim != 1:
        raise CorruptChunkError(f"{where}: frame_number/frame_time must be 1-D arrays "
                                f"(shapes {fn_arr.shape}, {ft_arr.shape})")
    if fn_arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(fn_arr) & (fn_arr == np.round(fn_arr)) & (np.abs(fn_arr) < 2.0 ** 63)
        if not ok.all():
            raise CorruptChunkError(f"{where}: frame_number holds non-integer values")
        fn_arr = fn_arr.astype(np.int64)
    elif fn_arr.dtype.kind == "u":
        if len(fn_arr) and int(fn_arr.max()) > _INT64_MAX:
            raise CorruptChunkError(f"{where}: frame_number holds values beyond int64")
        fn_arr = fn_arr.astype(np.int64)
    elif fn_arr.dtype.kind in "ib":
        fn_arr = fn_arr.astype(np.int64, copy=False)
    else:
        raise CorruptChunkError(f"{where}: frame_number has dtype {fn_arr.dtype}, expected integers")
    if ft_arr.dtype.kind not in "iuf":  # no strings, complex, datetimes, objects
        raise CorruptChunkError(f"{where}: frame_time has dtype {ft_arr.dtype}, expected numbers")
    ft_arr = ft_arr.astype(np.float64, copy=False)
    if len(fn_arr) != len(ft_arr):
        raise CorruptChunkError(f"{where}: {len(fn_arr)} frame numbers but {len(ft_arr)} frame times")
    return fn_arr, ft_arr


#: an index member larger than this is not a chunk index (a zip bomb, a damaged size field)
_MAX_MEMBER_BYTES = 1 << 31


def read_npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of the ``.npy`` data in file object *f*, left at the data."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        return fmt.read_array_header_1_0(f)
    if version in ((2, 0), (3, 0)):  # 3.0 only allows UTF-8 field names in the header: 2.0's layout
        return fmt.read_array_header_2_0(f)
    raise ValueError(f"unknown .npy format version {version}")


def _npz_member(z: zipfile.ZipFile, name: str, where: str) -> np.ndarray:
    """One array of an npz, read without unpickling and without trusting its header's size."""
    try:
        info = z.getinfo(name + ".npy")
    except KeyError:
        raise CorruptChunkError(f"{where}: chunk index lacks '{name}'") from None
    if info.file_size > _MAX_MEMBER_BYTES:
        raise CorruptChunkError(f"{where}: '{name}' is implausibly large ({info.file_size} bytes)")
    raw = z.read(info)
    f = io.BytesIO(raw)
    shape, fortran, dtype = read_npy_header(f)
    if dtype.hasobject:
        raise CorruptChunkError(f"{where}: '{name}' holds Python objects (pickled data is never loaded)")
    count = int(np.prod(shape, dtype=object))
    if len(raw) - f.tell() != count * dtype.itemsize:
        raise CorruptChunkError(f"{where}: '{name}' header says shape {shape} {dtype}, but holds "
                                f"{len(raw) - f.tell()} bytes")
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=f.tell())
    return arr.reshape(shape, order="F" if fortran else "C")


def parse_chunk_index(data: bytes, key: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(frame_number int64[], frame_time float64[])`` from index file bytes. Never unpickles."""
    if key.endswith(FRAME_LOG_EXT):
        n = len(data) // FRAME_LOG_DTYPE.itemsize  # a torn last record is ignored
        rec = np.frombuffer(data, dtype=FRAME_LOG_DTYPE, count=n)
        return rec["frame_number"].astype(np.int64), rec["frame_time"].astype(np.float64)
    if key.endswith(".yaml"):
        try:
            doc = yaml.safe_load(data)
            fn, ft = doc["frame_number"], doc["frame_time"]
        except RecursionError:
            raise CorruptChunkError(f"{where}: unreadable chunk index (nested too deeply)") from None
        except (yaml.YAMLError, KeyError, TypeError, IndexError, ValueError, AttributeError, OverflowError) as e:
            raise CorruptChunkError(f"{where}: unreadable chunk index ({e.__class__.__name__}: {e})") from None
        return _as_arrays(fn, ft, where)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            fn = _npz_member(z, "frame_number", where)
            ft = _npz_member(z, "frame_time", where)
    except CorruptChunkError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to parse untrusted bytes is a corrupt index
        # (BadZipFile, bad CRC, unknown compression, encrypted member, zlib.error, bad npy header, ...)
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

    def log_upto(self, frame_numbers, frame_times, n: int) -> None:
        """Append the records ``count .. n-1`` of the chunk's lists of frame numbers and times."""
        if n > self.count:
            self.append(frame_numbers[self.count:n], frame_times[self.count:n])

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
