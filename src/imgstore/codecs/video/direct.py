"""Packet-direct reading: a frame's packets read by byte range (one ``pread`` or range request) and
fed to a bare decoder, no container; reading on keeps the decoder going; intra-only frames decode
alone (or in bands, or ahead on the pool); a batch fetches its spans at once. Where a frame is not
found this way, the reader falls back to the demuxer for that chunk (:mod:`.demuxed`).
"""

from __future__ import annotations

import logging
import os

import numpy as np

from ...errors import CorruptChunkError
from . import pools
from .decoders import INTRA_CODECS
from .h264 import h264_slice_count
from .packet_source import PacketSource
from .readahead import READ_AHEAD, SEQUENTIAL_CACHE, _IntraAhead, _ReadAhead
from .walker import _Walker

log = logging.getLogger(__name__)

#: mean frames per keyframe from which one-slice H.264 is walked on frame threads (see _walk_threads)
FRAME_THREADS_MIN_GOP = 50
#: most bytes of packets a sequential reader fetches at once
_SEQ_BATCH_BYTES = 4 << 20


class DirectReading:
    """The packet-direct path of :class:`~.reader.VideoChunkReader`. Owns ``_src`` (the chunk's bytes),
    ``_payload``, ``_end``, ``_upto``, ``_intra``, ``_walker``, ``_ahead`` and ``_frame_threads``."""

    def _setup_direct(self) -> None:
        idx = self.index
        n = self._n
        self._payload = idx.payload
        self._end = idx.payload + idx.size.astype(np.int64)
        # the last packet (decode order) to feed so that the frame at each position can come out: every
        # frame shown before it decoded, plus the reorder delay the stream's order implies
        def upto():
            need = np.maximum.accumulate(self._dec_of_pos)
            delay = int(max(0, int((need - np.arange(n)).max()))) if n else 0
            return np.minimum(np.maximum(need, np.arange(n) + delay), n - 1).astype(np.int64), delay

        self._upto, delay = idx.derived("upto", upto)
        self._intra = idx.codec in INTRA_CODECS and bool(idx.is_key.all()) and delay == 0
        # a single MJPEG frame decodes in bands on several threads where the encoder wrote restart markers
        self._bands = self._intra and idx.codec == "mjpeg" and pools._decode_workers() > 1 and bool(idx.width)
        self._src = self.source = PacketSource(self.storage, self.key)
        self._walker = _Walker(self)

    def _walk_threads(self) -> dict:
        """Threading of the decoder that walks forward from keyframes.

        H.264 coded as one slice per frame with long GOPs (OpenCV's files: one keyframe per
        chunk) decodes on frame threads, faster than on slice threads by more than the frame or two
        they hold back (docs/design/video-reading.md). Files cut into slices (ours) or with GOPs
        shorter than :data:`FRAME_THREADS_MIN_GOP` keep slice threads, which hold nothing back; so
        do remote files (finding the slice count would cost a request).
        """
        if self._frame_threads is None:
            idx = self.index
            gop = len(idx) / max(1, int(np.count_nonzero(idx.is_key)))
            self._frame_threads = bool(self.direct and self._src.local and idx.codec == "h264"
                                       and gop >= FRAME_THREADS_MIN_GOP
                                       and idx.derived("slices", self._slices) == 1)
        if self._frame_threads:
            return {"threads": self.threads or pools._decode_workers(), "thread_type": "FRAME"}
        return {"threads": self.threads}

    def _slices(self) -> int | None:
        """Slices per frame, as coded in the first keyframe."""
        idx = self.index
        keys = np.flatnonzero(idx.is_key)
        if not len(keys):
            return None
        k = int(keys[0])
        try:
            data = self._src.read(int(self._payload[k]), int(self._end[k]))
        except (OSError, CorruptChunkError):
            return None
        return h264_slice_count(idx.extradata, data)

    # -- packet-direct decoding ----------------------------------------------------------
    def _batch_end(self, a: int) -> int:
        """Last packet of a sequential batch starting at decode index *a*."""
        n = self._n
        b = min(n - 1, a + 63)
        if b > a and int(self._end[b]) - int(self._payload[a]) > _SEQ_BATCH_BYTES:
            b = a + max(0, int(np.searchsorted(self._end[a:b + 1], int(self._payload[a]) + _SEQ_BATCH_BYTES)) - 1)
        return max(a, b)

    def _stop_ahead(self) -> None:
        ah = self._ahead
        if ah is not None:
            self._ahead = None
            if ah.pid != os.getpid():  # forked child: its threads and futures are the parent's
                if isinstance(ah, _ReadAhead):
                    self._walker = ah.w  # drops its decoder at the next use
                return
            ah.close()
            if isinstance(ah, _ReadAhead):
                self._walker = ah.w  # consistent again now that its thread has stopped

    def _read_direct(self, p: int):
        """The converted frame at *p*, decoded packet-direct (or through the demuxer if that fails)."""
        try:
            return self._read_direct_inner(p)
        except CorruptChunkError as e:  # no decoder for these packets, or bytes missing from the file
            log.debug("%s: packet-direct read of frame %d failed: %s", self.filename, p, e)
            return self._fall_back(p)

    def _read_direct_inner(self, p: int):
        ah = self._ahead
        if ah is not None:
            if ah.expects(p):
                try:
                    img = ah.take(p)
                except CorruptChunkError:
                    img = None
                except BaseException:
                    self._stop_ahead()
                    raise
                if img is not None:
                    if isinstance(ah, _IntraAhead):
                        ah.fill(p + 1)
                    return img
            self._stop_ahead()
            fr = self._cache_get(p)  # decoded by the read-ahead after all
            if fr is not None:
                return self._convert(fr)
        sequential = self.read_ahead and p == self._last_req + 1 and self._n - p > 2
        if self._intra:
            if sequential:
                ah = self._ahead = _IntraAhead(self)
                ah.fill(p)
                try:
                    img = ah.take(p)
                    ah.fill(p + 1)
                    return img
                except CorruptChunkError:
                    self._stop_ahead()
                except BaseException:
                    self._stop_ahead()
                    raise
            if self._bands:
                img = self._read_intra_bands(p)
                if img is not None:
                    return img
            fr = self._decode_intra_here(p)
        else:
            w = self._walker
            continuing = w.can_continue(p)
            fr = self._walk_to(p)
            if fr is not None and sequential and continuing and self._n - p > 2:
                # reading on: a thread decodes the next frames while the caller uses this one
                self._walker = _Walker(self)  # the read-ahead thread owns this one until it stops
                self._ahead = _ReadAhead(self, w, READ_AHEAD)
        if fr is None:
            return self._fall_back(p)
        return self._convert(fr)

    def _walk_to(self, p: int, keep: int | None = None):
        """Decode (main thread) until the frame at *p* comes out; it, or None if it does not.
        *keep*: cache at most that many of this reader's frames (default: as many as the budget holds)."""
        w = self._walker
        if not w.can_continue(p):
            k = int(self._start_dec[p])
            if not (w.fresh and k == 0):
                self.seeks += 1  # a jump (decoding from the first packet of a fresh reader is none)
            w.restart(k)
        n = self._n
        want = int(self._upto[p])
        found = None
        while found is None:
            if w.next_dec >= n:
                if w.drained:
                    break
                frames = w.drain()
            else:
                a = w.next_dec
                b = max(a, want)
                base = int(self._payload[a])
                data = self._src.read(base, int(self._end[b]))
                frames = []
                for i in range(a, b + 1):
                    frames += w.feed(i, data, int(self._payload[i]) - base)
                want = w.next_dec  # the decoder held it longer than the order implies: one more packet
            for q, fr in frames:
                if q == p:
                    found = fr
                    self._remember(q, fr, protect=True, limit=keep)
                else:
                    self._remember(q, fr, limit=keep)
            if found is None and w.last_out > p:
                break
        return found

    def _decode_packet_alone(self, cc, d: int):
        """Decode the (intra) packet at decode index *d* with decoder *cc*: the frame, or None."""
        import av

        data = self._src.read(int(self._payload[d]), int(self._end[d]))
        pkt = av.Packet(len(data))
        np.frombuffer(pkt, np.uint8)[:] = np.frombuffer(data, np.uint8)
        want = int(self.index.pts[d])
        pkt.pts = want
        pkt.is_keyframe = True
        frames = self._safe_decode(cc, pkt)
        if not frames:
            frames = self._safe_decode(cc, None)
            cc.flush_buffers()
        self._count_decoded(len(frames))
        for fr in frames:
            if fr.pts is not None and int(fr.pts) == want:
                return fr
        return None

    def _decode_intra_here(self, p: int):
        """The frame at *p* of an intra-only chunk, decoded on this thread. Not cached: a read is one
        decode, and a kept frame takes fresh memory the decoder's buffer pool cannot reuse
        (docs/design/video-reading.md)."""
        return self._decode_packet_alone(self._walker.decoder(), int(self._dec_of_pos[p]))

    def _decode_intra(self, p: int) -> np.ndarray:
        """Pool job: the frame at *p*, decoded on this worker's own decoder and converted."""
        fr = self._decode_packet_alone(pools._thread_decoder(self), int(self._dec_of_pos[p]))
        if fr is None:
            raise self._not_decodable(p)
        return self._convert(fr)

    def _read_many_direct(self, uniq: list[int]) -> dict[int, np.ndarray]:
        """Frames at the sorted positions *uniq* that are not cached; the caller reads any left out."""
        out: dict[int, np.ndarray] = {}
        todo = [p for p in uniq if not self._cached(p)]
        if not todo:
            return out
        # remote: every span needed, fetched at once (merged, concurrently), in batches that fit the cache
        if not self._src.local:
            spans, total = [], 0
            limit = self._src.cache_bytes // 2
            for p in todo:
                a, b = int(self._payload[self._start_dec[p]]), int(self._end[self._upto[p]])
                if spans and total + (b - a) > limit:
                    break
                spans.append((a, b))
                total += b - a
            self._src.prefetch(spans)
        if self._intra and len(todo) > 1:
            ex = pools._decode_executor()
            futs = [(p, ex.submit(self._decode_intra, p)) for p in todo]
            for p, f in futs:
                try:
                    out[p] = f.result()  # not cached, like any intra-only frame
                except CorruptChunkError:
                    continue  # read one by one (and through the demuxer if need be) by the caller
            return out
        for p in todo:
            fr = self._cache_get(p)
            if fr is None:
                fr = self._walk_to(p, keep=SEQUENTIAL_CACHE)  # a batch: every frame wanted is returned
                if fr is None:
                    break  # the caller reads the rest (through the demuxer)
            out[p] = self._convert(fr)
        return out

    def _fall_back(self, p: int) -> np.ndarray:
        """Packet-direct decoding did not give frame *p*: read this chunk through the demuxer from now on."""
        log.warning("%s: frame at position %d did not come out of the bare decoder; reading through the demuxer",
                    self.filename, p)
        self._stop_ahead()
        try:
            self._open()
        except CorruptChunkError as e:  # the demuxer cannot even open it: stay packet-direct
            raise self._not_decodable(p) from e
        self.direct = False
        return self._convert(self._get_frame(p))
