"""Bare decoders for a chunk's packets (no container): whether a chunk can be decoded that way, making
one set up as the demuxer would, keeping idle ones for the next reader, and dropping them unfreed in
a forked child (their threads stayed in the parent).
"""

from __future__ import annotations

import collections
import os
import threading

import numpy as np

from ...errors import CorruptChunkError

#: decoders known to decode from bare packets + extradata exactly as from the demuxer
#: (checked frame by frame against the demuxer path in the tests)
DIRECT_CODECS = frozenset({"h264", "hevc", "mjpeg", "ffv1", "av1", "libdav1d", "vp9", "vp8", "mpeg4"})
#: intra-only codecs: every packet decodes on its own
INTRA_CODECS = frozenset({"mjpeg", "ffv1"})


def direct_decodable(index) -> bool:
    """True if chunk *index* (a :class:`~.packet_index.PacketIndex`) can be decoded packet-direct."""
    if not index.has_payload or index.codec not in DIRECT_CODECS:
        return False
    if index.codec in ("ffv1",) and not (index.width and index.height):
        return False  # FFV1 takes the frame size from the container
    n = len(index)
    if n and index.is_key.any():
        # packets must follow each other in the file (one video stream, decode order)
        p, s = index.payload, index.size.astype(np.int64)
        if n > 1 and np.any(p[1:] < p[:-1] + s[:-1]):
            return False
    return True


def make_decoder(index, *, threads: int = 0, thread_type: str = "SLICE", dims: bool = True):
    """A bare decoder for the packets of chunk *index*, set up as the demuxer would set it up
    (*dims* False: without the frame size, for pictures of another size such as JPEG bands)."""
    import av

    cc = av.CodecContext.create(index.codec, "r")
    if index.extradata:
        cc.extradata = index.extradata
    if dims and index.width and index.height:
        cc.width, cc.height = int(index.width), int(index.height)
    if index.pix_fmt:
        try:
            cc.pix_fmt = index.pix_fmt
        except (ValueError, TypeError, av.error.FFmpegError):
            pass
    tag = int(index.codec_tag or 0)
    if tag:
        raw = tag.to_bytes(4, "little")
        if all(32 <= b < 127 for b in raw):
            cc.codec_tag = raw.decode("ascii")
    rng, space, prim, trc = (tuple(index.color) + (0, 0, 0, 0))[:4]
    for attr, v in (("color_range", rng), ("colorspace", space), ("color_primaries", prim), ("color_trc", trc)):
        if v:
            try:
                setattr(cc, attr, int(v))
            except (ValueError, TypeError, AttributeError):
                pass
    cc.thread_type = thread_type
    cc.thread_count = int(threads)
    cc.open()
    return cc


def decoder_config(index, threads: int = 0, thread_type: str = "SLICE") -> tuple:
    """What makes two decoders interchangeable (after ``flush_buffers``)."""
    return (index.codec, index.extradata, int(index.width), int(index.height), index.pix_fmt,
            int(index.codec_tag or 0), tuple(index.color), int(threads), str(thread_type))


_idle_decoders: "collections.OrderedDict[tuple, list]" = collections.OrderedDict()
_idle_lock = threading.Lock()
#: decoders kept for the next reader of a chunk like the last (opening one with its threads costs ~1-3 ms)
IDLE_DECODERS = 4


#: decoders a forked child inherited: their threads exist only in the parent, so using or even
#: freeing them (which joins those threads) would hang; they are kept, unused, until the child exits
_orphans: list = []


def orphan_decoder(cc) -> None:
    """Drop decoder *cc* in a forked child without freeing it (see :data:`_orphans`)."""
    if cc is not None:
        _orphans.append(cc)


def _after_fork_in_child() -> None:
    global _idle_lock
    _idle_lock = threading.Lock()
    for lst in _idle_decoders.values():
        _orphans.extend(lst)
    _idle_decoders.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def take_decoder(index, *, threads: int = 0, thread_type: str = "SLICE"):
    """A decoder for chunk *index*: an idle one given back by a closed reader, else a new one."""
    cfg = decoder_config(index, threads, thread_type)
    with _idle_lock:
        lst = _idle_decoders.get(cfg)
        if lst:
            cc = lst.pop()
            if not lst:
                del _idle_decoders[cfg]
            return cc
    return make_decoder(index, threads=threads, thread_type=thread_type)


def give_back_decoder(index, cc, *, threads: int = 0, thread_type: str = "SLICE") -> None:
    """Keep decoder *cc* (flushed) for :func:`take_decoder`; the oldest idle ones are dropped."""
    try:
        cc.flush_buffers()
    except Exception:  # noqa: BLE001 - a decoder in a bad state is simply dropped
        return
    cfg = decoder_config(index, threads, thread_type)
    with _idle_lock:
        _idle_decoders.setdefault(cfg, []).append(cc)
        _idle_decoders.move_to_end(cfg)
        total = sum(len(v) for v in _idle_decoders.values())
        while total > IDLE_DECODERS:
            k, lst = next(iter(_idle_decoders.items()))
            lst.pop(0)
            total -= 1
            if not lst:
                del _idle_decoders[k]


def _new_decoder(make, reader, **kw):
    """``make(reader.index, **kw)``; CorruptChunkError naming the reader's chunk if FFmpeg has no such decoder."""
    import av

    try:
        return make(reader.index, **kw)
    except (av.error.FFmpegError, ValueError, TypeError) as e:
        raise CorruptChunkError(f"{reader.filename}: no decoder for its packets ({reader.index.codec}): {e}") from e
