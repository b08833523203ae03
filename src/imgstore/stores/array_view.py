"""A store as an array of frames: ``len``, iteration, ``store[i]``, ``store[a:b]``, ``store[[i, j]]``,
the roiextractors-style getters, and ``to_dask()`` (built by the dask integration above this layer,
which the composition root wires in with :func:`set_dask_bridge`)."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..errors import CorruptChunkError

#: what ``store.to_dask()`` calls with the store: :func:`imgstore.integrations.dask.to_dask_array`, set by
#: the composition root (``imgstore/__init__.py``) through :func:`set_dask_bridge`, so that nothing in
#: ``imgstore.stores`` imports the layer above it
_dask_bridge = None


def set_dask_bridge(build) -> None:
    """Make ``store.to_dask()`` return ``build(store)``."""
    global _dask_bridge
    _dask_bridge = build


class ArrayView:
    """The array view of :class:`~.base.ImgStore` (reads through its frame index and chunk readers;
    owns no state)."""

    def __len__(self) -> int:
        return self.frame_count

    def __iter__(self) -> Iterator[np.ndarray]:
        """Every frame in store order (does not move :meth:`get_next_image`'s position)."""
        self._require_read()
        for c in self._index.chunks:
            start, stop = self._index.chunk_range(c)
            for i in range(start, stop):
                yield self[i]

    def __getitem__(self, key) -> np.ndarray:
        """Frames by frame index: ``store[i]``, ``store[a:b:s]``, ``store[[i, j, k]]`` (numpy semantics).

        Ranges and lists are read chunk by chunk, each chunk decoded once; a
        range inside one raw chunk comes back as a zero-copy read-only view.
        """
        self._require_read()
        n = self._index.frame_count
        if isinstance(key, tuple):
            frames = self[key[0]]
            return frames[(slice(None),) + key[1:]] if not np.isscalar(key[0]) and not isinstance(
                key[0], (int, np.integer)) else frames[key[1:]]
        if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            i = int(key)
            if i < -n or i >= n:
                raise IndexError(f"frame index {i} out of range for a store of {n} frames")
            return self._frame_at(i % n if i < 0 else i)
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1 and stop > start:
                view = self._contiguous_view(start, stop)
                if view is not None:
                    return view
            idx = np.arange(start, stop, step)
        else:
            arr = np.asarray(key)
            if arr.dtype == bool:
                if arr.shape != (n,):
                    raise IndexError(f"boolean index of shape {arr.shape} does not match {n} frames")
                idx = np.flatnonzero(arr)
            elif arr.dtype.kind in "iu" and arr.ndim == 1:
                if len(arr) and (arr.min() < -n or arr.max() >= n):
                    raise IndexError(f"frame index out of range for a store of {n} frames")
                idx = np.where(arr < 0, arr + n, arr)
            elif arr.size == 0:
                idx = np.zeros(0, dtype=np.int64)
            else:
                raise IndexError(f"cannot index frames with {key!r}")
        return self._gather(idx)

    def _contiguous_view(self, start: int, stop: int):
        """A zero-copy view of frames [start, stop) if they lie in one chunk whose codec can give one."""
        c0, p0 = self._index.locate(start)
        c1, p1 = self._index.locate(stop - 1)
        if c0 != c1:
            return None
        reader = self._chunk_reader(c0)
        view = getattr(reader, "read_range", None)
        if view is None or self._encoding:
            return None
        try:
            out = view(p0, p1 + 1)
        except IndexError as e:
            raise CorruptChunkError(str(e)) from None
        if out.shape[1:] != self._out_shape or out.dtype != self.dtype:
            self._check_frame(out[0], c0, p0)
        return out

    def _gather(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx),) + self._out_shape, dtype=self.dtype)
        if not len(idx):
            return out
        starts = self._index.chunk_starts
        cpos = np.searchsorted(starts, idx, side="right") - 1
        order = np.argsort(cpos, kind="stable")
        bounds = np.flatnonzero(np.diff(cpos[order])) + 1
        for group in np.split(order, bounds):
            c = int(cpos[group[0]])
            chunk_n = int(self._index.chunk_ids[c])
            positions = idx[group] - int(starts[c])
            reader = self._chunk_reader(chunk_n)
            uniq, inverse = np.unique(positions, return_inverse=True)
            try:
                imgs = reader.read_many([int(p) for p in uniq])
            except IndexError as e:  # the chunk index lists frames its data does not hold
                raise CorruptChunkError(str(e)) from None
            dec = self._decoder()
            for k, img in enumerate(imgs):
                img = dec(img)
                self._check_frame(img, chunk_n, int(uniq[k]))
                out[group[inverse == k]] = img
        return out

    def to_dask(self):
        """This store as a lazy ``dask.array``, one block per chunk or per part of a chunk cut at a keyframe
        (:func:`imgstore.integrations.dask.to_dask_array`)."""
        self._require_read()
        if _dask_bridge is None:
            raise RuntimeError("imgstore.integrations.dask is not wired in (import imgstore to wire it)")
        return _dask_bridge(self)

    # roiextractors-style getters
    def get_series(self, start_sample: int | None = None, end_sample: int | None = None) -> np.ndarray:
        """Frames ``[start_sample, end_sample)`` as an array ``(time, height, width[, channels])``."""
        return self[slice(start_sample, end_sample)]

    def get_num_samples(self) -> int:
        return self.frame_count

    def get_image_shape(self) -> tuple[int, int]:
        """``(num_rows, num_columns)`` of a frame."""
        return tuple(self.image_shape[:2])

    def get_dtype(self) -> np.dtype:
        return self.dtype

    def get_sampling_frequency(self) -> float:
        """Frames per second, from the median interval between frame times."""
        self._require_read()
        if self.frame_count < 2:
            return float("nan")
        dt = np.diff(self._index.frame_time)
        dt = dt[np.isfinite(dt) & (dt > 0)]
        return float(1.0 / np.median(dt)) if len(dt) else float("nan")

    def get_native_timestamps(self, start_sample: int | None = None, end_sample: int | None = None) -> np.ndarray:
        """Frame times ``[start_sample, end_sample)``."""
        self._require_read()
        return np.asarray(self._index.frame_time[slice(start_sample, end_sample)])
