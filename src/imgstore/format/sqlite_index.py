"""The original's optional ``.index.sqlite`` (written by ``close(save_index=True)``)."""

from __future__ import annotations

import os
import sqlite3
import tempfile

import numpy as np

from ..storage import Storage

SQLITE_INDEX_VERSION = "1"


def write_sqlite_index(storage: Storage, key: str, index, layout) -> None:
    """Write *index* in the original's schema, so ``ImgStoreIndex.new_from_file`` reads it."""
    fd, tmp = tempfile.mkstemp(suffix=".sqlite")
    os.close(fd)
    try:
        db = sqlite3.connect(tmp)
        with db:
            c = db.cursor()
            c.execute("CREATE TABLE frames (chunk INTEGER, frame_idx INTEGER, frame_number INTEGER, frame_time REAL)")
            c.execute("CREATE TABLE chunks (chunk INTEGER, chunk_path TEXT)")
            c.execute("CREATE TABLE index_information (name TEXT, value TEXT)")
            c.execute("CREATE TABLE summary (name TEXT, value REAL)")
            c.execute("INSERT into index_information VALUES (?, ?)", ("version", SQLITE_INDEX_VERSION))
            c.execute("CREATE INDEX chunk_index ON frames (chunk, frame_idx);")
            for ci, chunk_n in enumerate(index.chunks):
                start, stop = int(index.chunk_starts[ci]), int(index.chunk_starts[ci + 1])
                rows = zip([chunk_n] * (stop - start), range(stop - start),
                           index.frame_number[start:stop].tolist(), index.frame_time[start:stop].tolist())
                c.executemany("INSERT INTO frames VALUES (?,?,?,?)", rows)
                c.execute("INSERT INTO chunks VALUES (?, ?)", (chunk_n, storage.describe(layout.index_base(chunk_n))))
            n = index.frame_count
            summary = {
                "frame_time_min": index.frame_time_min if n else np.inf,
                "frame_time_max": index.frame_time_max if n else -np.inf,
                "frame_min": index.frame_min if n else np.inf,
                "frame_max": index.frame_max if n else -np.inf,
            }
            for k, v in summary.items():
                c.execute("INSERT INTO summary VALUES (?,?)", (k, float(v)))
        db.close()
        with open(tmp, "rb") as f:
            storage.write_bytes(key, f.read())
    finally:
        os.unlink(tmp)
