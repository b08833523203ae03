"""The storage protocol shared by local and remote stores."""

from __future__ import annotations

import abc
import posixpath
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from ..errors import StoreFormatError


@dataclass(frozen=True)
class FileInfo:
    """What a listing or stat says about one entry."""

    name: str
    is_dir: bool
    size: int = 0
    mtime_ns: int = 0


def normalize_key(key: str) -> str:
    """Validate a relative key: no absolute paths, no ``..``, ``/`` separators."""
    if not isinstance(key, str):
        raise TypeError(f"storage key must be str, not {type(key).__name__}")
    key = key.replace("\\", "/")
    if key.startswith("/"):
        raise StoreFormatError(f"path {key!r} escapes the store folder")
    norm = posixpath.normpath(key) if key else ""
    if norm in (".", ""):
        return ""
    if norm == ".." or norm.startswith("../"):
        raise StoreFormatError(f"path {key!r} escapes the store folder")
    return norm


class Storage(abc.ABC):
    """Bytes in and out of one store folder."""

    #: human readable location (path or URL) of the store folder
    location: str

    @abc.abstractmethod
    def describe(self, key: str = "") -> str:
        """Path or URL of *key*, for messages and for ``filename``-style properties."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def isdir(self, key: str) -> bool: ...

    @abc.abstractmethod
    def listdir(self, key: str = "") -> list[FileInfo]:
        """Entries directly inside folder *key* (empty list if it does not exist)."""

    @abc.abstractmethod
    def stat(self, key: str) -> FileInfo:
        """Size and modification time; raises FileNotFoundError."""

    @abc.abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Whole file; raises FileNotFoundError."""

    def read_buffer(self, key: str, *, mapped: bool = False) -> memoryview:
        """Whole file as a writable bytes-like buffer (arrays made on it with ``np.frombuffer`` are
        writable); raises FileNotFoundError. *mapped*: the file may be mapped copy-on-write instead
        where the storage can and that pays (its pages are read when touched, writes never reach the
        file); only for files that are replaced, never rewritten in place, while in use (the store's
        files are written atomically)."""
        return memoryview(bytearray(self.read_bytes(key)))

    def read_rows(self, key: str, head, dst, stride: int, *, bottom_up: bool = False) -> int:
        """The file's first ``len(head)`` bytes into *head*, then its rows into the rows of the 2-D
        C-contiguous uint8 array *dst*: file row *i* starts at ``len(head) + i * stride`` and gives
        ``dst.shape[1]`` bytes, the file's last row going to ``dst[0]`` if *bottom_up*. Returns the
        bytes placed (fewer where the file is shorter); raises FileNotFoundError."""
        import numpy as np

        data = memoryview(self.read_bytes(key))
        hv = memoryview(head).cast("B")
        n = min(len(hv), len(data))
        hv[:n] = data[:n]
        rows, width = dst.shape
        avail = len(data) - len(hv)
        full = 0 if avail < width else min(rows, (avail - width) // stride + 1)  # rows wholly in the file
        if full:
            src = np.frombuffer(data, np.uint8, (full - 1) * stride + width, len(hv))
            src = np.lib.stride_tricks.as_strided(src, (full, width), (stride, 1))
            if bottom_up:
                dst[rows - full:][::-1] = src
            else:
                dst[:full] = src
            n += full * width
        if full < rows and avail > full * stride:  # the row the file ends in
            got = min(width, avail - full * stride)
            start = len(hv) + full * stride
            dst[rows - 1 - full if bottom_up else full, :got] = np.frombuffer(data, np.uint8, got, start)
            n += got
        return n

    def read_many(self, keys: list[str]) -> list[bytes | None]:
        """Whole files of several keys (None for one that does not exist), fetched concurrently where
        the storage can."""
        out: list[bytes | None] = []
        for key in keys:
            try:
                out.append(self.read_bytes(key))
            except FileNotFoundError:
                out.append(None)
        return out

    @abc.abstractmethod
    def read_range(self, key: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of a file."""

    @abc.abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A seekable binary file object for reading."""

    # --- writing (local stores only, remote stores are read-only) ---
    writable: bool = False

    def write_bytes(self, key: str, data: bytes, *, atomic: bool = True) -> None:
        raise PermissionError(f"{self.describe(key)}: store location is read-only")

    def write_parts(self, key: str, parts) -> None:
        """Write the concatenation of *parts* (bytes-like objects) atomically."""
        self.write_bytes(key, b"".join(bytes(p) for p in parts))

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create *key* holding *data* only if it does not exist; False if it does."""
        raise PermissionError(f"{self.describe(key)}: store location is read-only")

    def open_write(self, key: str, *, append: bool = False) -> BinaryIO:
        raise PermissionError(f"{self.describe(key)}: store location is read-only")

    def makedirs(self, key: str) -> None:
        raise PermissionError(f"{self.describe(key)}: store location is read-only")

    def remove(self, key: str) -> None:
        raise PermissionError(f"{self.describe(key)}: store location is read-only")

    def local_path(self, key: str = "") -> str | None:
        """An OS path for *key* if the store is on the local filesystem, else None."""
        return None

    def walk_files(self, key: str = "") -> Iterator[str]:
        """Every file key below folder *key*, recursively."""
        for info in self.listdir(key):
            child = posixpath.join(key, info.name) if key else info.name
            if info.is_dir:
                yield from self.walk_files(child)
            else:
                yield child
