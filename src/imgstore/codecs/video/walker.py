"""One bare decoder walking forward through a chunk's packets from a keyframe, placing every frame
that comes out by its pts."""

from __future__ import annotations

import os

import numpy as np

from .decoders import _new_decoder, give_back_decoder, orphan_decoder, take_decoder
from .pools import _live_walkers


class _Walker:
    """One bare decoder walking forward through a chunk's packets, from a keyframe on."""

    def __init__(self, reader: "VideoChunkReader") -> None:
        self.r = reader
        self.cc = None
        self.pid = os.getpid()
        self.k0 = 0  # decode index of the keyframe decoding started from
        self.next_dec = 0  # decode index of the next packet to feed
        self.last_out = -1  # highest presentation position out of the decoder since the restart
        self.floor = None  # frames shown before the keyframe started from are dropped
        self.fresh = True  # nothing fed since the restart / creation: must restart first
        self.drained = False
        _live_walkers.add(self)

    def _check_fork(self) -> None:
        if self.pid != os.getpid():  # a forked child: the decoder's threads stayed in the parent
            self.forget_decoder()

    def forget_decoder(self) -> None:
        """Let go of the decoder without freeing it (in a forked child); the next use makes a new one."""
        orphan_decoder(self.cc)
        self.cc = None
        self.fresh = True
        self.pid = os.getpid()

    def decoder(self):
        self._check_fork()
        if self.cc is None:
            self.cc = _new_decoder(take_decoder, self.r, **self.r._walk_threads())
        return self.cc

    def release(self) -> None:
        """Give the decoder back for another reader (its state is gone: restart before decoding)."""
        self._check_fork()
        if self.cc is not None:
            give_back_decoder(self.r.index, self.cc, **self.r._walk_threads())
            self.cc = None
        self.fresh = True

    def restart(self, k: int) -> None:
        r = self.r
        self._check_fork()
        if self.cc is None:
            self.decoder()
        elif not self.fresh or self.drained:
            self.cc.flush_buffers()
        self.k0 = self.next_dec = int(k)
        self.last_out = -1
        self.floor = int(r.index.pts[k])
        self.fresh = False
        self.drained = False

    def can_continue(self, p: int) -> bool:
        self._check_fork()
        if self.cc is None or self.fresh or self.drained or p <= self.last_out:
            return False
        s = int(self.r._start_dec[p])
        return self.k0 <= s <= self.next_dec

    def feed(self, i: int, data, off: int) -> list:
        """Feed packet *i* (its bytes at ``data[off:]``); the ``(position, frame)`` pairs that came out."""
        import av

        r = self.r
        n = int(r.index.size[i])
        pkt = av.Packet(n)  # FFmpeg's own buffer, with the zeroed padding decoders may read into
        np.frombuffer(pkt, np.uint8)[:] = np.frombuffer(data, np.uint8, n, off)
        pkt.pts = int(r.index.pts[i])
        if r.index.is_key[i]:
            pkt.is_keyframe = True
        self.next_dec = i + 1
        return self._placed(r._safe_decode(self.cc, pkt))

    def drain(self) -> list:
        self.drained = True
        return self._placed(self.r._safe_decode(self.cc, None))

    def _placed(self, frames) -> list:
        out = []
        r = self.r
        for fr in frames:
            ts = fr.pts
            if ts is None or (self.floor is not None and ts < self.floor):
                continue  # no time stamp: never guess; leading frames of an open GOP: references missing
            q = r._pos_of_pts.get(int(ts))
            if q is None:
                continue
            if q > self.last_out:
                self.last_out = q
            out.append((q, fr))
        r._count_decoded(len(out))
        return out
