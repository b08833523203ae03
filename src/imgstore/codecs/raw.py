"""Raw chunks: every frame of a chunk back to back in one memory-mappable file.

The file is a standard ``.npy`` whose header is padded to 4 KiB, so
``np.load(path, mmap_mode='r')`` opens it and frame data is page aligned.
The header's frame count is rewritten on every flush, but readers take the
count from the file size (complete frames only), so a chunk cut short by a
crash is readable up to its last complete frame.

Frame ranges come back as zero-copy read-only views of the mapping; lists of
frames are gathered with ``pread`` into one output array, so neither the span
between frames nor read-ahead around them is read.
"""

from __future__ import annotations

import ast
import os
from typing import Sequence

import numpy as np

from ..errors import CorruptChunkError
from ..storage import Storage
from .base import ChunkReader, ChunkWriter

HEADER_SIZE = 4096
MAGIC = b"\x93NUMPY\x01\x00"
FRAMES_FILENAME = "frames.npy"


def encode_header(n_frames: int, frame_shape: tuple[int, ...], dtype) -> bytes:
    """A 4 KiB ``.npy`` (version 1.0) header for ``n_frames`` frames."""
    dt = np.dtype(dtype)
    shape = (int(n_frames),) + tuple(int(x) for x in frame_shape)
    d = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (dt.str, shape)
    pad = HEADER_SIZE - len(MAGIC) - 2 - len(d) - 1
    if pad < 0:
        raise ValueError("raw chunk header does not fit in 4 KiB")
    text = (d + " " * pad + "\n").encode("latin1")
    return MAGIC + len(text).to_bytes(2, "little") + text


def decode_header(head: bytes, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """``(shape, dtype)`` from a raw chunk's header."""
    if len(head) < 10 or head[:6] != MAGIC[:6]:
        raise CorruptChunkError(f"{where}: not a raw chunk (.npy magic missing)")
    n = int.from_bytes(head[8:10], "little")
    try:
        d = ast.literal_eval(head[10: 10 + n].decode("latin1"))
        shape = tuple(int(x) for x in d["shape"])
        dt = np.dtype(d["descr"])
        if d.get("fortran_order") or dt.hasobject or len(shape) < 3:
            raise ValueError("unsupported layout")
    except (ValueError, SyntaxError, KeyError, TypeError) as e:
        raise CorruptChunkError(f"{where}: unreadable raw chunk header ({e})") from None
    if 10 + n != HEADER_SIZE:
        raise CorruptChunkError(f"{where}: raw chunk header is {10 + n} bytes, expected {HEADER_SIZE}")
    return shape, dt


class RawChunkWriter(ChunkWriter):
    """Appends frames to ``NNNNNN/frames.npy``."""

    def __init__(self, storage: Storage, chunk_key: str, frame_shape: tuple[int, ...], dtype) -> None:
        self.storage = storage
        self.key = f"{chunk_key}/{FRAMES_FILENAME}"
        self.frame_shape = tuple(frame_shape)
        self.dtype = np.dtype(dtype)
        self.n = 0
        storage.makedirs(chunk_key)
        self._fp = storage.open_write(self.key)
        self._fp.write(encode_header(0, self.frame_shape, self.dtype))

    def write(self, img: np.ndarray) -> None:
        self._fp.write(np.ascontiguousarray(img, dtype=self.dtype).data)
        self._fp.flush()
        self.n += 1

    def durable_count(self) -> int:
        return self.n

    def _write_header(self) -> None:
        pos = self._fp.tell()
        self._fp.seek(0)
        self._fp.write(encode_header(self.n, self.frame_shape, self.dtype))
        self._fp.seek(pos)

    def flush(self) -> None:
        self._write_header()
        self._fp.flush()

    def close(self) -> None:
        if self._fp is not None:
            self._write_header()
            self._fp.close()
            self._fp = None


class RawChunkReader(ChunkReader):
    """Frames of a raw chunk, from a long-lived read-only memory map (local) or byte ranges (remote)."""

    def __init__(self, storage: Storage, chunk_key: str, frame_shape: tuple[int, ...] | None = None,
                 dtype=None, *, key: str | None = None, offset: int | None = None) -> None:
        self.storage = storage
        self.key = key or f"{chunk_key}/{FRAMES_FILENAME}"
        self.where = storage.describe(self.key)
        try:
            size = storage.stat(self.key).size
            head = storage.read_range(self.key, 0, HEADER_SIZE) if offset is None else b""
        except FileNotFoundError:
            raise CorruptChunkError(f"{self.where}: raw chunk file is missing") from None
        except OSError as e:
            raise CorruptChunkError(f"{self.where}: cannot read raw chunk ({e.strerror or e})") from None
        if offset is None:
            shape, dt = decode_header(head, self.where)
            frame_shape = shape[1:] if frame_shape is None else tuple(frame_shape)
            dtype = dt if dtype is None else dtype
            if tuple(frame_shape) != tuple(shape[1:]) or np.dtype(dtype) != dt:
                raise CorruptChunkError(f"{self.where}: holds {dt} frames of shape {shape[1:]}, store metadata "
                                        f"says {np.dtype(dtype)} {tuple(frame_shape)}")
            offset = HEADER_SIZE
        self.offset = offset
        self.frame_shape = tuple(int(x) for x in frame_shape)
        self.dtype = np.dtype(dtype)
        self.frame_bytes = int(np.prod(self.frame_shape)) * self.dtype.itemsize
        self.n_frames = max(0, (size - offset) // self.frame_bytes) if self.frame_bytes else 0
        self._path = storage.local_path(self.key)
        self._mm: np.ndarray | None = None
        self._fd: int | None = None

    def __len__(self) -> int:
        return self.n_frames

    def _check(self, position: int) -> int:
        p = int(position)
        if not 0 <= p < self.n_frames:
            raise CorruptChunkError(f"{self.where}: no frame {p} (the file holds {self.n_frames} complete frames)")
        return p

    def _map(self) -> np.ndarray:
        if self._mm is None:
            try:
                self._mm = np.memmap(self._path, dtype=self.dtype, mode="r", offset=self.offset,
                                     shape=(self.n_frames,) + self.frame_shape)
            except (OSError, ValueError) as e:
                raise CorruptChunkError(f"{self.where}: cannot map raw chunk ({e})") from None
        return self._mm

    def read_range(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` as a read-only view (zero-copy on local storage)."""
        start, stop = self._check(start), self._check(stop - 1) + 1
        if self._path is not None:
            return self._map()[start:stop]
        data = self.storage.read_range(self.key, self.offset + start * self.frame_bytes,
                                       self.offset + stop * self.frame_bytes)
        out = np.frombuffer(data, dtype=self.dtype).reshape((stop - start,) + self.frame_shape)
        return out

    def read(self, position: int) -> np.ndarray:
        return self.read_many([position])[0]

    def read_many(self, positions: Sequence[int]) -> np.ndarray:
        """Copies of the frames at *positions*, each read with one ``pread`` (no read-ahead of the gaps)."""
        pos = [self._check(p) for p in positions]
        out = np.empty((len(pos),) + self.frame_shape, dtype=self.dtype)
        if self._path is None:
            for k, p in enumerate(pos):
                out[k] = self.read_range(p, p + 1)[0]
            return out
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDONLY)
            flat = out.reshape(len(pos), -1).view(np.uint8)
            for k, p in enumerate(pos):
                got = os.preadv(self._fd, [memoryview(flat[k])], self.offset + p * self.frame_bytes)
                if got != self.frame_bytes:
                    raise CorruptChunkError(f"{self.where}: frame {p} is truncated")
        except OSError as e:
            if isinstance(e, CorruptChunkError):
                raise
            raise CorruptChunkError(f"{self.where}: cannot read raw chunk ({e.strerror or e})") from None
        return out

    def close(self) -> None:
        self._mm = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
