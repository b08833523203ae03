"""One error hierarchy for imgstore.

Every error subclasses :class:`ImgStoreError` *and* the builtin exception
the original imgstore raised in the same situation, so existing
``except ValueError`` / ``except EOFError`` / ``except IOError`` code keeps
working.
"""

from __future__ import annotations


class ImgStoreError(Exception):
    """Base class of every error raised by imgstore."""


class StoreNotFoundError(ImgStoreError, ValueError):
    """The path does not hold a store (no ``metadata.yaml``)."""


class StoreFormatError(ImgStoreError, ValueError):
    """A store file exists but cannot be understood (bad YAML, missing keys, unknown format)."""


class UnsupportedFormatError(ImgStoreError, ValueError):
    """The requested format, class or mode is not supported by this installation."""


class FrameNotFoundError(ImgStoreError, ValueError):
    """No frame matches the requested frame number, index or time."""


class EndOfStoreError(ImgStoreError, EOFError):
    """Sequential reading ran past the last frame."""


class CorruptChunkError(ImgStoreError, OSError):
    """A chunk's data or index exists but cannot be decoded."""


class StoreLockedError(ImgStoreError, RuntimeError):
    """Another live writer holds the store."""


class StoreExistsError(ImgStoreError, FileExistsError):
    """A new store would overwrite an existing one."""


class RemoteStorageError(ImgStoreError, OSError):
    """A remote store's server failed, stalled or answered something unusable."""


class OptionalDependencyError(ImgStoreError, ImportError):
    """A feature needs a package that is not installed."""


__all__ = [
    "ImgStoreError",
    "StoreNotFoundError",
    "StoreFormatError",
    "UnsupportedFormatError",
    "FrameNotFoundError",
    "EndOfStoreError",
    "CorruptChunkError",
    "StoreLockedError",
    "StoreExistsError",
    "RemoteStorageError",
    "OptionalDependencyError",
]
