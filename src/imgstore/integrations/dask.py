"""Stores as dask arrays: one block per chunk, each chunk decoded once, anywhere in a cluster."""

from __future__ import annotations

import functools
import os

import numpy as np

from ..errors import OptionalDependencyError


@functools.lru_cache(maxsize=16)
def _open_cached(path: str, options_key: tuple):
    from ..stores import new_for_filename

    return new_for_filename(path, storage_options=dict(options_key) or None)


def _read_block(path: str, options_key: tuple, start: int, stop: int) -> np.ndarray:
    store = _open_cached(path, options_key)
    return np.array(store[start:stop])


def to_dask_array(store_or_path, storage_options: dict | None = None):
    """A lazy ``dask.array`` of shape ``(frames, h, w[, 3])`` over a store, one block per chunk.

    Blocks re-open the store by its path or URL in the worker, so the graph
    can run on other processes or machines that see the same location.
    """
    try:
        import dask.array as da
        from dask import delayed
    except ImportError:
        raise OptionalDependencyError("to_dask_array needs dask: pip install 'imgstore[dask]'") from None
    from ..stores import new_for_filename
    from ..stores.base import ImgStore

    if isinstance(store_or_path, ImgStore):
        store = store_or_path
        path = store.filename
        storage_options = storage_options or store._options.get("storage_options")
    else:
        path = os.fspath(store_or_path)
        store = new_for_filename(path, storage_options=storage_options)
    options_key = tuple(sorted((storage_options or {}).items()))
    index = store._index
    shape = tuple(store.image_shape)
    blocks = []
    for c in range(len(index.chunk_ids)):
        start, stop = int(index.chunk_starts[c]), int(index.chunk_starts[c + 1])
        block = delayed(_read_block, pure=True)(path, options_key, start, stop)
        blocks.append(da.from_delayed(block, shape=(stop - start,) + shape, dtype=store.dtype))
    if not blocks:
        return da.zeros((0,) + shape, dtype=store.dtype)
    return da.concatenate(blocks, axis=0)
