"""Packet index of a video chunk: what the container says about each frame.

A video chunk's *packet index* lists, for every video packet in decode
(file) order, its presentation timestamp, whether it is a keyframe, its
byte offset and its size. It is what lets :class:`~imgstore.codecs.video.
VideoChunkReader` count frames (MKV headers say 0), map a frame position to
a timestamp and jump straight to the keyframe before it, without asking the
container for a frame count or trusting the decoder's frame counter.

It lives beside the chunk as ``<chunk stem>.pktidx.npz`` (``000003.mkv`` ->
``000003.pktidx.npz``). The name is deliberately *not* ``000003.npz`` (that
is the store's frame-metadata index, read by every imgstore version) and
does not end in a video extension, so older readers never see it.

The file is a numpy ``.npz`` holding

============  =======  ==================================================
``pts``       int64    presentation timestamp (stream time base), decode order
``is_key``    bool     packet is a keyframe (decoding may start here)
``pos``       int64    FFmpeg's packet position, -1 if unknown: the payload's
                       offset in MP4/AVI, the (Simple)Block element's in Matroska
``size``      int32    packet size in bytes
``tb_num``    int64    stream time base numerator
``tb_den``    int64    stream time base denominator
``file_size`` int64    size of the chunk file the index describes
``version``   int64    1
============  =======  ==================================================

Building one demuxes the file without decoding (9-23 us per frame measured,
0.1-0.25 s per 10,000-frame chunk). A stale index (the chunk's size changed,
e.g. a chunk still being written or a truncated one) or a corrupt one is
rebuilt on load.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..errors import CorruptChunkError
from ..storage.base import Storage

log = logging.getLogger(__name__)

INDEX_SUFFIX = ".pktidx.npz"
INDEX_VERSION = 1


def packet_index_key(key: str) -> str:
    """Storage key of the packet index of chunk *key* (``a/000003.mkv`` -> ``a/000003.pktidx.npz``)."""
    head, tail = posixpath.split(key)
    stem = posixpath.splitext(tail)[0]
    return posixpath.join(head, stem + INDEX_SUFFIX) if head else stem + INDEX_SUFFIX


@dataclass
class PacketIndex:
    """Per-packet timestamps, keyframe flags and byte ranges of one video stream, decode order."""

    pts: np.ndarray  # int64
    is_key: np.ndarray  # bool
    pos: np.ndarray  # int64, -1 unknown
    size: np.ndarray  # int32
    time_base: Fraction
    file_size: int
    # derived (presentation order), filled in by __post_init__
    order: np.ndarray = field(init=False, repr=False)  # presentation position -> decode index
    pts_sorted: np.ndarray = field(init=False, repr=False)  # presentation position -> pts
    unique_pts: bool = field(init=False)

    def __post_init__(self) -> None:
        self.pts = np.asarray(self.pts, dtype=np.int64)
        self.is_key = np.asarray(self.is_key, dtype=bool)
        self.pos = np.asarray(self.pos, dtype=np.int64)
        self.size = np.asarray(self.size, dtype=np.int32)
        self.order = np.argsort(self.pts, kind="stable")
        self.pts_sorted = self.pts[self.order]
        self.unique_pts = bool(len(self.pts) < 2 or np.all(np.diff(self.pts_sorted) > 0))

    def __len__(self) -> int:
        return int(len(self.pts))

    @property
    def frame_count(self) -> int:
        return len(self)

    def times(self) -> np.ndarray:
        """Presentation time in seconds of each frame, presentation order."""
        return self.pts_sorted.astype(np.float64) * float(self.time_base)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(
            buf,
            pts=self.pts,
            is_key=self.is_key,
            pos=self.pos,
            size=self.size,
            tb_num=np.int64(self.time_base.numerator),
            tb_den=np.int64(self.time_base.denominator),
            file_size=np.int64(self.file_size),
            version=np.int64(INDEX_VERSION),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "PacketIndex":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if int(z["version"]) != INDEX_VERSION:
                raise ValueError(f"unknown packet index version {int(z['version'])}")
            return cls(
                pts=z["pts"],
                is_key=z["is_key"],
                pos=z["pos"],
                size=z["size"],
                time_base=Fraction(int(z["tb_num"]), int(z["tb_den"])),
                file_size=int(z["file_size"]),
            )

    def check(self, file_size: int) -> str | None:
        """Why this index cannot describe a file of *file_size* bytes, or None if it plausibly does."""
        n = len(self.pts)
        if not (len(self.is_key) == len(self.pos) == len(self.size) == n):
            return "arrays of different lengths"
        if self.file_size != file_size:
            return f"index made for {self.file_size} bytes, file has {file_size}"
        if self.time_base <= 0:
            return "bad time base"
        if n == 0:
            return None
        if n > file_size or int(self.size.astype(np.int64).sum()) > file_size:
            return "more packet data than file bytes"
        if np.any(self.size <= 0):
            return "empty packets"
        known = self.pos >= 0
        if np.any(self.pos[known] + self.size[known] > file_size):
            return "packets beyond the end of the file"
        if not self.is_key.any():
            return "no keyframe"
        return None


def packet_ts(pkt) -> int | None:
    """The timestamp a packet is indexed by: pts, else dts."""
    ts = pkt.pts
    if ts is None:
        ts = pkt.dts
    return ts


def _file_size(storage: Storage, key: str) -> int:
    return int(storage.stat(key).size)


def open_container(storage: Storage, key: str):
    """Open chunk *key* for reading with PyAV: by OS path if local, else as a file object.

    Returns ``(container, fileobj_or_None)``. Raises FileNotFoundError if the
    chunk is missing and CorruptChunkError if it cannot be opened as video.
    """
    import av

    path = storage.local_path(key)
    fobj = None
    try:
        if path is not None:
            container = av.open(path, "r")
        else:
            fobj = storage.open_read(key)
            container = av.open(fobj, "r")
    except FileNotFoundError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, EOFError) as e:
        if fobj is not None:
            fobj.close()
        if isinstance(e, FileNotFoundError) or (path is not None and not storage.exists(key)):
            raise FileNotFoundError(f"{storage.describe(key)}: no such chunk") from e
        raise CorruptChunkError(f"{storage.describe(key)}: cannot open video: {e}") from e
    return container, fobj


def _demux_index(container, file_size: int, describe: str) -> PacketIndex:
    import av

    if not container.streams.video:
        raise CorruptChunkError(f"{describe}: no video stream")
    stream = container.streams.video[0]
    pts, key, pos, size = [], [], [], []
    missing_ts = 0
    try:
        for pkt in container.demux(stream):
            n = pkt.size
            if not n:  # the flush packet at the end
                continue
            p = pkt.pos if pkt.pos is not None else -1
            if pkt.is_corrupt or (p >= 0 and p + n > file_size):
                # a packet cut short by the end of the file (writer killed): not a frame we can return
                log.debug("%s: dropping incomplete packet at %d", describe, p)
                continue
            ts = packet_ts(pkt)
            if ts is None:
                missing_ts += 1
                ts = (pts[-1] + 1) if pts else 0
            pts.append(ts)
            key.append(bool(pkt.is_keyframe))
            pos.append(p)
            size.append(n)
    except (av.error.FFmpegError, EOFError) as e:
        # truncated/corrupt tail: keep the packets read so far
        log.warning("%s: demuxing stopped after %d packets: %s", describe, len(pts), e)
    if missing_ts:
        log.warning("%s: %d packets without timestamps", describe, missing_ts)
    tb = stream.time_base or Fraction(1, 1)
    return PacketIndex(
        pts=np.array(pts, dtype=np.int64),
        is_key=np.array(key, dtype=bool),
        pos=np.array(pos, dtype=np.int64),
        size=np.array(size, dtype=np.int32),
        time_base=Fraction(tb),
        file_size=file_size,
    )


def save_packet_index(storage: Storage, key: str, index: PacketIndex) -> bool:
    """Write *index* beside chunk *key* atomically; False (and no error) where the store cannot be written."""
    if not getattr(storage, "writable", False):
        return False
    path = storage.local_path(key)
    if path is not None:
        try:
            # a folder without any write permission bit is read-only by intent, even for root
            if not os.stat(os.path.dirname(os.path.abspath(path))).st_mode & 0o222:
                return False
        except OSError:
            return False
    try:
        storage.write_bytes(packet_index_key(key), index.to_bytes(), atomic=True)
        return True
    except (OSError, PermissionError) as e:
        log.debug("%s: cannot write packet index: %s", storage.describe(key), e)
        return False


def build_packet_index(storage: Storage, key: str, *, write: bool = True, container=None) -> PacketIndex:
    """Demux chunk *key* (no decoding) and return its packet index.

    Saves it beside the chunk when *write* and the storage is writable (a
    read-only folder is silently left alone). *container* may be an already
    open PyAV input container of the chunk (it is demuxed from its current
    position, so pass a fresh one).
    """
    describe = storage.describe(key)
    size = _file_size(storage, key)
    if container is not None:
        index = _demux_index(container, size, describe)
    else:
        c, fobj = open_container(storage, key)
        try:
            index = _demux_index(c, size, describe)
        finally:
            c.close()
            if fobj is not None:
                fobj.close()
    if write:
        save_packet_index(storage, key, index)
    return index


def load_packet_index(storage: Storage, key: str, *, rebuild: bool = True, write: bool = True) -> PacketIndex:
    """The packet index of chunk *key*, read from its ``.pktidx.npz`` if that is valid.

    A missing, unreadable or stale file (the chunk's size differs from the
    one recorded) is rebuilt by demuxing when *rebuild* (and re-saved when
    *write* and the storage is writable); otherwise CorruptChunkError.
    """
    ikey = packet_index_key(key)
    size = _file_size(storage, key)  # FileNotFoundError for a missing chunk
    problem = None
    try:
        data = storage.read_bytes(ikey)
    except FileNotFoundError:
        data = None
        problem = "missing"
    except OSError as e:
        data = None
        problem = f"unreadable ({e})"
    if data is not None:
        try:
            index = PacketIndex.from_bytes(data)
            problem = index.check(size)
            if problem is None:
                return index
        except Exception as e:  # noqa: BLE001 - any damage means: rebuild
            problem = f"corrupt ({type(e).__name__}: {e})"
    if not rebuild:
        raise CorruptChunkError(f"{storage.describe(ikey)}: packet index {problem}")
    if problem != "missing":
        log.info("%s: rebuilding packet index: %s", storage.describe(key), problem)
    return build_packet_index(storage, key, write=write)


# --------------------------------------------------------------------------------------------
# how much of a Matroska file being written is on disk

_EBML_HEADER = 0x1A45DFA3
_SEGMENT = 0x18538067
_CLUSTER = 0x1F43B675
_SIMPLEBLOCK = 0xA3
_BLOCKGROUP = 0xA0
_UNKNOWN = -1


def _read_vint(buf: bytes, i: int, *, keep_marker: bool) -> tuple[int, int] | None:
    """EBML variable-length integer at ``buf[i:]``: (value, length), None if ``buf`` ends first."""
    if i >= len(buf):
        return None
    b0 = buf[i]
    if b0 == 0:
        raise ValueError("bad EBML length")
    n = 8 - b0.bit_length() + 1
    if i + n > len(buf):
        return None
    v = int.from_bytes(buf[i:i + n], "big")
    if keep_marker:
        return v, n
    v &= (1 << (7 * n)) - 1
    if v == (1 << (7 * n)) - 1:
        v = _UNKNOWN
    return v, n


def _element_header(buf: bytes, i: int) -> tuple[int, int, int] | None:
    """(id, size, header length) of the element at ``buf[i:]``, None if incomplete."""
    a = _read_vint(buf, i, keep_marker=True)
    if a is None:
        return None
    b = _read_vint(buf, i + a[1], keep_marker=False)
    if b is None:
        return None
    return a[0], b[0], a[1] + b[1]


class MatroskaProgress:
    """Counts the blocks (packets) of a Matroska file being written that are complete on disk.

    FFmpeg's muxer keeps the current cluster in memory and writes it out
    whole when it ends (1 s, 32 KiB or a keyframe later), so what a killed
    writer leaves is the header plus complete clusters. :meth:`update` reads
    only what was appended since the last call.
    """

    def __init__(self, storage: Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self.blocks = 0
        self._pos: int | None = None  # offset of the next Segment child to look at
        self._failed = False

    def _read(self, start: int, stop: int) -> bytes:
        return self.storage.read_range(self.key, start, stop)

    def update(self) -> int:
        if self._failed:
            return self.blocks
        try:
            size = _file_size(self.storage, self.key)
            if self._pos is None:
                head = self._read(0, min(size, 64))
                h = _element_header(head, 0)
                if h is None or h[0] != _EBML_HEADER or h[1] == _UNKNOWN:
                    return self.blocks
                seg_at = h[2] + h[1]
                head = self._read(seg_at, min(size, seg_at + 16))
                s = _element_header(head, 0)
                if s is None:
                    return self.blocks
                if s[0] != _SEGMENT:
                    raise ValueError("no Segment")
                self._pos = seg_at + s[2]
            while self._pos < size:
                head = self._read(self._pos, min(size, self._pos + 16))
                e = _element_header(head, 0)
                if e is None:
                    break
                eid, esize, hlen = e
                if esize == _UNKNOWN:
                    raise ValueError("element of unknown size")
                end = self._pos + hlen + esize
                if end > size:
                    break
                if eid == _CLUSTER:
                    body = self._read(self._pos + hlen, end)
                    self.blocks += self._count_blocks(body)
                self._pos = end
        except (OSError, ValueError) as e:
            log.debug("%s: cannot follow Matroska progress: %s", self.storage.describe(self.key), e)
            self._failed = True
        return self.blocks

    @staticmethod
    def _count_blocks(body: bytes) -> int:
        i, n = 0, 0
        while i < len(body):
            e = _element_header(body, i)
            if e is None or e[1] == _UNKNOWN:
                raise ValueError("bad cluster")
            if e[0] in (_SIMPLEBLOCK, _BLOCKGROUP):
                n += 1
            i += e[2] + e[1]
        return n


# --------------------------------------------------------------------------------------------
# how much of a fragmented MP4 file being written is on disk

_MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf"}


def _mp4_box(buf: bytes, i: int, end: int) -> tuple[bytes, int, int] | None:
    """(type, header length, size) of the ISO BMFF box at ``buf[i:]``; None if its header is cut short.

    Raises ValueError for a size that cannot be right (smaller than the header).
    """
    if i + 8 > end:
        return None
    size = int.from_bytes(buf[i:i + 4], "big")
    typ = bytes(buf[i + 4:i + 8])
    hl = 8
    if size == 1:
        if i + 16 > end:
            return None
        size = int.from_bytes(buf[i + 8:i + 16], "big")
        hl = 16
    elif size == 0:
        raise ValueError(f"box {typ!r} of unknown size")  # a plain MP4's mdat while it is written
    if size < hl:
        raise ValueError(f"box {typ!r} of impossible size {size}")
    return typ, hl, size


def _mp4_sample_count(buf: bytes, start: int, end: int) -> int:
    """Samples described by the boxes in ``buf[start:end]``: ``trun`` sample counts (fragments)
    plus ``stsz``/``stz2`` counts (a moov that holds samples itself)."""
    n, i = 0, start
    while i < end:
        b = _mp4_box(buf, i, end)
        if b is None or i + b[2] > end:
            raise ValueError("box overruns its parent")
        typ, hl, size = b
        if typ in _MP4_CONTAINERS:
            n += _mp4_sample_count(buf, i + hl, i + size)
        elif typ == b"trun":
            n += int.from_bytes(buf[i + hl + 4:i + hl + 8], "big")
        elif typ in (b"stsz", b"stz2"):
            n += int.from_bytes(buf[i + hl + 8:i + hl + 12], "big")
        i += size
    return n


class Mp4FragmentProgress:
    """Counts the samples (packets) of a fragmented MP4 being written that are complete on disk.

    FFmpeg's ``mp4`` muxer with ``movflags=empty_moov`` (and ``frag_duration``
    and/or ``frag_keyframe``) writes ``ftyp``, a ``moov`` without samples, then
    one ``moof`` + ``mdat`` pair per fragment, each written whole when the
    fragment ends. A sample counts once its fragment's ``moof`` and the
    ``mdat`` after it are both complete on disk; a ``moov`` that holds samples
    (no ``empty_moov``) counts once the ``mdat`` after it is complete. A plain
    (unfragmented) MP4 being written counts 0. :meth:`update` reads only what
    was appended since the last call.
    """

    def __init__(self, storage: Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self.samples = 0
        self._pos = 0  # offset of the next top-level box to look at
        self._pending = 0  # samples described by a moof/moov whose mdat is not complete yet
        self._failed = False

    def _read(self, start: int, stop: int) -> bytes:
        return self.storage.read_range(self.key, start, stop)

    def update(self) -> int:
        if self._failed:
            return self.samples
        try:
            size = _file_size(self.storage, self.key)
            while self._pos < size:
                head = self._read(self._pos, min(size, self._pos + 16))
                b = _mp4_box(head, 0, len(head))
                if b is None:
                    break
                typ, hl, bsize = b
                end = self._pos + bsize
                if end > size:
                    break
                if typ in (b"moof", b"moov"):
                    body = self._read(self._pos + hl, end)
                    if len(body) != bsize - hl:
                        break  # shorter than its size said: wait for the rest
                    self._pending = _mp4_sample_count(body, 0, len(body))
                elif typ == b"mdat":
                    self.samples += self._pending
                    self._pending = 0
                self._pos = end
        except (OSError, ValueError) as e:
            log.debug("%s: cannot follow MP4 fragments: %s", self.storage.describe(self.key), e)
            self._failed = True
        return self.samples


def mp4_is_fragmented(storage: Storage, key: str) -> bool:
    """True if chunk *key* is an MP4 file with movie fragments (a top-level ``moof``, or ``mvex`` in
    its ``moov``): what a writer with fragmented MP4 options leaves until it is remuxed."""
    try:
        size = _file_size(storage, key)
        pos = 0
        while pos < size:
            head = storage.read_range(key, pos, min(size, pos + 16))
            b = _mp4_box(head, 0, len(head))
            if b is None:
                return False
            typ, hl, bsize = b
            if typ == b"moof":
                return True
            if typ == b"moov":
                body = storage.read_range(key, pos + hl, min(size, pos + bsize))
                i = 0
                while i + 8 <= len(body):
                    c = _mp4_box(body, i, len(body))
                    if c is None:
                        break
                    if c[0] == b"mvex":
                        return True
                    i += c[2]
                return False
            if typ == b"mdat" and pos + bsize >= size:
                return False
            pos += bsize
    except (OSError, ValueError):
        return False
    return False


__all__ = [
    "MatroskaProgress",
    "Mp4FragmentProgress",
    "mp4_is_fragmented",
    "PacketIndex",
    "packet_index_key",
    "build_packet_index",
    "load_packet_index",
    "save_packet_index",
    "open_container",
    "INDEX_SUFFIX",
]
