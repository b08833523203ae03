"""Reading a store's extra data: the ``add_extra_data`` records and Motif's ``.extra_data.json`` /
``.extra_data.h5`` files of every chunk, as one pandas DataFrame."""

from __future__ import annotations

import logging

from ..constants import EXTRA_DATA_FILE_EXTENSIONS
from ..errors import CorruptChunkError
from ..format import extradata as _xd

log = logging.getLogger("imgstore")


class ExtraDataReading:
    """The extra-data side of :class:`~.base.ImgStore` (owns no state)."""

    def _extra_data_chunk_numbers(self) -> list[int]:
        """Chunks that may hold extra data: every chunk, and those with extra data but no frames."""
        chunks = set(self._all_chunk_numbers())
        if self._layout.kind == "video":
            chunks.update(self._layout.extra_data_chunks_in(self._storage.listdir("")))
        return sorted(chunks)

    def _iter_extra_data_files(self, extensions=EXTRA_DATA_FILE_EXTENSIONS):
        for c in self._extra_data_chunk_numbers():
            cands = self._layout.extra_data_candidates(c)
            motif = [(m, k) for m, k in cands if m and any(k.endswith(e) for e in extensions)]
            found_motif = False
            for m, k in motif:
                if self._storage.exists(k):
                    yield True, k
                    found_motif = True
                    break
            if found_motif:
                continue
            for m, k in cands:
                if not m and any(k.endswith(e) for e in extensions) and self._storage.exists(k):
                    yield False, k

    @property
    def has_extra_data(self) -> bool:
        return any(True for _ in self._iter_extra_data_files())

    def find_extra_data_files(self, extensions=EXTRA_DATA_FILE_EXTENSIONS) -> list[str]:
        """Paths of the store's extra-data files."""
        return [self._storage.describe(k) for _, k in self._iter_extra_data_files(extensions)]

    def get_extra_data(self, ignore_corrupt_chunks: bool = False):
        """All extra data as one pandas DataFrame (None if the store has none)."""
        import pandas as pd

        dfs = []
        for is_motif, key in self._iter_extra_data_files():
            try:
                df = _xd.read_extra_data_file(self._storage, key, is_motif)
            except (CorruptChunkError, OSError, ValueError) as e:
                if ignore_corrupt_chunks:
                    log.warning("chunk extra data %s is corrupt: %s", self._storage.describe(key), e)
                    continue
                if isinstance(e, CorruptChunkError):
                    raise
                raise CorruptChunkError(f"{self._storage.describe(key)}: {e}") from None
            if df is not None and not df.empty:
                dfs.append(df)
        if dfs:
            return pd.concat(dfs, axis=0, ignore_index=True)
        return None

    def get_extra_data_samplerate(self) -> float:
        """Sample rate of the DAQ data in Motif ``.extra_data.h5`` files."""
        for _, key in self._iter_extra_data_files((".extra_data.h5",)):
            attrs = _xd.motif_h5_attrs(self._storage, key)
            ds = attrs["_datasets"]
            if len(ds) > 1:
                raise ValueError("Multiple sample rates detected: please use motif_extra_data_h5_attrs")
            if len(ds) == 1:
                try:
                    return attrs[ds[0]]["samplerate"]
                except KeyError:
                    pass
        raise ValueError("No sample rate or dataset found in file")
