"""Read-only storage on any fsspec filesystem (http, s3, memory, ...)."""

from __future__ import annotations

import posixpath
import re
from typing import BinaryIO

from ..errors import RemoteStorageError
from .base import FileInfo, Storage, normalize_key

#: seconds before a remote request that makes no progress is abandoned
DEFAULT_TIMEOUT = 30.0

_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")


def is_url(location: str) -> bool:
    """True for ``scheme://...`` locations."""
    return bool(_URL_RE.match(str(location)))


class FsspecStorage(Storage):
    """A store folder behind an fsspec URL. Read-only except for ``memory://``."""

    def __init__(self, url: str, *, create: bool = False, timeout: float = DEFAULT_TIMEOUT,
                 **storage_options) -> None:
        import fsspec

        self.location = url.rstrip("/")
        protocol = self.location.split("://", 1)[0].lower()
        if protocol in ("http", "https") and "client_kwargs" not in storage_options:
            import aiohttp

            storage_options["client_kwargs"] = {"timeout": aiohttp.ClientTimeout(total=None, connect=timeout,
                                                                                  sock_read=timeout)}
        self.fs, self.root = fsspec.core.url_to_fs(self.location, **storage_options)
        self.root = self.root.rstrip("/")
        self.writable = getattr(self.fs, "protocol", None) in ("memory", ("memory",))
        if create and self.writable:
            self.fs.makedirs(self.root, exist_ok=True)

    def _path(self, key: str) -> str:
        key = normalize_key(key)
        return posixpath.join(self.root, key) if key else self.root

    def describe(self, key: str = "") -> str:
        key = normalize_key(key)
        return f"{self.location}/{key}" if key else self.location

    def _error(self, key: str, e: Exception) -> Exception:
        """What callers get for error *e* on *key*: a missing file or a refusal as it is; network,
        server and protocol errors of any fsspec backend as a RemoteStorageError naming the URL."""
        if isinstance(e, (FileNotFoundError, NotADirectoryError, PermissionError, RemoteStorageError)):
            return e
        return RemoteStorageError(f"{self.describe(key)}: {e.__class__.__name__}: {e}")

    def _wrap(self, key: str, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except Exception as e:
            err = self._error(key, e)
            if err is e:
                raise
            raise err from None

    def exists(self, key: str) -> bool:
        return bool(self._wrap(key, self.fs.exists, self._path(key)))

    def isdir(self, key: str) -> bool:
        return bool(self._wrap(key, self.fs.isdir, self._path(key)))

    def listdir(self, key: str = "") -> list[FileInfo]:
        try:
            entries = self._wrap(key, self.fs.ls, self._path(key), detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        out = []
        base = self._path(key).rstrip("/")
        for e in entries:
            name = e["name"].rstrip("/")
            if name == base:
                continue
            out.append(FileInfo(posixpath.basename(name), e.get("type") == "directory", int(e.get("size") or 0)))
        return out

    def stat(self, key: str) -> FileInfo:
        info = self._wrap(key, self.fs.info, self._path(key))
        mtime = info.get("mtime") or info.get("LastModified") or 0
        try:
            mtime_ns = int(float(mtime.timestamp() if hasattr(mtime, "timestamp") else mtime) * 1e9)
        except (TypeError, ValueError):
            mtime_ns = 0
        return FileInfo(posixpath.basename(key), info.get("type") == "directory", int(info.get("size") or 0), mtime_ns)

    def read_bytes(self, key: str) -> bytes:
        return self._wrap(key, self.fs.cat_file, self._path(key))

    def read_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        # one call: fsspec's async filesystems (http, s3, ...) run the requests concurrently
        got = self._wrap(keys[0], self.fs.cat_ranges, [self._path(k) for k in keys], None, None, on_error="return")
        out: list[bytes | None] = []
        for key, data in zip(keys, got):
            if isinstance(data, FileNotFoundError):
                out.append(None)
            elif isinstance(data, Exception):
                raise self._error(key, data)
            else:
                out.append(data)
        return out

    def read_range(self, key: str, start: int, stop: int) -> bytes:
        return self._wrap(key, self.fs.cat_file, self._path(key), start=start, end=stop)

    def open_read(self, key: str) -> BinaryIO:
        return self._wrap(key, self.fs.open, self._path(key), "rb")

    def write_bytes(self, key: str, data: bytes, *, atomic: bool = True) -> None:
        if not self.writable:
            return super().write_bytes(key, data)
        self.fs.pipe_file(self._path(key), data)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        if not self.writable:
            return super().create_exclusive(key, data)
        if self.exists(key):
            return False
        self.write_bytes(key, data)
        return True

    def open_write(self, key: str, *, append: bool = False) -> BinaryIO:
        if not self.writable:
            return super().open_write(key)
        return self.fs.open(self._path(key), "ab" if append else "wb")

    def makedirs(self, key: str) -> None:
        if not self.writable:
            return super().makedirs(key)
        self.fs.makedirs(self._path(key), exist_ok=True)

    def remove(self, key: str) -> None:
        if not self.writable:
            return super().remove(key)
        self.fs.rm(self._path(key))

    def __repr__(self) -> str:
        return f"FsspecStorage({self.location!r})"
