"""Reading a store: opening its frame index, picking up new frames (``refresh``, ``follow``), the open
chunk readers, and the frame API (``get_image``, ``get_next_image``, ``get_nearest_image``)."""

from __future__ import annotations

import logging
import posixpath
import time
from typing import Any

import numpy as np

from .chunk_ahead import ChunksAhead
from ..color import encoding_converter, is_color
from ..constants import STORE_MD_FILENAME
from ..errors import (CorruptChunkError, EndOfStoreError, FrameNotFoundError, ImgStoreError, StoreFormatError,
                      UnsupportedFormatError)
from ..format.chunkindex import FRAME_LOG_EXT
from ..format.lock import is_live_writer
from ..format.metadata import StoreMetadata, read_metadata
from ..index import FrameIndex, as_int_scalar
from ..index_cache import IndexReport, build_index

log = logging.getLogger("imgstore")
#: frames before the end of a chunk at which the next one starts decoding ahead: the frames an
#: intra-only reader has under way (2 per decoding thread); without it, each of the original's
#: 100-frame MJPEG chunks began on idle threads (9 ms at every chunk of 640x480, 2026-12-03)
_NEXT_CHUNK_LEAD = 4

FrameMeta = tuple[int, float]


def _as_stored(img: np.ndarray) -> np.ndarray:
    return img


class StoreReading(ChunksAhead):
    """The read side of :class:`~.base.ImgStore`. Owns the frame index (``_index``, ``_chunk_entries``,
    ``_index_report``), the open chunk readers (``_readers``), the read position (``_cursor``,
    ``_chunk_n``, ``_chunk_current_frame_idx``) and the frame decoding (``_decode_image``,
    ``_raw_frames``, set up by ``ImgStore.__init__``)."""

    #: chunk readers kept open (each holds its decoder and frame cache), the least recently used closed first
    _max_open_readers = 4

    def _init_read(self, index) -> None:
        self._md = self._options.pop("_read_metadata", None) or read_metadata(self._storage)
        self._check_class(self._md)
        self._layout = self._make_layout(self._md)
        self._imgshape = self._read_imgshape(self._md)
        self._imgdtype = self._md.imgdtype
        self._chunksize = self._md.chunksize
        self._format = self._md.format
        self._encoding = self._md.encoding
        self._readers: dict[int, Any] = {}
        self._cursor = -1
        self._chunk_n = 0  # the chunk of the last frame read, and its position there (the original's)
        self._chunk_current_frame_idx = -1
        self._open_index(index)

    def _open_index(self, index=None) -> None:
        if isinstance(index, FrameIndex):
            self._index = index
            self._chunk_entries = None
            self._index_report = IndexReport()
        elif index is not None:
            raise TypeError("index must be a FrameIndex")
        else:
            self._index, self._chunk_entries, self._index_report = build_index(
                self._storage, self._layout, frames_per_chunk=self._chunksize)
            self._index = self._cap_logged_chunks(self._index, self._chunk_entries)

    def _cap_logged_chunks(self, index: FrameIndex, entries) -> FrameIndex:
        """Cap chunks indexed only by their frame log at the frames their data really holds.

        A writer that died uncleanly (power cut: the log is fsynced, the chunk's
        data may not be) can leave a log longer than its chunk; reading past the
        data must not fail or return a wrong frame. Skipped while a live writer
        holds the lock (its log never runs ahead of its data).
        """
        logged = [e.chunk for e in entries or () if e.key and e.key.endswith(FRAME_LOG_EXT)]
        if not logged or is_live_writer(self._storage):
            return index
        caps = {}
        for c in logged:
            start, stop = index.chunk_range(c)
            if stop > start:
                have = self._frames_in_chunk_data(c, stop - start)
                if have < stop - start:
                    log.warning("chunk %d of %s: its frame log lists %d frames but only %d are readable; "
                                "reading %d", c, self._storage.location, stop - start, have, have)
                    caps[c] = have
        if not caps:
            return index
        segments = []
        for c in index.chunks:
            start, stop = index.chunk_range(c)
            stop = start + min(stop - start, caps.get(c, stop - start))
            segments.append((c, index.frame_number[start:stop], index.frame_time[start:stop]))
        return FrameIndex.from_chunks(segments)

    def _frames_in_chunk_data(self, chunk_n: int, logged: int) -> int:
        """How many of a chunk's first *logged* frames its data holds (0 if it cannot be opened)."""
        try:
            reader = self._new_chunk_reader(chunk_n)
        except (CorruptChunkError, OSError) as e:
            log.warning("chunk %d of %s cannot be read: %s", chunk_n, self._storage.location, e)
            return 0
        try:
            return min(logged, len(reader))
        except TypeError:  # one file per frame: count the files present from the first one on
            names = {i.name for i in self._storage.listdir(self._layout.chunk_key(chunk_n))}
            n = 0
            while n < logged and posixpath.basename(self._layout.frame_key(chunk_n, n)) in names:
                n += 1
            return n
        finally:
            reader.close()

    def _check_class(self, md: StoreMetadata) -> None:
        if md.class_name != self.class_name:
            raise UnsupportedFormatError(
                f"{self._storage.describe(STORE_MD_FILENAME)}: incompatible store, can_read:{self.class_name!r} "
                f"opened:{md.class_name!r}")

    def _read_imgshape(self, md: StoreMetadata) -> tuple[int, ...]:
        return md.imgshape

    def refresh(self) -> int:
        """Pick up frames written since the store was opened (or last refreshed).

        Only chunks whose index changed are read again. Returns the number of new frames.
        """
        self._require_read()
        before = self._index.frame_count
        previous = (self._chunk_entries, self._index) if self._chunk_entries is not None else None
        new_index, entries, report = build_index(self._storage, self._layout, previous=previous,
                                                 frames_per_chunk=self._chunksize)
        new_index = self._cap_logged_chunks(new_index, entries)
        for c in {e.chunk for e in set(entries) ^ set(self._chunk_entries or [])}:
            r = self._readers.pop(c, None)
            if r is not None:
                r.close()
        self._index, self._chunk_entries, self._index_report = new_index, entries, report
        return self._index.frame_count - before

    def follow(self, poll_interval: float = 0.1, timeout: float | None = None):
        """Yield ``(img, (frame_number, frame_time))`` for every frame after the last one read, waiting for new ones.

        Like ``tail -f``: at the end of the store it polls (:meth:`refresh`) for
        frames a live writer adds, and stops once no writer holds the store and
        nothing new appeared, or when *timeout* seconds pass without a new frame.
        """
        self._require_read()
        idle_since = time.monotonic()
        while True:
            if self._cursor + 1 < self._index.frame_count:
                yield self.get_next_image()
                idle_since = time.monotonic()
                continue
            recording = self.is_recording
            if self.refresh():
                continue
            if not recording:
                return
            if timeout is not None and time.monotonic() - idle_since > timeout:
                return
            time.sleep(poll_interval)

    @property
    def is_recording(self) -> bool:
        """True while a live writer process holds the store's lock."""
        return is_live_writer(self._storage)
    def _chunk_reader(self, chunk_n: int):
        r = self._readers.pop(chunk_n, None)
        if r is None:
            if len(self._readers) >= self._max_open_readers:
                old_n, old = next(iter(self._readers.items()))  # the least recently used
                old.close()
                del self._readers[old_n]
            r = self._new_chunk_reader(chunk_n)
        self._readers[chunk_n] = r  # most recently used last
        return r

    def _new_chunk_reader(self, chunk_n: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def _new_ahead_reader(self, chunk_n: int, alone: bool = False):
        """A reader of chunk *chunk_n* for decoding it ahead on a thread of its own (see :mod:`.chunk_ahead`);
        *alone*: no other chunk is being decoded meanwhile."""
        return self._new_chunk_reader(chunk_n)

    def _frame_bytes(self) -> int:
        """Bytes of one frame as handed out, if decoding chunks ahead pays; 0 where it does not."""
        return 0

    def _held_frame_bytes(self) -> int:
        """Bytes one frame decoded ahead is expected to take (:mod:`.chunk_ahead`)."""
        return self._frame_bytes()

    def _close_readers(self) -> None:
        self._stop_aheads()
        for r in getattr(self, "_readers", {}).values():
            r.close()
        self._readers = {}

    def _decoder(self):
        if self._decode_image is None:
            where = self._storage.describe(STORE_MD_FILENAME)
            if self._encoding and is_color(self._imgshape):
                raise StoreFormatError(f"{where}: encoding {self._encoding!r} needs single-channel frames, but "
                                       f"imgshape is {list(self._imgshape)}")
            try:
                conv = encoding_converter(self._encoding)
            except ImgStoreError as e:
                raise type(e)(f"{where}: {e}") from None
            self._decode_image = conv if conv is not None else _as_stored
        return self._decode_image

    def disable_decoding(self) -> None:
        """Return frames as stored, without converting the store's colour encoding."""
        self._decode_image = _as_stored
        self._raw_frames = True

    @property
    def _out_shape(self) -> tuple[int, ...]:
        """Shape of the frames handed out: as stored when decoding is disabled."""
        return tuple(self._imgshape) if self._raw_frames else tuple(self.image_shape)

    def _read_frame(self, frame_index: int, reading_on: bool = False) -> tuple[np.ndarray, FrameMeta]:
        """Frame *frame_index* and its metadata; *reading_on*: asked for by :meth:`get_next_image`
        (the first frame of a fresh store starts the chunks ahead too)."""
        img = where = None
        if frame_index == self._cursor + 1 and (frame_index or reading_on) and self._frame_bytes():
            got = self._ahead_frame(frame_index)  # reading on: the chunks after this one decode meanwhile
            if got is not None:
                img, where = self._decoder()(got[0]), got[1:]
                self._check_frame(img, *where)
        elif self.__dict__.get("_aheads"):
            self._stop_aheads()
        if img is None:
            img = self._frame_at(frame_index)
        if not img.flags.writeable:
            img = img.copy()  # callers of get_image may draw on the frame, as with the original
        fn = int(self._index.frame_number[frame_index])
        ft = float(self._index.frame_time[frame_index])
        self._cursor = int(frame_index)
        self._chunk_n, self._chunk_current_frame_idx = where or self._index.locate(frame_index)
        self.frame_number = fn
        self.frame_time = ft
        return img, (fn, ft)

    def _frame_where(self, chunk_n: int, pos: int) -> str:
        return self._storage.describe(self._layout.chunk_key(chunk_n)) + f" (frame {pos})"

    def _check_frame(self, img: np.ndarray, chunk_n: int, pos: int) -> None:
        want = self._out_shape
        if img.shape != tuple(want):
            raise CorruptChunkError(f"{self._frame_where(chunk_n, pos)}: frame has shape {img.shape}, store "
                                    f"metadata says {tuple(want)}")
        if img.dtype != self.dtype:
            raise CorruptChunkError(f"{self._frame_where(chunk_n, pos)}: frame has dtype {img.dtype}, store "
                                    f"metadata says {self.dtype}")

    def get_next_image(self) -> tuple[np.ndarray, FrameMeta]:
        """The frame after the last one read (the first frame on a fresh store)."""
        self._require_read()
        nxt = self._cursor + 1
        if nxt >= self._index.frame_count:
            raise EndOfStoreError(f"{self._basedir}: end of store ({self._index.frame_count} frames)")
        if nxt:
            self._read_on_into(nxt)
        return self._read_frame(nxt, reading_on=True)

    def _read_on_into(self, i: int) -> None:
        """Reading on to frame *i*: the chunk whose first frame is *i*, or the one *i* is
        ``_NEXT_CHUNK_LEAD`` frames before, starts decoding ahead (see ``read_ahead_from``): the frames
        of intra-only chunks keep the decoding threads busy across chunk ends."""
        idx = self._index
        c = int(np.searchsorted(idx.chunk_starts, i, side="right")) - 1
        for j, cj in ((i, c), (i + _NEXT_CHUNK_LEAD, c + 1)):
            if cj + 1 >= len(idx.chunk_starts) or j != int(idx.chunk_starts[cj]):
                continue  # not the first frame of a chunk (or past the last one)
            chunk_n = int(idx.chunk_ids[cj])
            if chunk_n in self.__dict__.get("_aheads", ()):
                continue
            try:
                start = getattr(self._chunk_reader(chunk_n), "read_ahead_from", None)
                if start is not None:
                    start(0)
            except Exception as e:  # noqa: BLE001 - the read of that frame reports what is wrong with the chunk
                log.debug("%s: chunk %d not read ahead: %s", self._basedir, chunk_n, e)

    def get_next_framenumber(self) -> int:
        """Frame number of the frame :meth:`get_next_image` would return."""
        self._require_read()
        nxt = self._cursor + 1
        if nxt >= self._index.frame_count:
            raise EndOfStoreError(f"{self._basedir}: end of store ({self._index.frame_count} frames)")
        return int(self._index.frame_number[nxt])

    def get_image(self, frame_number, exact_only: bool = True, frame_index=None):
        """The frame with *frame_number* (nearest one unless *exact_only*), or at *frame_index*."""
        self._require_read()
        if frame_index is not None:
            i = as_int_scalar(frame_index, "frame_index")
            if i is None or i < 0:
                raise FrameNotFoundError(f"frame_index {frame_index!r} not found (must be an integer >= 0)")
            return self._read_frame(self._checked_index(i, frame_index))
        if frame_number is None:
            raise FrameNotFoundError("give a frame_number or a frame_index")
        if exact_only:
            i = self._index.find_number(frame_number)
            if i < 0:
                raise FrameNotFoundError(f"frame #{frame_number} not found in any chunk")
        else:
            i = self._index.nearest_number(frame_number)
        return self._read_frame(i)

    def _checked_index(self, i: int, given) -> int:
        if i >= self._index.frame_count:
            raise FrameNotFoundError(f"frame_index {given} not found in index ({self._index.frame_count} frames)")
        return i

    def get_nearest_image(self, frame_time) -> tuple[np.ndarray, FrameMeta]:
        """The frame whose time is nearest to *frame_time*."""
        self._require_read()
        return self._read_frame(self._index.nearest_time(frame_time))

    def _frame_at(self, i: int) -> np.ndarray:
        chunk_n, pos = self._index.locate(i)
        try:
            raw = self._chunk_reader(chunk_n).read(pos)
        except IndexError as e:  # the chunk index lists a frame its data does not hold
            raise CorruptChunkError(str(e)) from None
        img = self._decoder()(raw)
        self._check_frame(img, chunk_n, pos)
        return img
