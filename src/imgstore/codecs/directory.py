"""Chunks of a directory store: one folder per chunk, one file per frame."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .. import frame_memory
from ..color import ensure_color, ensure_grayscale
from ..errors import CorruptChunkError
from ..format.layout import Layout
from ..storage import Storage
from .base import ChunkReader, ChunkWriter
from .images import ImageFormat


class DirectoryChunkReader(ChunkReader):
    """Reads frame files of one chunk folder.

    When frames are read in order, the next ``readahead`` frames of the chunk
    are decoded (or, remote, fetched) on a thread pool while the caller works on the current one.
    """

    def __init__(self, storage: Storage, layout: Layout, chunk_n: int, fmt: ImageFormat, *, color: bool,
                 n_frames: int | None = None, readahead: int = 4) -> None:
        self.storage = storage
        self.layout = layout
        self.chunk_n = chunk_n
        self.fmt = fmt
        self.color = color
        self.n_frames = n_frames
        # uncompressed local frames: reading one is cheaper than handing it over from another thread
        ahead = fmt.compressed or storage.local_path() is None
        self._readahead = readahead if (ahead and n_frames) else 0
        self._pool: ThreadPoolExecutor | None = None
        #: local files read straight into their rows (None: decoded from the whole file)
        self._local_rows = fmt.row_layout is not None and storage.local_path() is not None
        self._rows = None
        self._ahead: dict[int, Future] = {}
        self._last = -2

    def _decode(self, position: int) -> np.ndarray:
        key = self.layout.frame_key(self.chunk_n, position)
        try:
            img = self._read_rows(key)
            data = None if img is not None else self.storage.read_buffer(key, mapped=self.color in self.fmt.mapped)
        except FileNotFoundError:
            raise CorruptChunkError(f"{self.storage.describe(key)}: frame file is missing") from None
        except OSError as e:
            raise CorruptChunkError(f"{self.storage.describe(key)}: cannot read frame file ({e.strerror or e})") \
                from None
        if img is not None:
            return img
        if self._local_rows:
            self._rows = self.fmt.row_layout(data)
        try:
            img = self.fmt.decode(data, self.color)
        except Exception as e:
            raise CorruptChunkError(
                f"{self.storage.describe(key)}: cannot decode {self.fmt.name} frame ({e.__class__.__name__}: {e})"
            ) from None
        if img.ndim not in (2, 3):
            raise CorruptChunkError(f"{self.storage.describe(key)}: frame has shape {img.shape}, not an image")
        if self.fmt.name == "npy":
            img = ensure_color(img) if self.color else ensure_grayscale(img)
        return img

    def _read_rows(self, key: str) -> np.ndarray | None:
        """Frame *key* read straight into its rows where the last file read told where they are
        (``ImageFormat.row_layout``) and this file's head is that one's; else None."""
        lay = self._rows
        if lay is None:
            return None
        head = bytearray(len(lay.head))
        rows = frame_memory.empty((lay.rows, lay.row_bytes))
        n = self.storage.read_rows(key, head, rows, lay.stride, bottom_up=lay.bottom_up)
        if n != len(head) + rows.size or head != lay.head:
            return None  # another kind of file, or a shorter one: read and decode it whole
        return self.fmt.from_rows(rows.reshape(lay.shape), self.color)

    def read(self, position: int) -> np.ndarray:
        fut = self._ahead.pop(position, None)
        img = fut.result() if fut is not None else self._decode(position)
        sequential = position == self._last + 1
        self._last = position
        if self._readahead:
            if not sequential:
                for f in self._ahead.values():
                    f.cancel()
                self._ahead.clear()
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(_default_workers(), thread_name_prefix="imgstore-decode")
                for p in range(position + 1, min(position + 1 + self._readahead, self.n_frames)):
                    if p not in self._ahead:
                        self._ahead[p] = self._pool.submit(self._decode, p)
        return img

    def close(self) -> None:
        for f in self._ahead.values():
            f.cancel()
        self._ahead.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class DirectoryChunkWriter(ChunkWriter):
    """Writes one file per frame into a chunk folder.

    Compressed formats are encoded on a small thread pool (the codecs release
    the GIL), so ``write`` returns while earlier frames are still encoding; at
    most ``max_pending`` frames are in flight. ``flush``/``close`` wait for all.
    """

    def __init__(self, storage: Storage, layout: Layout, chunk_n: int, fmt: ImageFormat,
                 workers: int | None = None, max_pending: int = 8) -> None:
        self.storage = storage
        self.layout = layout
        self.chunk_n = chunk_n
        self.fmt = fmt
        self.position = 0
        storage.makedirs(layout.chunk_key(chunk_n))
        self._threaded = fmt.name != "npy"  # raw frames are I/O bound: write directly
        self._pool = ThreadPoolExecutor(workers or _default_workers(), thread_name_prefix="imgstore-encode") \
            if self._threaded else None
        self._pending: list[Future] = []
        self._max_pending = max_pending

    def _write_one(self, key: str, img: np.ndarray) -> None:
        self.storage.write_bytes(key, self.fmt.encode(img), atomic=False)

    def write(self, img: np.ndarray) -> None:
        key = self.layout.frame_key(self.chunk_n, self.position)
        self.position += 1
        if self._pool is None:
            self._write_one(key, img)
            return
        self._pending.append(self._pool.submit(self._write_one, key, np.array(img, copy=True)))
        if len(self._pending) >= self._max_pending:
            self._pending.pop(0).result()

    def durable_count(self) -> int:
        while self._pending and self._pending[0].done():
            self._pending.pop(0).result()  # raises the encoder's error, if any
        return self.position - len(self._pending)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
