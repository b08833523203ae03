"""Stores as dask arrays: one block per chunk, or per part of a chunk cut at a keyframe, each block decoded
once, in order, anywhere in a cluster (docs/design/parallel-reading.md)."""

from __future__ import annotations

import collections
import os
import pickle
import threading

import numpy as np

from ..errors import OptionalDependencyError

#: blocks of at most this many bytes where a chunk can be cut at a keyframe (default: dask's
#: ``array.chunk-size``)
DEFAULT_BLOCK_BYTES = 128 << 20


#: stores reopened in this process, by their pickle, the most recently used last
_opened: "collections.OrderedDict[bytes, object]" = collections.OrderedDict()
_opened_lock = threading.Lock()
_OPENED_MAX = 16


def _open_cached(pickled: bytes):
    """The store *pickled* describes (its location and options), opened once per process, under a lock
    (not lazily at its first use, by whichever of a worker's threads comes first)."""
    with _opened_lock:
        store = _opened.get(pickled)
        if store is None:
            store = pickle.loads(pickled)
            store._require_read()  # opens it
            _opened[pickled] = store
            while len(_opened) > _OPENED_MAX:
                _opened.popitem(last=False)  # not closed: a block on another thread may still use it
        _opened.move_to_end(pickled)
        return store


def _in_parallel_worker() -> bool:
    """True where blocks run beside others: a ``dask.distributed`` worker, or a thread of a local pool
    (the synchronous scheduler runs blocks one after another on the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return True
    try:
        from distributed import get_worker
    except ImportError:
        return False
    try:
        get_worker()
    except ValueError:
        return False
    return True


#: glibc's largest mmap threshold (``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit)
_MMAP_THRESHOLD_MAX = 32 << 20
_heap_frames_done = False


def _frames_on_the_heap(frame_bytes: int) -> None:
    """Let frame-sized allocations come from the heap again in a ``dask.distributed`` worker, once per
    process.

    Its workers start with ``MALLOC_TRIM_THRESHOLD_`` set, which turns glibc's adaptive mmap threshold
    off: every decoded frame's array (1280x1024: 1.3 MB) is then mapped and faulted in anew, 0.65 ms
    where an allocation from the heap takes 0.03 ms, about half a decode (docs/design/parallel-reading.md).
    Raising the mmap threshold above a frame brings that back to 0.16 ms; the trim threshold, which
    hands freed memory back to the system, stays as the worker set it.
    """
    global _heap_frames_done
    if _heap_frames_done or "MALLOC_TRIM_THRESHOLD_" not in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    _heap_frames_done = True
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return
    m_mmap_threshold = -3
    mallopt(m_mmap_threshold, int(min(_MMAP_THRESHOLD_MAX, max(4 * frame_bytes, 1 << 20))))


def _read_block(pickled: bytes, chunk_n: int, a: int, b: int) -> np.ndarray:
    """Frames *a* .. *b* - 1 of chunk *chunk_n*, decoded in order from the keyframe at *a* by a fresh
    reader: with a single-threaded decoder where blocks run beside each other."""
    store = _open_cached(pickled)
    start, stop = store._index.chunk_range(chunk_n)
    if stop - start < b:  # this process opened the store before the chunk was complete
        store.refresh()
    _frames_on_the_heap(int(np.prod(store._out_shape)) * np.dtype(store.dtype).itemsize)
    reader = store._new_ahead_reader(chunk_n) if _in_parallel_worker() else store._new_chunk_reader(chunk_n)
    try:
        out = store._read_part(reader, chunk_n, a, b)
    finally:
        if reader is not store._readers.get(chunk_n):
            reader.close()
    return np.array(out) if not out.flags.writeable else out


def _block_frames(store) -> int:
    try:
        import dask

        limit = dask.utils.parse_bytes(dask.config.get("array.chunk-size"))
    except (ImportError, KeyError, TypeError, ValueError):
        limit = DEFAULT_BLOCK_BYTES
    frame = int(np.prod(store._out_shape)) * np.dtype(store.dtype).itemsize
    return max(1, int(limit) // max(1, frame))


def to_dask_array(store_or_path, storage_options: dict | None = None):
    """A lazy ``dask.array`` of shape ``(frames, h, w[, 3])`` over a store: one block per chunk, a chunk
    larger than dask's ``array.chunk-size`` cut at keyframes into blocks about that size.

    Each block reopens the store from its pickle (its location and options; once per process) and
    decodes its frames in order from a keyframe, once; so the graph (one task per block) can run on
    other processes or machines that see the same location.
    """
    try:
        import dask.array as da
        from dask.highlevelgraph import HighLevelGraph
        from dask.base import tokenize
    except ImportError:
        raise OptionalDependencyError("to_dask_array needs dask: pip install 'imgstore[dask]'") from None
    from ..stores import new_for_filename
    from ..stores.base import ImgStore

    if isinstance(store_or_path, ImgStore):
        store = store_or_path
    else:
        store = new_for_filename(os.fspath(store_or_path), storage_options=storage_options)
    store._require_read()
    shape = tuple(store._out_shape)
    blocks = []
    max_frames = _block_frames(store)
    for c in store._index.chunks:
        for seg in store._chunk_segments(c, max_frames, strict=False):
            blocks.append((c, seg[0][0], seg[-1][1]))
    if not blocks:
        return da.zeros((0,) + shape, dtype=store.dtype)
    pickled = pickle.dumps(store)
    name = "imgstore-" + tokenize(pickled, store._index.frame_count, blocks)
    zeros = (0,) * len(shape)
    dsk = {(name, k) + zeros: (_read_block, pickled, c, a, b) for k, (c, a, b) in enumerate(blocks)}
    chunks = (tuple(b - a for _, a, b in blocks),) + tuple((s,) for s in shape)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return da.Array(graph, name, chunks, dtype=store.dtype)
