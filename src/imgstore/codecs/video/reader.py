"""``VideoChunkReader``: exact random access to the frames of one video chunk.

The reader opens the chunk's packet index and places every frame by its pts; it reads packet-direct
(:mod:`.direct`, MJPEG bands in :mod:`.bands`) or through the demuxer (:mod:`.demuxed`), decodes
ahead of sequential reads (:mod:`.readahead`) and converts pixels (:mod:`.pixels`).
"""

from __future__ import annotations

import itertools
import logging
import threading
from fractions import Fraction
from typing import Sequence

import numpy as np

from ...errors import CorruptChunkError
from ...storage.base import Storage
from ..base import ChunkReader
from ..frame_cache import FrameCache, shared_frame_cache
from .bands import BandDecoding
from .decoders import direct_decodable
from .demuxed import DemuxedReading
from .direct import DirectReading
from .h264 import h264_chroma_format
from .packet_index import PacketIndex, load_packet_index
from .pixels import PixelOutput, Unconverted
from .pools import _live_readers
from .readahead import _IntraAhead

log = logging.getLogger(__name__)

_reader_ids = itertools.count()


class VideoChunkReader(DirectReading, BandDecoding, DemuxedReading, PixelOutput, ChunkReader):
    """Exact random access to the frames of one video chunk.

    The frame at position *p* is the *p*-th frame in presentation (pts)
    order, per the chunk's packet index. Frames decoded on the way are kept
    in *cache* (default: the process-wide :func:`..frame_cache.shared_frame_cache`,
    bounded in bytes), at most *cache_frames* of this reader's if given (0:
    only the frame being read).

    Packet-direct decoding (:mod:`.direct`, used when the index knows
    where every packet's bytes are and the codec is a known one): a read
    takes the bytes from the keyframe at or before the target to the end of
    the packets the target needs (one ``pread``, or one range request for a
    remote store) and feeds them to a bare decoder; reading on from the last
    frame keeps that decoder going. B-frames: packets are fed in decode
    order up to the last one shown at or before the target (plus the
    reorder delay the index implies), more if the decoder holds the frame
    longer. Every frame is placed by its pts, never by counting. Sequential
    reading (a read at the position after the previous one that has to
    decode) starts decoding ahead: inter-frame codecs on one thread that
    takes the decoder over, intra-only codecs (MJPEG, FFV1) on a pool of
    threads with a decoder each. Intra-only frames are not cached (a read is
    one decode); a single MJPEG frame with restart markers is decoded in
    bands at once, on the caller's thread and band threads (:mod:`.bands`).

    Otherwise (no payload offsets: a version 1 index of a remote store, a
    container whose packets are not stored verbatim, duplicate timestamps,
    an unknown codec, or a decoder that did not return the frame) the chunk
    is read through the demuxer: container seek to the keyframe, decode
    forward, pick the frame whose pts is the target's.

    Output: colour readers return ``(h, w, 3)`` BGR uint8; gray readers
    ``(h, w)`` uint8 (or uint16 for 16-bit files): gray and full-range
    neutral-chroma files (monochrome H.264 known from its SPS) give the
    stored samples, any other YUV/RGB file is converted to BGR and then to
    gray with OpenCV's fixed-point weights, so stores written by the
    original (OpenCV) imgstore read back exactly as it read them.

    The packet index comes from *index*, else the chunk's ``.pktidx.npz``,
    else is built by demuxing (and saved beside the chunk if *write_index*
    and the storage is writable). *direct* False forces the demuxer path;
    *read_ahead* False keeps all decoding on the caller's thread.

    Instrumentation: ``frames_decoded`` (frames out of the decoders),
    ``seeks`` (decoding restarted at a keyframe), ``cache_hits``, ``direct``
    (packet-direct decoding in use), ``source`` (its :class:`PacketSource`:
    remote requests and bytes). Calls are serialized with a lock.
    """

    def __init__(
        self,
        storage: Storage,
        key: str,
        *,
        color: bool,
        imgshape: Sequence[int] | None = None,
        dtype=np.uint8,
        cache_frames: int | None = None,
        cache: FrameCache | None = None,
        threads: int = 0,
        index: PacketIndex | None = None,
        write_index: bool = True,
        direct: bool | None = None,
        read_ahead: bool = True,
    ) -> None:
        self.storage = storage
        self.key = key
        self.filename = storage.describe(key)
        self.color = bool(color)
        self.imgshape = tuple(int(x) for x in imgshape) if imgshape is not None else None
        self.dtype = np.dtype(dtype)
        self.cache_frames = None if cache_frames is None else max(0, int(cache_frames))
        self.cache = cache if cache is not None else shared_frame_cache()
        self._owner = next(_reader_ids)
        self.threads = int(threads)
        self.read_ahead = bool(read_ahead)
        self.frames_decoded = 0
        self.seeks = 0
        self.cache_hits = 0
        self._count_lock = threading.Lock()
        self._lock = threading.RLock()
        self._container = None
        self._fobj = None
        self._closed = False
        self._ahead = None
        self._walker = None
        self._src = None
        self.source = None
        self._bands = False
        self._stack_frame = None  # the picture MJPEG bands are put back together in (see _stack)
        _live_readers.add(self)

        self.index = index if index is not None else load_packet_index(storage, key, write=write_index)
        idx = self.index
        n = len(idx)
        self._n = n
        self._linear = not idx.unique_pts
        if self._linear:
            log.warning("%s: duplicate timestamps, random access decodes from the start", self.filename)
        # presentation position <-> decode index <-> pts
        self._dec_of_pos = idx.order
        self._pos_of_pts = idx.derived("pos_of_pts",
                                       lambda: {int(t): p for p, t in enumerate(idx.pts_sorted.tolist())})
        self._dec_of_pts = None  # built when the demuxer path needs it
        self._start_dec = idx.derived("start_dec", self._keyframe_starts)
        self._mono = idx.codec == "h264" and idx.derived("chroma", lambda: h264_chroma_format(idx.extradata)) == 0
        self.direct = bool(direct is not False and not self._linear and n and direct_decodable(idx))
        self._last_req = -2
        self._frame_threads: bool | None = None  # decided at the first walk (see _walk_threads)
        if self.direct:
            self._setup_direct()
        else:
            self._open()

    def _keyframe_starts(self) -> np.ndarray:
        """For each presentation position, the decode index of the keyframe to start decoding from."""
        idx = self.index
        n = len(idx)
        if n == 0 or self._linear:
            return np.zeros(n, dtype=np.int64)
        last_key = np.maximum.accumulate(np.where(idx.is_key, np.arange(n), -1))
        dec = self._dec_of_pos
        start = last_key[dec]
        # a keyframe shown *after* the target (open-GOP leading frame): start from the one before
        for p in np.flatnonzero(idx.pts[np.maximum(start, 0)] > idx.pts[dec]):
            k, target = int(start[p]), idx.pts[dec[p]]
            while k > 0 and idx.pts[k] > target:
                k = int(last_key[k - 1])
            start[p] = k
        return np.maximum(start, 0).astype(np.int64)

    # -- public --------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    @property
    def frame_count(self) -> int:
        return self._n

    @property
    def pts(self) -> np.ndarray:
        """Presentation timestamps (stream time base) of the frames, by position."""
        return self.index.pts_sorted

    @property
    def time_base(self) -> Fraction:
        return self.index.time_base

    def read(self, position: int) -> np.ndarray:
        with self._lock:
            p = self._check_pos(position)
            self._check_open()
            img = self._read_one(p)
            self._last_req = p
            return img

    def read_unconverted(self, position: int) -> np.ndarray | Unconverted:
        """The frame at *position*; a colour frame decoded but not converted yet (:class:`Unconverted`).
        A decoded 4:2:0 frame is half the bytes of its BGR image: frames held ahead of a reader
        (:mod:`imgstore.stores.chunk_ahead`) are held so, and converted by the thread that takes them
        (docs/design/parallel-reading.md)."""
        with self._lock:
            self._defer = threading.get_ident() if self.color else None
            try:
                return self.read(position)
            finally:
                self._defer = None

    def _read_one(self, p: int) -> np.ndarray:
        fr = self._cache_get(p)
        if fr is not None:
            return self._convert(fr)
        if self.direct:
            return self._read_direct(p)
        return self._convert(self._get_frame(p))

    def entry_positions(self) -> np.ndarray | None:
        """Positions whose own packet is the keyframe decoding starts from, and after which no frame needs
        an earlier one: a fresh reader reading on in order from one decodes nothing shown before it.
        None for intra-only chunks (every position); only 0 where decoding must start at the beginning."""
        n = self._n
        if n and not self._linear and self.index.is_key.all() and bool(np.all(self._dec_of_pos == np.arange(n))):
            return None
        if self._linear or n == 0:
            return np.zeros(min(n, 1), dtype=np.int64)
        start = self._start_dec
        later = np.minimum.accumulate(start[::-1])[::-1]  # the earliest start any frame from here on needs
        ok = (start == self._dec_of_pos) & (later >= start)
        ok[0] = True
        return np.flatnonzero(ok).astype(np.int64)

    def read_ahead_from(self, position: int) -> None:
        """Start decoding the frames from *position* on in the background, for a sequential read
        arriving there (a store reading on from the chunk before). Intra-only chunks read
        packet-direct; any other chunk starts reading ahead at its second sequential read."""
        with self._lock:
            p = int(position)
            if self._closed or not self.direct or not self._intra or not self.read_ahead \
                    or self._ahead is not None or not 0 <= p < self._n - 2:
                return  # (a position out of range is for the read to report)
            self._ahead = _IntraAhead(self)
            self._ahead.fill(p)

    def read_many(self, positions: Sequence[int]) -> list[np.ndarray]:
        """Frames at *positions* (any order, repeats allowed); each GOP is decoded at most once.

        Packet-direct: the byte spans the frames need are fetched first (for a
        remote store merged and concurrently), intra-only frames are decoded in
        parallel.
        """
        with self._lock:
            pos = [self._check_pos(p) for p in positions]
            self._check_open()
            uniq = sorted(set(pos))
            out: dict[int, np.ndarray] = {}
            if self.direct and uniq:
                self._stop_ahead()
                try:
                    out = self._read_many_direct(uniq)
                except CorruptChunkError as e:  # read one by one below (through the demuxer if need be)
                    log.debug("%s: packet-direct batch failed: %s", self.filename, e)
                    out = {}
            for p in uniq:
                if p not in out:
                    out[p] = self._read_one(p)
            res = []
            seen = set()
            for p in pos:
                res.append(out[p] if p not in seen else out[p].copy())
                seen.add(p)
            if uniq:
                self._last_req = -2  # a batch is not a sequential read
            return res

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop_ahead()
            self.cache.discard(self._owner)
            self._demux = None
            self._close_container()
            if self._src is not None:
                self._src.close()
            if self._walker is not None:
                self._walker.release()
                self._walker = None

    def __repr__(self) -> str:
        return f"VideoChunkReader({self.filename!r}, frames={self._n})"

    # -- shared --------------------------------------------------------------------------
    def _check_pos(self, position) -> int:
        p = int(position)
        if not 0 <= p < self._n:
            raise IndexError(f"{self.filename}: frame position {position} out of range (chunk has {self._n} frames)")
        return p

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self.filename}: reader is closed")

    def _count_decoded(self, k: int) -> None:
        if k:
            with self._count_lock:
                self.frames_decoded += k

    def _cache_get(self, p: int):
        fr = self.cache.get(self._owner, p)
        if fr is not None:
            self.cache_hits += 1
        return fr

    def _cached(self, p: int) -> bool:
        return (self._owner, p) in self.cache

    def _not_decodable(self, p: int):
        why = f": {self._last_error}" if getattr(self, "_last_error", None) else ""
        return CorruptChunkError(
            f"{self.filename}: frame at position {p} (pts {int(self.index.pts_sorted[p])}) could not be decoded{why}"
        )

    def _safe_decode(self, cc, pkt):
        import av

        try:
            return cc.decode(pkt)
        except (av.error.FFmpegError, EOFError) as e:
            if isinstance(e, EOFError) or getattr(e, "errno", None) == getattr(av.error, "EOF", object()):
                return []
            self._last_error = e
            log.debug("%s: decoder error: %s", self.filename, e)
            return []

    def _remember(self, q: int, fr, protect: bool = False, limit: int | None = None) -> None:
        """Cache frame *fr* (position *q*); *limit*: keep at most that many of this reader's frames
        (reading on); *protect*: cache it even if this reader caches nothing (it is being read)."""
        cap = self.cache_frames
        if cap == 0 and not protect:
            return
        if cap is not None:
            limit = cap if limit is None else min(cap, limit)
        self.cache.put(self._owner, q, fr, limit=limit)
