"""Decoding threads shared by every video reader in a process, each thread's own decoders, and what a
forked child must let go of: the pools' threads, and the decoders and demuxers of every live walker
and reader (their threads stayed in the parent; freeing them would hang).

This module owns the pool globals; other modules call its functions through the module
(``pools._decode_workers()``), so that replacing one here (tests do) takes effect everywhere.
"""

from __future__ import annotations

import collections
import functools
import os
import threading
import weakref

from .decoders import _new_decoder, make_decoder


@functools.cache
def _decode_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


_decode_pool = None
_band_pool = None
_decode_pool_lock = threading.Lock()
_decode_local = threading.local()


def _decode_executor():
    """Threads shared by every reader that decodes intra-only frames in parallel (PyAV releases the
    GIL while decoding and converting); each keeps its own decoders."""
    import concurrent.futures

    global _decode_pool
    with _decode_pool_lock:
        if _decode_pool is None:
            _decode_pool = concurrent.futures.ThreadPoolExecutor(_decode_workers(),
                                                                 thread_name_prefix="imgstore-decode")
        return _decode_pool


def _band_executor():
    """Threads that decode the bands of a frame besides the caller's (one fewer than the bands),
    apart from :func:`_decode_executor`'s, which a sequential read keeps busy
    (docs/design/mjpeg-bands.md)."""
    import concurrent.futures

    global _band_pool
    with _decode_pool_lock:
        if _band_pool is None:
            _band_pool = concurrent.futures.ThreadPoolExecutor(max(1, _decode_workers() - 1),
                                                               thread_name_prefix="imgstore-band")
        return _band_pool


#: every walker and reader alive (or garbage not yet collected): a forked child must never free their
#: multi-threaded decoders and demuxers, whose threads stayed in the parent (FFmpeg joins them: a hang)
_live_walkers: "weakref.WeakSet[_Walker]" = weakref.WeakSet()
_live_readers: "weakref.WeakSet[VideoChunkReader]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """Threads do not survive fork(): the pools and their decoders are the parent's."""
    global _decode_pool, _band_pool, _decode_pool_lock
    _decode_pool = None
    _band_pool = None
    _decode_pool_lock = threading.Lock()
    for w in list(_live_walkers):
        w.forget_decoder()
    for r in list(_live_readers):
        r._forget_container()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _thread_decoder(reader, band: int | None = None):
    """A single-threaded decoder for chunks like *reader*'s, owned by the calling worker thread
    (*band*: for JPEG bands of that height, see :mod:`..jpeg_restart`)."""
    index = reader.index
    cache = getattr(_decode_local, "decoders", None)
    if cache is None:
        cache = _decode_local.decoders = collections.OrderedDict()
    cfg = (index.codec, index.extradata, index.width, index.height, index.pix_fmt, index.codec_tag,
           tuple(index.color), band)
    cc = cache.get(cfg)
    if cc is None:
        # a band decoder is not told the frame size: FFmpeg's MJPEG decoder takes a first picture much
        # shorter than that size for one field of an interlaced frame
        cc = _new_decoder(make_decoder, reader, threads=1, dims=band is None)
        cache[cfg] = cc
        while len(cache) > 8:
            cache.popitem(last=False)
    else:
        cache.move_to_end(cfg)
    return cc
