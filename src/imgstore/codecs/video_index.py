"""Packet index of a video chunk: what the container says about each frame.

A video chunk's *packet index* lists, for every video packet in decode
(file) order, its presentation timestamp, whether it is a keyframe, its
byte offset and its size. It is what lets :class:`~imgstore.codecs.video.
VideoChunkReader` count frames (MKV headers say 0), map a frame position to
a timestamp and jump straight to the keyframe before it, without asking the
container for a frame count or trusting the decoder's frame counter.

Since version 2 it also holds what a bare decoder needs to decode the
packets without the container (:mod:`.video_packets`): the codec, the
demuxer's extradata (for H.264 in MP4/MKV the ``avcC`` record: the packets
are length-prefixed, where x264's own extradata is Annex B), the frame size,
pixel format, codec tag and colour properties, and where each packet's bytes
(its *payload*) start in the file. A random read then costs one read of the
bytes from the keyframe's payload to the end of the target's packet.

It lives beside the chunk as ``<chunk stem>.pktidx.npz`` (``000003.mkv`` ->
``000003.pktidx.npz``). The name is deliberately *not* ``000003.npz`` (that
is the store's frame-metadata index, read by every imgstore version) and
does not end in a video extension, so older readers never see it.

The file is a numpy ``.npz`` holding

===============  =======  ==================================================
``pts``          int64    presentation timestamp (stream time base), decode order
``is_key``       bool     packet is a keyframe (decoding may start here)
``pos``          int64    FFmpeg's packet position, -1 if unknown: the payload's
                          offset in MP4/AVI, the Block's data in Matroska
``size``         int32    packet size in bytes
``tb_num``       int64    stream time base numerator
``tb_den``       int64    stream time base denominator
``file_size``    int64    size of the chunk file the index describes
``version``      int64    2 (1: only the fields above)
``payload``      int64    v2: file offset of the packet's bytes, -1 where they were
                          not found verbatim in the file (then the chunk is
                          read through the demuxer)
``codec``        str      v2: FFmpeg decoder name (``h264``, ``mjpeg``, ...)
``extradata``    uint8    v2: the demuxer stream's extradata (may be empty)
``width``        int64    v2: frame width (the stream's)
``height``       int64    v2: frame height
``pix_fmt``      str      v2: the stream's pixel format ('' if unknown)
``codec_tag``    int64    v2: the stream's codec tag (FourCC, little endian)
``color``        int64    v2: color_range, colorspace, color_primaries, color_trc
===============  =======  ==================================================

Payload offsets are found, not computed: each packet's bytes are looked up
in the file at and just after ``pos`` (MP4/AVI: at ``pos``; Matroska: after
the Block's track number, timecode and flags) and compared byte for byte
(a memory map locally; for a remote chunk, the bytes the demuxer just read).
A container that stores packets differently (Matroska header stripping or
compression, MPEG-TS, lacing it cannot be matched) gets -1 and the reader
uses the demuxer for that chunk.

Building one demuxes the file without decoding (9-23 us per frame measured,
0.1-0.25 s per 10,000-frame chunk; finding the payloads adds ~10 us). A stale index (the chunk's size changed,
e.g. a chunk still being written or a truncated one) or a corrupt one is
rebuilt on load; a version 1 index is rebuilt (upgraded) where the chunk is
local or the storage writable, and saved where it can be, else kept (the
reader then uses the demuxer: rebuilding would download the whole chunk).
"""

from __future__ import annotations

import collections
import io
import logging
import mmap
import os
import posixpath
import threading
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..errors import CorruptChunkError
from ..storage.base import Storage

log = logging.getLogger(__name__)

INDEX_SUFFIX = ".pktidx.npz"
INDEX_VERSION = 2
_READABLE_VERSIONS = (1, 2)


def packet_index_key(key: str) -> str:
    """Storage key of the packet index of chunk *key* (``a/000003.mkv`` -> ``a/000003.pktidx.npz``)."""
    head, tail = posixpath.split(key)
    stem = posixpath.splitext(tail)[0]
    return posixpath.join(head, stem + INDEX_SUFFIX) if head else stem + INDEX_SUFFIX


def _tag_to_int(tag) -> int:
    if not tag:
        return 0
    if isinstance(tag, int):
        return tag
    return int.from_bytes(str(tag).encode("latin-1")[:4].ljust(4, b"\0"), "little")


def _int_to_tag(v: int) -> str:
    return int(v).to_bytes(4, "little").decode("latin-1")


@dataclass
class PacketIndex:
    """Per-packet timestamps, keyframe flags and byte ranges of one video stream, decode order."""

    pts: np.ndarray  # int64
    is_key: np.ndarray  # bool
    pos: np.ndarray  # int64, -1 unknown
    size: np.ndarray  # int32
    time_base: Fraction
    file_size: int
    #: file offset of each packet's bytes (-1: not found); None for a version 1 index
    payload: np.ndarray | None = None
    #: decoder name, '' if unknown (version 1)
    codec: str = ""
    #: the demuxer stream's extradata
    extradata: bytes = b""
    width: int = 0
    height: int = 0
    pix_fmt: str = ""
    #: FourCC as a little-endian integer, 0 if none
    codec_tag: int = 0
    #: (color_range, colorspace, color_primaries, color_trc) of the demuxer stream
    color: tuple = (0, 0, 0, 0)
    version: int = INDEX_VERSION
    # derived (presentation order), filled in by __post_init__
    order: np.ndarray = field(init=False, repr=False)  # presentation position -> decode index
    pts_sorted: np.ndarray = field(init=False, repr=False)  # presentation position -> pts
    unique_pts: bool = field(init=False)
    _derived: dict = field(init=False, repr=False, compare=False, default_factory=dict)

    def derived(self, name: str, make):
        """``make()``, computed once per index object (readers of the same chunk share parsed indexes;
        treat the result as read-only)."""
        v = self._derived.get(name)
        if v is None:
            v = self._derived[name] = make()
        return v

    def __post_init__(self) -> None:
        self.pts = np.asarray(self.pts, dtype=np.int64)
        self.is_key = np.asarray(self.is_key, dtype=bool)
        self.pos = np.asarray(self.pos, dtype=np.int64)
        self.size = np.asarray(self.size, dtype=np.int32)
        if self.payload is not None:
            self.payload = np.asarray(self.payload, dtype=np.int64)
        self.extradata = bytes(self.extradata or b"")
        self.color = tuple(int(c) for c in self.color)
        self.order = np.argsort(self.pts, kind="stable")
        self.pts_sorted = self.pts[self.order]
        self.unique_pts = bool(len(self.pts) < 2 or np.all(np.diff(self.pts_sorted) > 0))

    def __len__(self) -> int:
        return int(len(self.pts))

    @property
    def frame_count(self) -> int:
        return len(self)

    @property
    def has_payload(self) -> bool:
        """Every packet's bytes were found in the file (a bare decoder can read this chunk)."""
        p = self.payload
        return bool(p is not None and self.codec and len(p) == len(self.pts) and (len(p) == 0 or p.min() >= 0))

    def times(self) -> np.ndarray:
        """Presentation time in seconds of each frame, presentation order."""
        return self.pts_sorted.astype(np.float64) * float(self.time_base)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        arrays = dict(
            pts=self.pts,
            is_key=self.is_key,
            pos=self.pos,
            size=self.size,
            tb_num=np.int64(self.time_base.numerator),
            tb_den=np.int64(self.time_base.denominator),
            file_size=np.int64(self.file_size),
            version=np.int64(self.version),
        )
        if self.version >= 2:
            payload = self.payload if self.payload is not None else np.full(len(self.pts), -1, np.int64)
            arrays.update(
                payload=payload,
                codec=np.str_(self.codec),
                extradata=np.frombuffer(self.extradata, dtype=np.uint8),
                width=np.int64(self.width),
                height=np.int64(self.height),
                pix_fmt=np.str_(self.pix_fmt),
                codec_tag=np.int64(self.codec_tag),
                color=np.asarray(self.color, dtype=np.int64),
            )
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "PacketIndex":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            version = int(z["version"])
            if version not in _READABLE_VERSIONS:
                raise ValueError(f"unknown packet index version {version}")
            extra = {}
            if version >= 2:
                extra = dict(
                    payload=z["payload"],
                    codec=str(z["codec"]),
                    extradata=z["extradata"].astype(np.uint8).tobytes(),
                    width=int(z["width"]),
                    height=int(z["height"]),
                    pix_fmt=str(z["pix_fmt"]),
                    codec_tag=int(z["codec_tag"]),
                    color=tuple(int(c) for c in z["color"]),
                )
            return cls(
                pts=z["pts"],
                is_key=z["is_key"],
                pos=z["pos"],
                size=z["size"],
                time_base=Fraction(int(z["tb_num"]), int(z["tb_den"])),
                file_size=int(z["file_size"]),
                version=version,
                **extra,
            )

    def check(self, file_size: int) -> str | None:
        """Why this index cannot describe a file of *file_size* bytes, or None if it plausibly does."""
        n = len(self.pts)
        if not (len(self.is_key) == len(self.pos) == len(self.size) == n):
            return "arrays of different lengths"
        if self.payload is not None and len(self.payload) != n:
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
        if self.payload is not None:
            known = self.payload >= 0
            if np.any(self.payload[known] + self.size[known] > file_size):
                return "packet payloads beyond the end of the file"
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
    return _open_container(storage, key)


def _open_container(storage: Storage, key: str, wrap=None):
    import av

    path = storage.local_path(key)
    fobj = None
    try:
        if path is not None:
            container = av.open(path, "r")
        else:
            fobj = storage.open_read(key)
            if wrap is not None:
                fobj = wrap(fobj)
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


# --------------------------------------------------------------------------------------------
# finding each packet's bytes in the file

#: how far after FFmpeg's packet position the payload may start (Matroska: track number, timecode,
#: flags and lacing sizes)
_PAYLOAD_SLACK = 64
#: bytes of the packet looked up first
_PAYLOAD_HEAD = 16


def _match_at(view: np.ndarray, start: int, pkt_bytes: np.ndarray, pos: int) -> int:
    """Offset (absolute) in ``[pos, pos + slack]`` where *pkt_bytes* lies verbatim in *view*, which holds
    the file's bytes from absolute offset *start*; -1 if nowhere."""
    n = len(pkt_bytes)
    lo = pos - start
    if lo < 0 or n == 0:
        return -1
    hi = min(lo + _PAYLOAD_SLACK + 1, len(view) - n + 1)
    if hi <= lo:
        return -1
    head = pkt_bytes[: min(_PAYLOAD_HEAD, n)].tobytes()
    window = view[lo: hi + len(head) - 1].tobytes()
    k = window.find(head)
    while k >= 0 and lo + k < hi:
        o = lo + k
        if np.array_equal(view[o: o + n], pkt_bytes):
            return start + o
        k = window.find(head, k + 1)
    return -1


class _LocalLocator:
    """Finds packets in a local file through a memory map."""

    def __init__(self, path: str) -> None:
        self._mm = None
        self._view = None
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size:
                    self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                    self._view = np.frombuffer(self._mm, dtype=np.uint8)
        except (OSError, ValueError) as e:
            log.debug("%s: cannot map for payload offsets: %s", path, e)

    def __call__(self, pos: int, pkt) -> int:
        if self._view is None or pos is None or pos < 0:
            return -1
        return _match_at(self._view, 0, np.frombuffer(pkt, dtype=np.uint8), pos)

    def close(self) -> None:
        self._view = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # a view still exported: the map goes with the last reference
                pass
            self._mm = None


class _RecordingFile:
    """A read-only file object that keeps the last bytes read (a window of consecutive bytes), so the
    packets a demuxer returns can be found in what it read from a remote file."""

    def __init__(self, f, keep: int = 64 << 20) -> None:
        self._f = f
        self._keep = keep
        self._pos = 0
        self._buf = bytearray()
        self._buf_start = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        r = self._f.seek(offset, whence)
        self._pos = int(r) if r is not None else int(self._f.tell())
        return self._pos

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if data:
            if self._pos == self._buf_start + len(self._buf):
                self._buf += data
                extra = len(self._buf) - 2 * self._keep
                if extra > 0:
                    cut = len(self._buf) - self._keep
                    del self._buf[:cut]
                    self._buf_start += cut
            else:
                self._buf = bytearray(data)
                self._buf_start = self._pos
            self._pos += len(data)
        return data

    def close(self) -> None:
        self._buf = bytearray()
        self._f.close()

    def locate(self, pos: int, pkt) -> int:
        if pos is None or pos < 0 or not self._buf:
            return -1
        return _match_at(np.frombuffer(self._buf, dtype=np.uint8), self._buf_start,
                         np.frombuffer(pkt, dtype=np.uint8), pos)


def _stream_info(stream) -> dict:
    cc = stream.codec_context
    info = dict(codec="", extradata=b"", width=0, height=0, pix_fmt="", codec_tag=0, color=(0, 0, 0, 0))
    try:
        info["codec"] = cc.name or ""
        info["extradata"] = bytes(cc.extradata or b"")
        info["width"], info["height"] = int(cc.width or 0), int(cc.height or 0)
        info["pix_fmt"] = cc.pix_fmt or ""
        info["codec_tag"] = _tag_to_int(cc.codec_tag)
        info["color"] = tuple(int(getattr(cc, a, 0) or 0)
                              for a in ("color_range", "colorspace", "color_primaries", "color_trc"))
    except Exception as e:  # noqa: BLE001 - a stream PyAV cannot describe: no direct decoding
        log.debug("stream info: %s", e)
        info["codec"] = ""
    return info


def _demux_index(container, file_size: int, describe: str, locate=None) -> PacketIndex:
    import av

    if not container.streams.video:
        raise CorruptChunkError(f"{describe}: no video stream")
    stream = container.streams.video[0]
    pts, key, pos, size, payload = [], [], [], [], []
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
            if locate is not None:
                o = locate(p, pkt)
                payload.append(o if o + n <= file_size else -1)
            else:
                payload.append(-1)
    except (av.error.FFmpegError, EOFError) as e:
        # truncated/corrupt tail: keep the packets read so far
        log.warning("%s: demuxing stopped after %d packets: %s", describe, len(pts), e)
    if missing_ts:
        log.warning("%s: %d packets without timestamps", describe, missing_ts)
    if payload and min(payload) < 0 and locate is not None:
        log.info("%s: %d of %d packets not found verbatim in the file; it will be read through the demuxer",
                 describe, sum(1 for o in payload if o < 0), len(payload))
    tb = stream.time_base or Fraction(1, 1)
    return PacketIndex(
        pts=np.array(pts, dtype=np.int64),
        is_key=np.array(key, dtype=bool),
        pos=np.array(pos, dtype=np.int64),
        size=np.array(size, dtype=np.int32),
        time_base=Fraction(tb),
        file_size=file_size,
        payload=np.array(payload, dtype=np.int64),
        **_stream_info(stream),
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
    """Demux chunk *key* (no decoding) and return its packet index, payload offsets included.

    Saves it beside the chunk when *write* and the storage is writable (a
    read-only folder is silently left alone). *container* may be an already
    open PyAV input container of the chunk (it is demuxed from its current
    position, so pass a fresh one; payload offsets are then only found for a
    local chunk).
    """
    describe = storage.describe(key)
    size = _file_size(storage, key)
    path = storage.local_path(key)
    local = _LocalLocator(path) if path is not None else None
    try:
        if container is not None:
            index = _demux_index(container, size, describe, local)
        else:
            c, fobj = _open_container(storage, key, wrap=_RecordingFile)
            try:
                locate = local if local is not None else (fobj.locate if isinstance(fobj, _RecordingFile) else None)
                index = _demux_index(c, size, describe, locate)
            finally:
                c.close()
                if fobj is not None:
                    fobj.close()
    finally:
        if local is not None:
            local.close()
    if write:
        save_packet_index(storage, key, index)
    return index


_parsed: "collections.OrderedDict[bytes, PacketIndex]" = collections.OrderedDict()
_parsed_lock = threading.Lock()
_PARSED_KEEP = 32


def _parse_cached(data: bytes) -> PacketIndex:
    """``PacketIndex.from_bytes`` with the last few results kept (keyed by the file's bytes, so exact):
    a store reading chunks at random reopens their readers often, and parsing an npz costs ~1.5 ms."""
    with _parsed_lock:
        index = _parsed.get(data)
        if index is not None:
            _parsed.move_to_end(data)
            return index
    index = PacketIndex.from_bytes(data)
    with _parsed_lock:
        _parsed[data] = index
        while len(_parsed) > _PARSED_KEEP:
            _parsed.popitem(last=False)
    return index


def load_packet_index(storage: Storage, key: str, *, rebuild: bool = True, write: bool = True) -> PacketIndex:
    """The packet index of chunk *key*, read from its ``.pktidx.npz`` if that is valid.

    A missing, unreadable or stale file (the chunk's size differs from the
    one recorded) is rebuilt by demuxing when *rebuild* (and re-saved when
    *write* and the storage is writable); otherwise CorruptChunkError. A
    valid version 1 file is upgraded the same way when *rebuild* and the
    chunk is local or the storage writable; otherwise it is returned as is.
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
            index = _parse_cached(data)
            problem = index.check(size)
            if problem is None:
                if index.version >= INDEX_VERSION or not rebuild:
                    return index
                if storage.local_path(key) is None and not getattr(storage, "writable", False):
                    return index  # upgrading a remote chunk's index means downloading the chunk
                problem = f"version {index.version}"
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
