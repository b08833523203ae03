"""Storage on the local filesystem."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from typing import BinaryIO

import numpy as np

from .. import frame_memory

try:
    from .._pixels import map_private as _map_private, pread_rows as _pread_rows
except ImportError:  # pragma: no cover - no compiled extension, or Windows
    _map_private = _pread_rows = None

#: files smaller than this are read: mapping and unmapping costs more than copying them
_MAP_FROM = 1 << 18
from .base import FileInfo, Storage, normalize_key


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class LocalStorage(Storage):
    """A store folder on a local (or mounted) filesystem."""

    @property
    def writable(self) -> bool:
        """False for a folder marked read-only (no write bits), even when root could write to it."""
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            return True
        return bool(st.st_mode & 0o222) and os.access(self.root, os.W_OK)

    def __init__(self, root: str, *, create: bool = False) -> None:
        root = os.fspath(root)
        if create:
            os.makedirs(root, exist_ok=True)
        self.root = root
        self.location = root

    def _path(self, key: str) -> str:
        key = normalize_key(key)
        return os.path.join(self.root, *key.split("/")) if key else self.root

    def describe(self, key: str = "") -> str:
        return self._path(key)

    def local_path(self, key: str = "") -> str:
        return self._path(key)

    def exists(self, key: str) -> bool:
        return os.path.exists(self._path(key))

    def isdir(self, key: str) -> bool:
        return os.path.isdir(self._path(key))

    def listdir(self, key: str = "") -> list[FileInfo]:
        try:
            with os.scandir(self._path(key)) as it:
                out = []
                for e in it:
                    try:
                        is_dir = e.is_dir()
                    except OSError:
                        is_dir = False
                    out.append(FileInfo(e.name, is_dir))
                return out
        except (FileNotFoundError, NotADirectoryError):
            return []

    def stat(self, key: str) -> FileInfo:
        p = self._path(key)
        st = os.stat(p)
        return FileInfo(os.path.basename(p), os.path.isdir(p), st.st_size, st.st_mtime_ns)

    def _open_regular(self, key: str) -> BinaryIO:
        """Open for reading, refusing anything but a regular file (a FIFO would block forever)."""
        path = self._path(key)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", path)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", path)
            if hasattr(os, "set_blocking"):
                os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def read_bytes(self, key: str) -> bytes:
        with self._open_regular(key) as f:
            return f.read()

    def read_buffer(self, key: str, *, mapped: bool = False) -> memoryview:
        with self._open_regular(key) as f:
            size = os.fstat(f.fileno()).st_size
            if mapped and _map_private is not None and size >= _MAP_FROM:
                try:
                    return memoryview(_map_private(f.fileno(), size))
                except OSError:  # a file system that cannot map files, or no address space left
                    pass
            buf = frame_memory.empty(size)  # not zeroed first, unlike a bytearray; memory used again
            n = f.readinto(buf)  # one copy, from the page cache into the buffer
            return memoryview(buf)[:n]  # shorter if the file shrank meanwhile

    def read_rows(self, key: str, head, dst: np.ndarray, stride: int, *, bottom_up: bool = False) -> int:
        if _pread_rows is None or dst.ndim != 2 or not dst.flags.c_contiguous:  # pragma: no cover
            return super().read_rows(key, head, dst, stride, bottom_up=bottom_up)
        with self._open_regular(key) as f:  # one preadv of the header and the rows: one copy
            return _pread_rows(f.fileno(), head, dst, dst.shape[0], dst.shape[1], stride, bottom_up)

    def read_range(self, key: str, start: int, stop: int) -> bytes:
        with self._open_regular(key) as f:
            f.seek(start)
            return f.read(max(0, stop - start))

    def open_read(self, key: str) -> BinaryIO:
        return self._open_regular(key)

    def write_bytes(self, key: str, data: bytes, *, atomic: bool = True) -> None:
        path = self._path(key)
        if not atomic:
            with open(path, "wb") as f:
                f.write(data)
            return
        self.write_parts(key, [data])

    def write_parts(self, key: str, parts) -> None:
        path = self._path(key)
        d = os.path.dirname(path) or "."
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files: use the mode open() would give
            with os.fdopen(fd, "wb") as f:
                for part in parts:
                    f.write(part)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def create_exclusive(self, key: str, data: bytes) -> bool:
        try:
            fd = os.open(self._path(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True

    def open_write(self, key: str, *, append: bool = False) -> BinaryIO:
        return open(self._path(key), "ab" if append else "wb")

    def makedirs(self, key: str) -> None:
        os.makedirs(self._path(key), exist_ok=True)

    def remove(self, key: str) -> None:
        p = self._path(key)
        if os.path.isdir(p):
            os.rmdir(p)
        else:
            os.unlink(p)

    def __repr__(self) -> str:
        return f"LocalStorage({self.root!r})"
