"""The original's ``imgstore.index.ImgStoreIndex``, as a FrameIndex (numpy arrays, no live sqlite).

It reads and writes the original's ``.index.sqlite`` schema and builds from
``(chunk_n, chunk path without extension)`` pairs as the original did; being a
FrameIndex, it can be handed to ``new_for_filename(path, index=idx)``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
from typing import Iterable

import numpy as np

from .errors import CorruptChunkError
from .format.chunkindex import parse_chunk_index
from .format.sqlite_index import SQLITE_INDEX_VERSION
from .frame_index import FrameIndex

_SCHEMA = (
    "CREATE TABLE frames (chunk INTEGER, frame_idx INTEGER, frame_number INTEGER, frame_time REAL)",
    "CREATE TABLE chunks (chunk INTEGER, chunk_path TEXT)",
    "CREATE TABLE index_information (name TEXT, value TEXT)",
    "CREATE TABLE summary (name TEXT, value REAL)",
    "CREATE INDEX chunk_index ON frames (chunk, frame_idx);",
)

_ROW = np.dtype([("chunk", np.int64), ("frame_number", np.int64), ("frame_time", np.float64)])


def _load_index(path_without_extension: str) -> dict[str, list]:
    """``{'frame_number': [...], 'frame_time': [...]}`` from ``<path>.npz`` or ``<path>.yaml``
    (FileNotFoundError if neither exists)."""
    for ext in (".npz", ".yaml"):
        path = path_without_extension + ext
        if os.path.exists(path):
            with open(path, "rb") as f:
                fn, ft = parse_chunk_index(f.read(), ext, path)
            return {"frame_number": fn.tolist(), "frame_time": ft.tolist()}
    raise FileNotFoundError(f"could not find index {path_without_extension} (.npz or .yaml)")


def _read_database(db: sqlite3.Connection) -> tuple[FrameIndex, dict[int, str]]:
    cur = db.cursor()
    try:
        cur.execute("SELECT value FROM index_information WHERE name = ?", ("version",))
        row = cur.fetchone()
    except sqlite3.DatabaseError as e:
        raise CorruptChunkError(f"not an imgstore .index.sqlite ({e})") from None
    if row is None or str(row[0]) != SQLITE_INDEX_VERSION:
        raise CorruptChunkError(f"incorrect index version: {row and row[0]!r} vs {SQLITE_INDEX_VERSION!r}")
    cur.execute("SELECT chunk, frame_number, frame_time FROM frames ORDER BY rowid")
    nan = float("nan")  # sqlite stores a NaN frame time as NULL
    rows = np.fromiter(((c, fn, nan if ft is None else ft) for c, fn, ft in cur), dtype=_ROW)
    order = np.argsort(rows["chunk"], kind="stable")  # frames of a chunk keep their order
    rows = rows[order]
    ids, starts = np.unique(rows["chunk"], return_index=True)
    bounds = list(starts) + [len(rows)]
    chunks = [(int(c), rows["frame_number"][a:b], rows["frame_time"][a:b])
              for c, a, b in zip(ids, bounds[:-1], bounds[1:])]
    cur.execute("SELECT chunk, chunk_path FROM chunks ORDER BY chunk")
    paths = {int(c): str(p) for c, p in cur}
    return FrameIndex.from_chunks(chunks), paths


class ImgStoreIndex(FrameIndex):
    """Frame index of a store with the original's API: ``new_from_file``, ``new_from_chunks``,
    ``chunks``, ``get_chunk_metadata``, ``get_all_metadata``, ``find_chunk``, ``find_chunk_nearest``,
    ``frame_count``, ``frame_min``/``frame_max``, ``frame_time_min``/``frame_time_max``, ``to_file``.

    ``ImgStoreIndex(db)`` reads a sqlite3 connection holding the original's schema.
    """

    __slots__ = ("_chunk_paths",)

    VERSION = SQLITE_INDEX_VERSION
    log = logging.getLogger("imgstore.index")

    def __init__(self, db=None, *arrays, **kwargs) -> None:
        if isinstance(db, sqlite3.Connection):
            index, paths = _read_database(db)
            super().__init__(index.frame_number, index.frame_time, index.chunk_ids, index.chunk_starts)
            self._chunk_paths = paths
            return
        if db is None:
            raise TypeError("ImgStoreIndex needs a sqlite3 connection; or use ImgStoreIndex.new_from_file(path) "
                            "or ImgStoreIndex.new_from_chunks(chunk_n_and_chunk_paths)")
        super().__init__(db, *arrays, **kwargs)  # FrameIndex's arrays (from_chunks, from_arrays)
        self._chunk_paths = {}

    @classmethod
    def create_database(cls, conn: sqlite3.Connection) -> None:
        """Create the original's empty tables in *conn*."""
        c = conn.cursor()
        for sql in _SCHEMA:
            c.execute(sql)
        c.execute("INSERT into index_information VALUES (?, ?)", ("version", cls.VERSION))
        conn.commit()

    @classmethod
    def new_from_file(cls, path: str | os.PathLike) -> "ImgStoreIndex":
        """Read an ``.index.sqlite`` (written by ``store.close(save_index=True)`` or ``save_index()``)."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such index file")
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return cls(db)
        finally:
            db.close()

    @classmethod
    def new_from_chunks(cls, chunk_n_and_chunk_paths: Iterable[tuple[int, str]]) -> "ImgStoreIndex":
        """Build from ``(chunk_n, path without extension)`` pairs (``store._chunk_n_and_chunk_paths``).

        Chunks without an index file, empty ones and unreadable ones are skipped (logged), as by the original.
        """
        chunks, paths = [], {}
        for chunk_n, chunk_path in sorted(chunk_n_and_chunk_paths, key=lambda x: x[0]):
            try:
                md = _load_index(chunk_path)
            except CorruptChunkError:
                cls.log.error("corrupt chunk %s", chunk_path, exc_info=True)
                continue
            except FileNotFoundError:
                cls.log.warning("missing index for chunk %s", chunk_n)
                continue
            if md["frame_number"]:
                chunks.append((int(chunk_n), np.asarray(md["frame_number"]), np.asarray(md["frame_time"])))
                paths[int(chunk_n)] = chunk_path
        index = cls.from_chunks(chunks)
        index._chunk_paths = paths
        return index

    @property
    def chunks(self) -> tuple[int, ...]:
        """Numbers of the chunks that hold frames."""
        return tuple(int(c) for c in self.chunk_ids)

    @property
    def frame_time_min(self) -> float:
        return self.times.min if self.frame_count else 0.0

    @property
    def frame_time_max(self) -> float:
        return self.times.max if self.frame_count else 0.0

    def to_file(self, path: str | os.PathLike) -> None:
        """Write the index as the original's ``.index.sqlite`` at *path* (replacing it)."""
        path = os.fspath(path)
        fd, tmp = tempfile.mkstemp(suffix=".sqlite", dir=os.path.dirname(os.path.abspath(path)))
        os.close(fd)
        os.unlink(tmp)  # sqlite creates it
        try:
            db = sqlite3.connect(tmp)
            try:
                self._fill(db)
            finally:
                db.close()
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _fill(self, db: sqlite3.Connection) -> None:
        self.create_database(db)
        c = db.cursor()
        for ci, chunk_n in enumerate(self.chunks):
            start, stop = int(self.chunk_starts[ci]), int(self.chunk_starts[ci + 1])
            c.executemany("INSERT INTO frames VALUES (?,?,?,?)",
                          zip([chunk_n] * (stop - start), range(stop - start),
                              self.frame_number[start:stop].tolist(), self.frame_time[start:stop].tolist()))
            c.execute("INSERT INTO chunks VALUES (?, ?)", (chunk_n, self._chunk_paths.get(chunk_n, "%06d" % chunk_n)))
        n = self.frame_count
        summary = (("frame_time_min", self.times.min if n else np.inf),
                   ("frame_time_max", self.times.max if n else -np.inf),
                   ("frame_min", self.frame_min if n else np.inf), ("frame_max", self.frame_max if n else -np.inf))
        c.executemany("INSERT INTO summary VALUES (?,?)", [(k, float(v)) for k, v in summary])
        db.commit()
