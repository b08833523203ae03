"""Reading a video chunk through PyAV's demuxer: container seek to the keyframe, decode forward, pick
the frame whose pts is the target's. For chunks whose packets a bare decoder cannot take."""

from __future__ import annotations

import logging

from ...errors import CorruptChunkError
from .container import open_container, packet_ts
from .decoders import orphan_decoder
from .h264 import h264_chroma_format

log = logging.getLogger(__name__)


class DemuxedReading:
    """The demuxer path of :class:`~.reader.VideoChunkReader`. Owns ``_container``, ``_fobj``,
    ``_stream``, ``_demux`` and the walk's position (``_next_dec``, ``_last_out``, ``_syncing``,
    ``_sync_to``, ``_floor_pts``, ``_drained``, ``_linear_count``, ``_dec_of_pts``)."""

    def _open(self) -> None:
        self._close_container()
        if self._dec_of_pts is None:
            idx = self.index
            self._dec_of_pts = idx.derived("dec_of_pts", lambda: {int(t): d for d, t in enumerate(idx.pts.tolist())})
        self._container, self._fobj = open_container(self.storage, self.key)
        vs = self._container.streams.video
        if not vs:
            self._close_container()
            raise CorruptChunkError(f"{self.filename}: no video stream")
        self._stream = vs[0]
        cc = self._stream.codec_context
        cc.thread_type = "SLICE"
        cc.thread_count = self.threads
        if not self.index.codec and self._stream.codec_context.name == "h264":
            self._mono = h264_chroma_format(cc.extradata or b"") == 0
        # a fresh container sits at the start: decoding can begin without a seek
        self._demux = self._container.demux(self._stream)  # packet iterator; None = seek first
        self._next_dec = 0  # decode index of the next packet we expect to feed
        self._last_out = -1  # presentation position of the last frame out of the decoder
        self._syncing = True  # skipping packets until the keyframe we start from
        self._sync_to: int | None = None  # decode index of that keyframe, None = the first keyframe
        self._floor_pts = None
        self._drained = False
        self._linear_count = 0
        self._last_error: Exception | None = None

    def _forget_container(self) -> None:
        """In a forked child: drop the demuxer without freeing it (see :data:`.pools._live_readers`)."""
        if self._container is not None:
            orphan_decoder(self._container)
            orphan_decoder(self._fobj)
            self._container = self._fobj = None
            self._demux = None

    def _close_container(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001
                pass
            self._container = None
        if self._fobj is not None:
            try:
                self._fobj.close()
            except Exception:  # noqa: BLE001
                pass
            self._fobj = None

    def _get_frame(self, p: int):
        fr = self._cache_get(p)
        if fr is not None:
            return fr
        if self._closed:
            raise ValueError(f"{self.filename}: reader is closed")
        if self._container is None:  # let go of in a forked child
            self._open()
        if not self._can_continue_to(p):
            self._seek_for(p)
        return self._decode_until(p)

    def _can_continue_to(self, p: int) -> bool:
        if self._demux is None or self._drained or p <= self._last_out:
            return False
        if self._linear:
            return True
        return int(self._start_dec[p]) <= self._next_dec

    def _seek_for(self, p: int) -> None:
        import av

        if self._linear:
            self._restart_from_top()
            return
        self.seeks += 1
        start = int(self._start_dec[p])
        try:
            self._container.seek(int(self.index.pts[start]), backward=True, any_frame=False, stream=self._stream)
        except (av.error.FFmpegError, OSError) as e:
            log.debug("%s: seek failed (%s), decoding from the start", self.filename, e)
            self.seeks -= 1
            self._restart_from_top()
            return
        self._stream.codec_context.flush_buffers()
        self._demux = self._container.demux(self._stream)
        self._syncing, self._sync_to = True, start
        self._last_out = -1
        self._floor_pts = None
        self._drained = False

    def _restart_from_top(self) -> None:
        """Reopen the file and decode from its first keyframe."""
        self.seeks += 1
        self._open()

    def _next_packet(self):
        import av

        try:
            return next(self._demux)
        except StopIteration:
            return None
        except (av.error.FFmpegError, EOFError) as e:  # truncated tail
            self._last_error = e
            return None

    def _decode_until(self, p: int):
        cc = self._stream.codec_context
        found = None
        while found is None:
            pkt = self._next_packet()
            if pkt is None or not pkt.size:
                if self._drained:
                    break
                self._drained = True
                frames = self._safe_decode(cc, None)
            else:
                if self._linear:
                    if self._syncing:
                        self._syncing = False
                else:
                    ts = packet_ts(pkt)
                    d = self._dec_of_pts.get(ts) if ts is not None else None
                    if d is None:
                        continue  # not an indexed frame (e.g. cut short at the end of the file)
                    if self._syncing:
                        # skip (demux only, no decoding) to the keyframe we start from; the
                        # container may land a keyframe or more early
                        if self._sync_to is None:
                            if not self.index.is_key[d]:
                                continue
                        elif d < self._sync_to:
                            continue
                        elif d > self._sync_to:
                            # the container jumped past the keyframe we asked for: go from the top
                            log.debug("%s: seek overshot (%d > %d); restarting", self.filename, d, self._sync_to)
                            self._restart_from_top()
                            continue
                        self._syncing = False
                        self._floor_pts = int(self.index.pts[d])
                    self._next_dec = d + 1
                frames = self._safe_decode(cc, pkt)
            for fr in frames:
                q = self._place(fr)
                if q is None:
                    continue
                self.frames_decoded += 1
                if q > self._last_out:
                    self._last_out = q
                if q == p:
                    found = fr
                    self._remember(q, fr, protect=True)
                else:
                    self._remember(q, fr)
            if found is None and self._last_out > p:
                break
        if found is None:
            raise self._not_decodable(p)
        return found

    def _place(self, fr) -> int | None:
        """Presentation position of a decoded frame, or None to drop it."""
        if self._linear:
            q = self._linear_count
            self._linear_count += 1
            return q if q < self._n else None
        ts = fr.pts
        if ts is None:
            return self._last_out + 1 if self._last_out + 1 < self._n else None
        if self._floor_pts is not None and ts < self._floor_pts:
            return None  # leading frame of the keyframe we started at: references we never decoded
        return self._pos_of_pts.get(int(ts))
