"""Finding each packet's bytes (its payload) verbatim in a chunk file: through a memory map locally,
in the bytes the demuxer just read remotely (docs/design/packet-index.md)."""

from __future__ import annotations

import logging
import mmap
import os

import numpy as np

log = logging.getLogger(__name__)

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
