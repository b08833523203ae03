"""The packet index of a video chunk (``NNNNNN.pktidx.npz`` beside it): per packet, in decode order,
its timestamp, keyframe flag, position and size, and where its bytes (payload) lie in the file; plus
what a bare decoder needs (codec, extradata, frame size, pixel format, colour). Built by demuxing
without decoding, saved beside the chunk, parsed once per process for the chunks read lately.

It is what lets a reader count frames, place each by its pts and jump to the keyframe before it
without trusting the container. File fields, versions and costs: docs/design/packet-index.md.
"""

from __future__ import annotations

import collections
import io
import logging
import os
import posixpath
import threading
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ...errors import CorruptChunkError
from ...storage.base import Storage
from .container import _file_size, _open_container, packet_ts
from .payload_offsets import _LocalLocator, _RecordingFile

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
            c, fobj = _open_container(storage, key, wrap=_RecordingFile, decode_probe=False)
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
