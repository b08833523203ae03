"""A store's index files beyond the chunk indexes: the original's ``.index.sqlite`` (``save_index``)
and renumbering the frames (``reindex``)."""

from __future__ import annotations

import logging
import os

import numpy as np

from ..constants import STORE_INDEX_FILENAME
from ..format import extradata as _xd
from ..format.chunkindex import find_chunk_index, write_chunk_index
from ..format.sqlite_index import write_sqlite_index
from ..index_cache import build_index

log = logging.getLogger("imgstore")


class IndexFiles:
    """The index-file side of :class:`~.base.ImgStore` (owns no state)."""

    def _write_sqlite_index(self, key: str) -> None:
        if self._mode == "w":
            index, _, _ = build_index(self._storage, self._layout, use_cache=False, write_cache=False)
        else:
            index = self._index
        write_sqlite_index(self._storage, key, index, self._layout)

    def save_index(self, path: str | None = None) -> None:
        """Save the frame index as the original's ``.index.sqlite`` (or to *path*)."""
        if self._mode != "r":
            return
        if path is None:
            self._write_sqlite_index(STORE_INDEX_FILENAME)
        else:
            from ..storage import LocalStorage

            d, name = os.path.split(os.path.abspath(path))
            write_sqlite_index(LocalStorage(d), name, self._index, self._layout)

    def reindex(self) -> None:
        """Renumber the frames before the single frame_number 0 as negative numbers.

        Raises ValueError unless exactly one frame has frame_number 0. The old
        numbers are kept in each chunk index as ``_frame_number_before_reindex``;
        extra data records are renumbered too.
        """
        self._require_read()
        fn = self._index.frame_number
        zeros = np.flatnonzero(fn == 0)
        if len(zeros) != 1:
            raise ValueError(f"{len(zeros)} frame_number=0 found (should be 1)")
        zero_idx = int(zeros[0])
        new = np.array(fn, dtype=np.int64)
        new[:zero_idx] = np.arange(-zero_idx, 0)
        for c in self._index.chunks:
            start, stop = self._index.chunk_range(c)
            base = self._layout.index_base(c)
            old_key = find_chunk_index(self._storage, base)
            write_chunk_index(self._storage, base, new[start:stop], self._index.frame_time[start:stop],
                              extra={"_frame_number_before_reindex": np.asarray(fn[start:stop])})
            if old_key and old_key.endswith(".yaml"):
                self._storage.remove(old_key)
        for c in self._all_chunk_numbers():
            for is_motif, key in self._layout.extra_data_candidates(c):
                if is_motif or not self._storage.exists(key):
                    continue
                recs = _xd.parse_json_records(self._storage.read_bytes(key), self._storage.describe(key))
                if recs and any("frame_index" not in r for r in recs):
                    log.error("can not reindex extra-data on old format stores: %s", self._storage.describe(key))
                    continue
                for r in recs:
                    r["_frame_number_before_reindex"] = r["frame_number"]
                    fi = int(r["frame_index"])
                    if 0 <= fi < len(new):
                        r["frame_number"] = int(new[fi])
                text = "[" + ", ".join(_xd.encode_record(r) for r in recs) + "]"
                self._storage.write_bytes(key, text.encode("utf-8"))
        self._close_readers()
        self._open_index()
