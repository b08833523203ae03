"""Chunks of a directory store: one folder per chunk, one file per frame."""

from __future__ import annotations

import numpy as np

from ..color import ensure_color, ensure_grayscale
from ..errors import CorruptChunkError
from ..format.layout import Layout
from ..storage import Storage
from .base import ChunkReader, ChunkWriter
from .images import ImageFormat


class DirectoryChunkReader(ChunkReader):
    """Reads frame files of one chunk folder."""

    def __init__(self, storage: Storage, layout: Layout, chunk_n: int, fmt: ImageFormat, *, color: bool,
                 dtype) -> None:
        self.storage = storage
        self.layout = layout
        self.chunk_n = chunk_n
        self.fmt = fmt
        self.color = color
        self.dtype = np.dtype(dtype)

    def read(self, position: int) -> np.ndarray:
        key = self.layout.frame_key(self.chunk_n, position)
        try:
            data = self.storage.read_bytes(key)
        except FileNotFoundError:
            raise CorruptChunkError(f"{self.storage.describe(key)}: frame file is missing") from None
        try:
            img = self.fmt.decode(data, self.color)
        except Exception as e:
            raise CorruptChunkError(
                f"{self.storage.describe(key)}: cannot decode {self.fmt.name} frame ({e.__class__.__name__}: {e})"
            ) from None
        if self.fmt.name == "npy":
            img = ensure_color(img) if self.color else ensure_grayscale(img)
        return img


class DirectoryChunkWriter(ChunkWriter):
    """Writes one file per frame into a chunk folder."""

    def __init__(self, storage: Storage, layout: Layout, chunk_n: int, fmt: ImageFormat) -> None:
        self.storage = storage
        self.layout = layout
        self.chunk_n = chunk_n
        self.fmt = fmt
        self.position = 0
        storage.makedirs(layout.chunk_key(chunk_n))

    def write(self, img: np.ndarray) -> None:
        key = self.layout.frame_key(self.chunk_n, self.position)
        self.storage.write_bytes(key, self.fmt.encode(img), atomic=False)
        self.position += 1

    def close(self) -> None:
        pass
