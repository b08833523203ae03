"""Packet-direct decoding: a chunk's packets read by byte range and fed to a bare decoder.

With a version 2 packet index (:mod:`.video_index`: codec, the demuxer's
extradata, frame size, and where every packet's bytes lie in the file) a
video chunk can be decoded without its container: the bytes of packets
``i..j`` are one contiguous range of the file (one stream per chunk), read
with one ``pread`` locally or one HTTP range request remotely, cut into
packets and fed to ``av.CodecContext.create(codec, "r")``. No demuxer is
opened, no container seek happens, and a reader costs a few hundred
microseconds to open.

This module holds the pieces :class:`~imgstore.codecs.video.VideoChunkReader`
builds on:

* :func:`direct_decodable` / :func:`make_decoder`: whether and how a chunk
  can be decoded this way (known intra and inter codecs only; anything odd
  is left to the demuxer);
* :class:`PacketSource`: byte ranges of the chunk file. Locally a ``pread``
  on a file kept open. Remotely ``Storage.read_range`` behind a bounded cache
  of fetched spans; a read only fetches the parts of its range that are not
  cached, and :meth:`PacketSource.prefetch` merges overlapping and adjacent
  spans and fetches the distinct ones concurrently;
* :func:`h264_chroma_format`: whether an H.264 stream is monochrome (x264's
  gray output), read from its SPS, so gray frames are taken from the Y plane
  without looking at the chroma of every frame.
"""

from __future__ import annotations

import bisect
import collections
import concurrent.futures
import logging
import os
import threading

import numpy as np

from ..errors import CorruptChunkError
from ..storage.base import Storage

log = logging.getLogger(__name__)

#: decoders known to decode from bare packets + extradata exactly as from the demuxer
#: (checked frame by frame against the demuxer path in the tests)
DIRECT_CODECS = frozenset({"h264", "hevc", "mjpeg", "ffv1", "av1", "libdav1d", "vp9", "vp8", "mpeg4"})
#: intra-only codecs: every packet decodes on its own
INTRA_CODECS = frozenset({"mjpeg", "ffv1"})

#: bytes of fetched spans a remote reader keeps
DEFAULT_SPAN_CACHE = 32 << 20
#: gaps up to this many bytes between spans wanted together are fetched with them (one request)
MERGE_GAP = 4096


def direct_decodable(index) -> bool:
    """True if chunk *index* (a :class:`~.video_index.PacketIndex`) can be decoded packet-direct."""
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
    global _io_pool, _io_pool_lock, _idle_lock
    _io_pool = None
    _io_pool_lock = threading.Lock()
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


# --------------------------------------------------------------------------------------------
# H.264 SPS: is the stream monochrome?

_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def _unescape(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.v = int.from_bytes(data, "big")
        self.n = len(data) * 8
        self.i = 0

    def u(self, k: int) -> int:
        if self.i + k > self.n:
            raise ValueError("SPS ends early")
        self.i += k
        return (self.v >> (self.n - self.i)) & ((1 << k) - 1)

    def ue(self) -> int:
        z = 0
        while self.u(1) == 0:
            z += 1
            if z > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << z) - 1 + (self.u(z) if z else 0)


def _first_sps(extradata: bytes) -> bytes | None:
    if not extradata:
        return None
    if extradata[0] == 1 and len(extradata) > 8:  # avcC
        nsps = extradata[5] & 0x1F
        i = 6
        if nsps:
            ln = int.from_bytes(extradata[i:i + 2], "big")
            return extradata[i + 2:i + 2 + ln]
        return None
    # Annex B: find a NAL of type 7
    i = extradata.find(b"\x00\x00\x01")
    while i >= 0:
        j = i + 3
        if j < len(extradata) and extradata[j] & 0x1F == 7:
            k = extradata.find(b"\x00\x00\x01", j)
            return extradata[j:k if k >= 0 else len(extradata)]
        i = extradata.find(b"\x00\x00\x01", j)
    return None


def h264_chroma_format(extradata: bytes) -> int | None:
    """``chroma_format_idc`` of the first SPS in H.264 *extradata* (0 = monochrome), None if unknown."""
    try:
        sps = _first_sps(bytes(extradata))
        if not sps or sps[0] & 0x1F != 7:
            return None
        b = _Bits(_unescape(sps[1:64]))
        profile = b.u(8)
        b.u(8)  # constraint flags
        b.u(8)  # level
        b.ue()  # seq_parameter_set_id
        return b.ue() if profile in _HIGH_PROFILES else 1
    except (ValueError, IndexError):
        return None


def h264_slice_count(extradata: bytes, packet: bytes) -> int | None:
    """Coded slices (NAL units of type 1 or 5) in one H.264 access unit, None if it cannot be parsed.

    *packet* is length-prefixed (avcC *extradata*, as in MP4 and Matroska) or Annex B (start codes).
    """
    try:
        data = bytes(packet)
        ext = bytes(extradata or b"")
        types = []
        if ext[:1] == b"\x01" and len(ext) > 4:  # avcC: NAL units prefixed by their length
            n = (ext[4] & 3) + 1
            i = 0
            while i + n <= len(data):
                ln = int.from_bytes(data[i:i + n], "big")
                if ln <= 0 or i + n + ln > len(data):
                    return None
                types.append(data[i + n] & 0x1F)
                i += n + ln
            if i != len(data):
                return None
        else:
            i = data.find(b"\x00\x00\x01")
            while i >= 0 and i + 3 < len(data):
                types.append(data[i + 3] & 0x1F)
                i = data.find(b"\x00\x00\x01", i + 3)
        count = sum(1 for t in types if t in (1, 5))
        return count or None
    except (IndexError, ValueError, TypeError):
        return None


# --------------------------------------------------------------------------------------------
# bytes

_io_pool: concurrent.futures.ThreadPoolExecutor | None = None
_io_pool_lock = threading.Lock()


def _io_executor() -> concurrent.futures.ThreadPoolExecutor:
    global _io_pool
    with _io_pool_lock:
        if _io_pool is None:
            _io_pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="imgstore-io")
        return _io_pool


def merge_spans(spans, gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    """Sorted, merged ``(start, stop)`` spans: overlapping ones, and ones at most *gap* bytes apart."""
    out: list[list[int]] = []
    for a, b in sorted((int(a), int(b)) for a, b in spans if b > a):
        if out and a <= out[-1][1] + gap:
            if b > out[-1][1]:
                out[-1][1] = b
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


class PacketSource:
    """Byte ranges of one chunk file.

    Local chunks: ``os.pread`` on a descriptor kept open until :meth:`close`.
    Remote chunks: ``storage.read_range``; fetched spans are kept (up to
    *cache_bytes*, least recently used out first), a read fetches only the
    parts of its range that are not kept, and :meth:`prefetch` fetches many
    spans at once (merged, concurrently). Thread-safe.

    Instrumentation: ``requests`` and ``bytes_fetched`` (remote only).
    """

    def __init__(self, storage: Storage, key: str, *, cache_bytes: int = DEFAULT_SPAN_CACHE) -> None:
        self.storage = storage
        self.key = key
        self.filename = storage.describe(key)
        self.path = storage.local_path(key)
        self.cache_bytes = int(cache_bytes)
        self.requests = 0
        self.bytes_fetched = 0
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._starts: list[int] = []  # sorted starts of kept spans (remote)
        self._spans: dict[int, bytes] = {}
        self._lru: collections.OrderedDict = collections.OrderedDict()
        self._kept = 0
        self._closed = False

    @property
    def local(self) -> bool:
        return self.path is not None

    # -- local ---------------------------------------------------------------------------
    def _pread(self, a: int, b: int) -> bytes:
        with self._lock:
            if self._closed:
                raise ValueError(f"{self.filename}: reader is closed")
            if self._fd is None:
                try:
                    self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except FileNotFoundError:
                    raise FileNotFoundError(f"{self.filename}: no such chunk") from None
            fd = self._fd
        n = b - a
        data = os.pread(fd, n, a)
        if len(data) < n:
            parts = [data]
            got = len(data)
            while got < n:
                more = os.pread(fd, n - got, a + got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        return data

    # -- remote --------------------------------------------------------------------------
    def _fetch(self, a: int, b: int) -> bytes:
        data = self.storage.read_range(self.key, a, b)
        with self._lock:
            self.requests += 1
            self.bytes_fetched += len(data)
        return data

    def _keep(self, a: int, data: bytes) -> None:
        """Remember span [a, a + len(data)) (caller holds the lock; the span overlaps none kept)."""
        if not data or len(data) > self.cache_bytes:
            return
        bisect.insort(self._starts, a)
        self._spans[a] = data
        self._lru[a] = None
        self._kept += len(data)
        while self._kept > self.cache_bytes and self._lru:
            old, _ = self._lru.popitem(last=False)
            d = self._spans.pop(old)
            self._kept -= len(d)
            i = bisect.bisect_left(self._starts, old)
            del self._starts[i]

    def _pieces(self, a: int, b: int):
        """Kept spans overlapping [a, b) and the gaps between them (caller holds the lock):
        a list of ``(start, stop, data_or_None)`` covering [a, b) in order."""
        out = []
        i = bisect.bisect_right(self._starts, a) - 1
        if i < 0:
            i = 0
        cur = a
        while i < len(self._starts) and cur < b:
            s = self._starts[i]
            d = self._spans[s]
            e = s + len(d)
            if e <= cur:
                i += 1
                continue
            if s >= b:
                break
            if s > cur:
                out.append((cur, s, None))
                cur = s
            stop = min(e, b)
            out.append((cur, stop, (s, d)))
            self._lru.move_to_end(s)
            cur = stop
            i += 1
        if cur < b:
            out.append((cur, b, None))
        return out

    def _remote_read(self, a: int, b: int) -> bytes:
        with self._lock:
            pieces = self._pieces(a, b)
        gaps = [(s, e) for s, e, d in pieces if d is None]
        fetched = self._fetch_many(gaps)
        parts = []
        for s, e, d in pieces:
            if d is None:
                data = fetched[(s, e)]
            else:
                base, buf = d
                data = buf[s - base:e - base]
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _fetch_many(self, gaps) -> dict:
        """Fetch *gaps* (disjoint spans), concurrently if several; keep them; ``{span: bytes}``."""
        out = {}
        if not gaps:
            return out
        if len(gaps) == 1:
            results = [self._fetch(*gaps[0])]
        else:
            ex = _io_executor()
            futs = [ex.submit(self._fetch, a, b) for a, b in gaps]
            results = []
            err = None
            for f in futs:
                try:
                    results.append(f.result())
                except BaseException as e:  # noqa: BLE001 - the first error wins, after all finished
                    if err is None:
                        err = e
                    results.append(None)
            if err is not None:
                raise err
        with self._lock:
            for (a, b), data in zip(gaps, results):
                if len(data) != b - a:
                    raise CorruptChunkError(
                        f"{self.filename}: asked for bytes {a}..{b} and got {len(data)} (file changed or cut short?)")
                out[(a, b)] = data
                # only keep what is still missing (another thread may have fetched it meanwhile)
                for s, e, d in self._pieces(a, b):
                    if d is None:
                        self._keep(s, data[s - a:e - a] if (s, e) != (a, b) else data)
        return out

    # -- public --------------------------------------------------------------------------
    def read(self, a: int, b: int) -> bytes:
        """Bytes ``[a, b)`` of the chunk file (all of them, or CorruptChunkError)."""
        a, b = int(a), int(b)
        if b <= a:
            return b""
        data = self._pread(a, b) if self.local else self._remote_read(a, b)
        if len(data) != b - a:
            raise CorruptChunkError(f"{self.filename}: bytes {a}..{b} not in the file (got {len(data)})")
        return data

    def prefetch(self, spans) -> None:
        """Make the remote bytes of *spans* ``[(start, stop), ...]`` kept: merged, and fetched
        concurrently where they are distinct. Nothing to do for a local file."""
        if self.local:
            return
        merged = merge_spans(spans)
        gaps = []
        with self._lock:
            for a, b in merged:
                gaps += [(s, e) for s, e, d in self._pieces(a, b) if d is None]
        # as few requests as possible: gaps that touch are one request
        self._fetch_many(merge_spans(gaps, gap=0))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd is not None:
                try:
                    os.close(self._fd)
                except OSError:
                    pass
                self._fd = None
            self._starts.clear()
            self._spans.clear()
            self._lru.clear()
            self._kept = 0


__all__ = [
    "DIRECT_CODECS",
    "INTRA_CODECS",
    "PacketSource",
    "direct_decodable",
    "h264_chroma_format",
    "give_back_decoder",
    "make_decoder",
    "orphan_decoder",
    "take_decoder",
    "merge_spans",
]
