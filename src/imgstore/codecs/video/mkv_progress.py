"""How much of a Matroska file being written is on disk: the blocks in complete clusters
(what a killed writer leaves readable; docs/design/crash-safety.md)."""

from __future__ import annotations

import logging

from ...storage.base import Storage
from .container import _file_size

log = logging.getLogger(__name__)

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
