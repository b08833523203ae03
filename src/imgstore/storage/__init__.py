"""Storage layer: bytes in and out of a store location.

A :class:`Storage` is rooted at a store folder (a local path or an fsspec
URL) and is addressed with *relative* keys using ``/`` separators, e.g.
``"000000/index.npz"``. Nothing else in imgstore opens files by path.
"""

from __future__ import annotations

from .base import Storage, FileInfo, normalize_key
from .local import LocalStorage
from .remote import FsspecStorage, is_url


def open_storage(location: str, *, create: bool = False, storage_options: dict | None = None) -> Storage:
    """Return the storage for a local path or an fsspec URL (*storage_options* go to fsspec)."""
    if is_url(location) and not location.startswith("file://"):
        return FsspecStorage(location, create=create, **(storage_options or {}))
    if location.startswith("file://"):
        location = location[len("file://"):]
    return LocalStorage(location, create=create)


__all__ = ["Storage", "FileInfo", "LocalStorage", "FsspecStorage", "open_storage", "is_url", "normalize_key"]
