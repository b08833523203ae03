"""How much of a fragmented MP4 being written is on disk (the samples of complete ``moof`` + ``mdat``
pairs), and whether an MP4 file is fragmented (docs/design/crash-safety.md)."""

from __future__ import annotations

import logging

from ...storage.base import Storage
from .container import _file_size

log = logging.getLogger(__name__)

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
