"""The ``ImgStore`` API shared by every store kind."""

from __future__ import annotations

import datetime
import logging
import os
import posixpath
import threading
import time
from typing import Any, Iterator

import numpy as np

from ..color import encoding_converter, ensure_color, ensure_grayscale, is_color
from ..constants import (EXTRA_DATA_FILE_EXTENSIONS, FRAME_INDEX_CACHE_FILENAME, STORE_INDEX_FILENAME,
                         STORE_LOCK_FILENAME, STORE_MD_FILENAME, STORE_MD_KEY)
from ..errors import (CorruptChunkError, EndOfStoreError, FrameNotFoundError, ImgStoreError, StoreExistsError,
                      StoreFormatError, StoreLockedError, UnsupportedFormatError)
from ..format import extradata as _xd
from ..format.chunkindex import FRAME_LOG_EXT, FrameLog, find_chunk_index, write_chunk_index
from ..format.layout import Layout
from ..format.lock import is_live_writer, lock_payload, read_lock
from ..format.metadata import (StoreMetadata, created_datetime, new_store_metadata, read_metadata,
                               write_metadata)
from ..format.sqlite_index import write_sqlite_index
from ..index import FrameIndex, as_int_scalar
from ..index_cache import IndexReport, build_index
from ..storage import open_storage
from ..storage.remote import is_url

log = logging.getLogger("imgstore")

FrameMeta = tuple[int, float]


def _as_stored(img: np.ndarray) -> np.ndarray:
    return img


class _ChunkFinish:
    """Finishing one written chunk: close its writer, log its last frames, write its ``.npz`` index,
    close its extra data, remove its frame log (in that order: a reader always finds every frame in
    the frame log or the index)."""

    def __init__(self, store: "ImgStore", writer, frame_log: FrameLog, extra, chunk_n: int,
                 frame_numbers: list, frame_times: list) -> None:
        self.store = store
        self.writer = writer
        self.frame_log = frame_log
        self.extra = extra
        self.chunk_n = chunk_n
        self.fn = frame_numbers
        self.ft = frame_times
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        try:
            s = self.store
            if self.writer is not None:
                self.writer.close()
            self.frame_log.log_upto(self.fn, self.ft, len(self.fn))
            write_chunk_index(s._storage, s._layout.index_base(self.chunk_n), self.fn, self.ft,
                              store_md=s._md.store)
            if self.extra is not None:
                self.extra.close()
            self.frame_log.close(remove=True)  # the .npz now holds it all: the original's layout
        except BaseException as e:  # noqa: BLE001 - raised by raise_if_failed
            self.error = e

    def start(self) -> None:
        # not a daemon: an interpreter that exits without close() still finishes the chunk
        self.thread = threading.Thread(target=self.run, name=f"imgstore-finish-chunk-{self.chunk_n}")
        self.thread.start()

    def done(self) -> bool:
        return self.thread is None or not self.thread.is_alive()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()

    def raise_if_failed(self) -> None:
        if self.error is not None:
            e, self.error = self.error, None
            raise e


class ImgStore:
    """A store of video frames with their frame numbers, times and metadata.

    Open one with :func:`imgstore.new_for_filename` (read) or
    :func:`imgstore.new_for_format` (write).
    """

    class_name = "ImgStore"
    _DEFAULT_CHUNKSIZE = 200
    _supported_modes = "rw"
    FRAME_MD = ("frame_number", "frame_time")

    #: chunk readers kept open (each holds its decoder and frame cache), the least recently used closed first
    _max_open_readers = 4

    #: seconds between fsyncs of the chunk being written (its frame log is in the OS after every frame)
    index_flush_interval = 1.0

    def __init__(self, basedir: str | os.PathLike | None = None, mode: str = "r", imgshape=None,
                 imgdtype=np.uint8, chunksize: int | None = None, metadata: dict | None = None,
                 encoding: str | None = None, format: str | None = None, index=None,
                 **kwargs: Any) -> None:
        if basedir is None:
            raise StoreFormatError("basedir (the store folder) must be given")
        if mode not in ("r", "w") or mode not in self._supported_modes:
            raise UnsupportedFormatError(f"mode {mode!r} not supported (use 'r' or 'w')")
        self._basedir = os.fspath(basedir) if not is_url(str(basedir)) else str(basedir)
        self._mode = mode
        self._options = kwargs
        self._decode_image = None
        self._raw_frames = False
        self._closed = False

        # state visible through properties in both modes
        self.frame_number: Any = np.nan
        self.frame_time: Any = np.nan

        if mode == "w":
            if imgshape is None or imgdtype is None or format is None:
                raise StoreFormatError("imgshape, imgdtype, chunksize, format must not be None")
            if chunksize is None:
                chunksize = self._DEFAULT_CHUNKSIZE
            self._storage = open_storage(self._basedir, create=True, storage_options=kwargs.get("storage_options"))
            self._init_write(tuple(int(x) for x in imgshape), np.dtype(imgdtype).name, int(chunksize),
                             metadata, encoding, format)
        else:
            self._storage = open_storage(self._basedir, storage_options=kwargs.get("storage_options"))
            self._init_read(index)

    # ------------------------------------------------------------------ reading
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

    def _make_layout(self, md: StoreMetadata) -> Layout:  # pragma: no cover - abstract
        raise NotImplementedError

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

    # ------------------------------------------------------------------ writing
    def _init_write(self, imgshape, imgdtype, chunksize, metadata, encoding, fmt) -> None:
        if chunksize <= 0:
            raise StoreFormatError(f"chunksize must be positive, not {chunksize}")
        if metadata is not None and not isinstance(metadata, dict):
            raise StoreFormatError("metadata must be a dictionary")
        user = dict(metadata or {})
        extra_store = user.pop(STORE_MD_KEY, None) or {}
        fmt, write_shape, encoding, self._encode_image = self._prepare_write(fmt, imgshape, imgdtype, encoding)
        smd = dict(extra_store)
        smd.update(new_store_metadata(class_name=self.class_name, fmt=fmt, imgshape=write_shape,
                                      imgdtype=imgdtype, chunksize=chunksize, encoding=encoding,
                                      extra=self._extra_store_metadata(fmt)))
        self._md = StoreMetadata(store=smd, user=user)
        self._layout = self._make_layout(self._md)
        self._imgshape = tuple(write_shape)
        self._writer_imgshape = tuple(imgshape)
        self._imgdtype = imgdtype
        self._chunksize = chunksize
        self._format = fmt
        self._encoding = encoding

        self._acquire_lock()
        if self._storage.exists(STORE_MD_FILENAME) and not self._options.get("overwrite"):
            self._release_lock()
            raise StoreExistsError(f"{self._storage.describe(STORE_MD_FILENAME)}: a store already exists here; "
                                   f"refusing to overwrite it (pass overwrite=True to replace it)")
        if self._options.get("overwrite"):
            for c in self._layout.list_chunks(self._storage):
                self._delete_chunk(c)
        write_metadata(self._storage, self._md)

        self._frame_n = 0
        self._chunk_n = 0
        self._chunk_fn: list[int] = []
        self._chunk_ft: list[float] = []
        self._writer = None
        self._extra: _xd.ExtraDataWriter | None = None
        self._finishing: _ChunkFinish | None = None
        self._last_index_flush = time.monotonic()
        self._frame_min = np.nan
        self._frame_max = np.nan
        self._t0 = self._tN = np.nan
        self._start_chunk(0)

    def _prepare_write(self, fmt, imgshape, imgdtype, encoding):
        """Validate the format; returns (format name stored, imgshape stored, encoding stored, encode fn)."""
        raise NotImplementedError

    def _extra_store_metadata(self, fmt) -> dict[str, Any]:
        return {}

    def _acquire_lock(self) -> None:
        """Take the store's ``.lock``; refuse while another live process holds it."""
        payload = lock_payload()
        for _ in range(3):
            if self._storage.create_exclusive(STORE_LOCK_FILENAME, payload):
                return
            holder = read_lock(self._storage)
            if holder is not None and holder.alive():
                raise StoreLockedError(f"{self._storage.describe(STORE_LOCK_FILENAME)}: store is being written by "
                                       f"{holder.describe()}; a second writer is refused (delete the lock file "
                                       f"only if that writer is gone)")
            log.warning("removing stale lock %s (%s)", self._storage.describe(STORE_LOCK_FILENAME),
                        holder.describe() if holder else "empty")
            try:
                self._storage.remove(STORE_LOCK_FILENAME)
            except FileNotFoundError:
                pass
        raise StoreLockedError(f"{self._storage.describe(STORE_LOCK_FILENAME)}: could not take the lock")

    def _drop_frame_index_cache(self) -> None:
        """Remove a frame-index cache a reader left while recording: a server that lists no folders
        would trust it, and miss the chunks written since."""
        try:
            if self._storage.exists(FRAME_INDEX_CACHE_FILENAME):
                self._storage.remove(FRAME_INDEX_CACHE_FILENAME)
        except OSError as e:
            log.warning("could not remove %s: %s", self._storage.describe(FRAME_INDEX_CACHE_FILENAME), e)

    def _release_lock(self) -> None:
        try:
            if self._storage.exists(STORE_LOCK_FILENAME):
                self._storage.remove(STORE_LOCK_FILENAME)
        except OSError:
            log.warning("could not remove lock file %s", self._storage.describe(STORE_LOCK_FILENAME))

    def _start_chunk(self, chunk_n: int) -> None:
        self._chunk_n = chunk_n
        self._chunk_fn = []
        self._chunk_ft = []
        self._writer = self._new_chunk_writer(chunk_n)
        self._frame_log = FrameLog(self._storage, self._layout.index_base(chunk_n))
        self._extra = None

    def _new_chunk_writer(self, chunk_n: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def _log_durable_frames(self) -> None:
        """Append frame-log records for the frames the codec has completed on disk."""
        self._frame_log.log_upto(self._chunk_fn, self._chunk_ft, self._writer.durable_count())

    def _finish_chunk(self, wait: bool = True) -> None:
        """Close the chunk being written: its file(s) complete, its ``.npz`` index written, its frame log gone.

        *wait* False: done on a background thread while the next chunk takes frames (a video
        encoder draining its queue and a remux take 0.05-0.2 s); at most one chunk finishes at a
        time, and its errors are raised by the next ``add_image``, ``flush`` or ``close``. This
        chunk is finished even when the previous one failed; that failure is raised afterwards.
        """
        try:
            self._wait_finishing()
        finally:
            job = _ChunkFinish(self, self._writer, self._frame_log, self._extra, self._chunk_n,
                               self._chunk_fn, self._chunk_ft)
            self._writer = self._extra = None
            if wait:
                job.run()
            else:
                self._finishing = job
                job.start()
        if wait:
            job.raise_if_failed()  # a job in the background reports at the next add_image / flush / close

    def _wait_finishing(self) -> None:
        """Wait for the chunk finishing in the background, if any; raise what it failed with."""
        job = self._finishing
        if job is not None:
            self._finishing = None
            job.join()
            job.raise_if_failed()

    def _coerce_image(self, img: np.ndarray) -> np.ndarray:
        img = np.asarray(img)
        where = self._storage.describe()
        if img.dtype.name != self._imgdtype:
            raise ValueError(f"{where}: image dtype {img.dtype} does not match the store's {self._imgdtype}")
        want_color = is_color(self._writer_imgshape)
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        if img.ndim not in (2, 3):
            raise ValueError(f"{where}: image of shape {img.shape} is not (h, w) or (h, w, 3)")
        if img.ndim == 3 and not want_color:
            img = ensure_grayscale(img)
        elif img.ndim == 2 and want_color:
            img = ensure_color(img)
        h, w = self._writer_imgshape[:2]
        if img.shape[:2] != (h, w):
            raise ValueError(f"{where}: image of shape {img.shape} does not match the store's imgshape "
                             f"{self._writer_imgshape}")
        return img

    def add_image(self, img: np.ndarray, frame_number, frame_time) -> None:
        """Append a frame with its frame number and time."""
        self._require_write()
        if self._finishing is not None and self._finishing.done():
            self._wait_finishing()  # the previous chunk is finished: raise if that failed
        fn, ft = self._checked_frame_meta(frame_number, frame_time)
        img = self._coerce_image(img)
        if self._encode_image is not None:
            img = self._encode_image(img)
        if self._chunk_fn and self._frame_n % self._chunksize == 0:
            # the chunk is full: it is finished only now, when the next frame arrives, so that extra
            # data added after its last frame is still stored with it
            try:
                self._finish_chunk(wait=False)
            finally:
                self._start_chunk(self._chunk_n + 1)  # the next frame has a chunk even if the last one failed
        self._chunk_fn.append(fn)
        self._chunk_ft.append(ft)
        try:
            self._writer.write(img)
        except BaseException:
            del self._chunk_fn[-1], self._chunk_ft[-1]
            raise

        self._frame_max = fn if np.isnan(self._frame_max) else max(self._frame_max, fn)
        self._frame_min = fn if np.isnan(self._frame_min) else min(self._frame_min, fn)
        self.frame_number = frame_number
        self.frame_time = frame_time
        if self._frame_n == 0:
            self._t0 = ft
        self._tN = ft
        self._frame_n += 1

        self._log_durable_frames()
        if time.monotonic() - self._last_index_flush >= self.index_flush_interval:
            self._sync_durable()

    def _checked_frame_meta(self, frame_number, frame_time) -> tuple[int, float]:
        """``(frame_number, frame_time)`` as stored; ValueError naming the store if either is unusable."""
        where = self._storage.describe()
        try:
            fn = as_int_scalar(frame_number, "frame_number")
        except TypeError as e:
            raise TypeError(f"{where}: {e}") from None
        except ImgStoreError as e:  # not finite
            raise ValueError(f"{where}: {e}") from None
        if fn is None:
            raise ValueError(f"{where}: frame_number {frame_number!r} is not an integer")
        if not -2 ** 63 <= fn < 2 ** 63:
            raise ValueError(f"{where}: frame_number {frame_number!r} does not fit in 64 bits")
        try:
            ft = float(frame_time)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: frame_time {frame_time!r} is not a number") from None
        if not np.isfinite(ft):
            raise ValueError(f"{where}: frame_time {frame_time!r} is not finite (frame_number {fn})")
        return fn, ft

    def _sync_durable(self) -> None:
        """Log and fsync what is complete on disk now, without waiting for queued frames."""
        self._log_durable_frames()
        self._frame_log.sync()
        if self._extra is not None:
            self._extra.sync()
        self._last_index_flush = time.monotonic()

    def flush(self) -> None:
        """Make every frame added so far durable (on disk and in the frame log) and visible to readers."""
        self._require_write()
        self._wait_finishing()
        self._writer.flush()
        self._sync_durable()

    def add_extra_data(self, **data) -> None:
        """Store JSON-serialisable values tagged with the last added frame."""
        self._require_write()
        if not data:
            return
        data["frame_time"] = self.frame_time
        data["frame_number"] = self.frame_number
        data["frame_index"] = self._frame_n - 1
        try:
            _xd.encode_record(data)
        except (TypeError, ValueError) as e:
            log.warning("extra data not stored: %s", e)
            return
        if self._extra is None:
            self._extra = _xd.ExtraDataWriter(self._storage, self._layout.extra_data_key(self._chunk_n))
        self._extra.append(data)

    def close(self, save_index: bool = False) -> None:
        """Finish writing (write mode) and release files."""
        if self._mode == "w":
            if not self._closed:
                self._closed = True
                try:
                    self._finish_chunk()
                finally:  # even if the last chunk failed: its frames stay readable from its frame log
                    self._drop_frame_index_cache()
                    self._release_lock()
                if save_index:
                    self._write_sqlite_index(STORE_INDEX_FILENAME)
        else:
            self._close_readers()

    def empty(self) -> None:
        """Delete every frame written so far and start again at chunk 0."""
        if self._mode != "w":
            raise UnsupportedFormatError("can only empty stores for writing")
        self._wait_finishing()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._frame_log.close(remove=True)
        if self._extra is not None:
            self._extra.discard()
            self._extra = None
        for c in self._layout.list_chunks(self._storage):
            self._delete_chunk(c)
        self._frame_n = 0
        self._frame_min = self._frame_max = np.nan
        self._t0 = self._tN = np.nan
        self.frame_number = self.frame_time = np.nan
        self._closed = False
        self._start_chunk(0)

    def _delete_chunk(self, chunk_n: int) -> None:
        for is_motif, key in self._layout.extra_data_candidates(chunk_n):
            if self._storage.exists(key):
                self._storage.remove(key)
        base = self._layout.index_base(chunk_n)
        for ext in (".npz", ".yaml", ".frames"):
            if self._storage.exists(base + ext):
                self._storage.remove(base + ext)

    # ------------------------------------------------------------------ frame access
    def _require_read(self) -> None:
        if self._mode != "r":
            raise UnsupportedFormatError("store is open for writing; reopen it with mode='r' to read")

    def _require_write(self) -> None:
        if self._mode != "w":
            raise UnsupportedFormatError("store is open for reading")
        if self._closed:
            raise UnsupportedFormatError("store is closed")

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

    def _close_readers(self) -> None:
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

    def _read_frame(self, frame_index: int) -> tuple[np.ndarray, FrameMeta]:
        img = self._frame_at(frame_index)
        if not img.flags.writeable:
            img = img.copy()  # callers of get_image may draw on the frame, as with the original
        fn = int(self._index.frame_number[frame_index])
        ft = float(self._index.frame_time[frame_index])
        self._cursor = int(frame_index)
        self._chunk_n, self._chunk_current_frame_idx = self._index.locate(frame_index)
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
        return self._read_frame(nxt)

    def _read_on_into(self, i: int) -> None:
        """Reading on to frame *i*: if it is the first of a chunk, that chunk's reader can start
        decoding ahead at once (see ``read_ahead_from``), not at its second read."""
        chunk_n, pos = self._index.locate(i)
        if pos:
            return
        try:
            start = getattr(self._chunk_reader(chunk_n), "read_ahead_from", None)
            if start is not None:
                start(0)
        except Exception as e:  # noqa: BLE001 - the read of frame i reports what is wrong with that chunk
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

    # ------------------------------------------------------------------ array view
    def __len__(self) -> int:
        return self.frame_count

    def __iter__(self) -> Iterator[np.ndarray]:
        """Every frame in store order (does not move :meth:`get_next_image`'s position)."""
        self._require_read()
        for c in self._index.chunks:
            start, stop = self._index.chunk_range(c)
            for i in range(start, stop):
                yield self[i]

    def _frame_at(self, i: int) -> np.ndarray:
        chunk_n, pos = self._index.locate(i)
        try:
            raw = self._chunk_reader(chunk_n).read(pos)
        except IndexError as e:  # the chunk index lists a frame its data does not hold
            raise CorruptChunkError(str(e)) from None
        img = self._decoder()(raw)
        self._check_frame(img, chunk_n, pos)
        return img

    def __getitem__(self, key) -> np.ndarray:
        """Frames by frame index: ``store[i]``, ``store[a:b:s]``, ``store[[i, j, k]]`` (numpy semantics).

        Ranges and lists are read chunk by chunk, each chunk decoded once; a
        range inside one raw chunk comes back as a zero-copy read-only view.
        """
        self._require_read()
        n = self._index.frame_count
        if isinstance(key, tuple):
            frames = self[key[0]]
            return frames[(slice(None),) + key[1:]] if not np.isscalar(key[0]) and not isinstance(
                key[0], (int, np.integer)) else frames[key[1:]]
        if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            i = int(key)
            if i < -n or i >= n:
                raise IndexError(f"frame index {i} out of range for a store of {n} frames")
            return self._frame_at(i % n if i < 0 else i)
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1 and stop > start:
                view = self._contiguous_view(start, stop)
                if view is not None:
                    return view
            idx = np.arange(start, stop, step)
        else:
            arr = np.asarray(key)
            if arr.dtype == bool:
                if arr.shape != (n,):
                    raise IndexError(f"boolean index of shape {arr.shape} does not match {n} frames")
                idx = np.flatnonzero(arr)
            elif arr.dtype.kind in "iu" and arr.ndim == 1:
                if len(arr) and (arr.min() < -n or arr.max() >= n):
                    raise IndexError(f"frame index out of range for a store of {n} frames")
                idx = np.where(arr < 0, arr + n, arr)
            elif arr.size == 0:
                idx = np.zeros(0, dtype=np.int64)
            else:
                raise IndexError(f"cannot index frames with {key!r}")
        return self._gather(idx)

    def _contiguous_view(self, start: int, stop: int):
        """A zero-copy view of frames [start, stop) if they lie in one chunk whose codec can give one."""
        c0, p0 = self._index.locate(start)
        c1, p1 = self._index.locate(stop - 1)
        if c0 != c1:
            return None
        reader = self._chunk_reader(c0)
        view = getattr(reader, "read_range", None)
        if view is None or self._encoding:
            return None
        try:
            out = view(p0, p1 + 1)
        except IndexError as e:
            raise CorruptChunkError(str(e)) from None
        if out.shape[1:] != self._out_shape or out.dtype != self.dtype:
            self._check_frame(out[0], c0, p0)
        return out

    def _gather(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx),) + self._out_shape, dtype=self.dtype)
        if not len(idx):
            return out
        starts = self._index.chunk_starts
        cpos = np.searchsorted(starts, idx, side="right") - 1
        order = np.argsort(cpos, kind="stable")
        bounds = np.flatnonzero(np.diff(cpos[order])) + 1
        for group in np.split(order, bounds):
            c = int(cpos[group[0]])
            chunk_n = int(self._index.chunk_ids[c])
            positions = idx[group] - int(starts[c])
            reader = self._chunk_reader(chunk_n)
            uniq, inverse = np.unique(positions, return_inverse=True)
            try:
                imgs = reader.read_many([int(p) for p in uniq])
            except IndexError as e:  # the chunk index lists frames its data does not hold
                raise CorruptChunkError(str(e)) from None
            dec = self._decoder()
            for k, img in enumerate(imgs):
                img = dec(img)
                self._check_frame(img, chunk_n, int(uniq[k]))
                out[group[inverse == k]] = img
        return out

    def to_dask(self):
        """This store as a lazy ``dask.array``, one block per chunk (see :func:`imgstore.apps.dask_array.to_dask_array`)."""
        from ..apps.dask_array import to_dask_array

        self._require_read()
        return to_dask_array(self)

    # roiextractors-style getters
    def get_series(self, start_sample: int | None = None, end_sample: int | None = None) -> np.ndarray:
        """Frames ``[start_sample, end_sample)`` as an array ``(time, height, width[, channels])``."""
        return self[slice(start_sample, end_sample)]

    def get_num_samples(self) -> int:
        return self.frame_count

    def get_image_shape(self) -> tuple[int, int]:
        """``(num_rows, num_columns)`` of a frame."""
        return tuple(self.image_shape[:2])

    def get_dtype(self) -> np.dtype:
        return self.dtype

    def get_sampling_frequency(self) -> float:
        """Frames per second, from the median interval between frame times."""
        self._require_read()
        if self.frame_count < 2:
            return float("nan")
        dt = np.diff(self._index.frame_time)
        dt = dt[np.isfinite(dt) & (dt > 0)]
        return float(1.0 / np.median(dt)) if len(dt) else float("nan")

    def get_native_timestamps(self, start_sample: int | None = None, end_sample: int | None = None) -> np.ndarray:
        """Frame times ``[start_sample, end_sample)``."""
        self._require_read()
        return np.asarray(self._index.frame_time[slice(start_sample, end_sample)])

    # ------------------------------------------------------------------ metadata
    def get_frame_metadata(self) -> dict[str, list]:
        """``{'frame_number': [...], 'frame_time': [...]}`` of every frame, in store order."""
        if self._mode == "w":
            raise UnsupportedFormatError("frame metadata is read from a store opened for reading")
        return {"frame_number": self._index.frame_number.tolist(), "frame_time": self._index.frame_time.tolist()}

    @property
    def frame_numbers(self) -> np.ndarray:
        """Frame numbers of every frame as a read-only numpy array (store order)."""
        self._require_read()
        return self._index.frame_number

    @property
    def frame_times(self) -> np.ndarray:
        """Frame times of every frame as a read-only numpy array (store order)."""
        self._require_read()
        return self._index.frame_time

    def _get_chunk_metadata(self, chunk_n: int) -> dict[str, list]:
        md = self._index.chunk_metadata(chunk_n)
        return {k: v.tolist() for k, v in md.items()}

    @property
    def frame_count(self) -> int:
        return self._frame_n if self._mode == "w" else self._index.frame_count

    @property
    def frame_min(self) -> float:
        return float(self._frame_min) if self._mode == "w" else self._index.frame_min

    @property
    def frame_max(self) -> float:
        return float(self._frame_max) if self._mode == "w" else self._index.frame_max

    @property
    def frame_time_min(self) -> float:
        if self._mode == "w":
            return self._t0
        return self._index.frame_time_min if self._index.frame_count else 0.0

    @property
    def frame_time_max(self) -> float:
        if self._mode == "w":
            return self._tN
        return self._index.frame_time_max if self._index.frame_count else 0.0

    @property
    def duration(self) -> float:
        t0, tn = self.frame_time_min, self.frame_time_max
        if t0 is None or tn is None or not np.isfinite(t0) or not np.isfinite(tn):
            return 0.0
        return float(tn - t0)

    @property
    def chunks(self) -> list[int]:
        """Chunk numbers that hold frames (write mode: chunks completed so far)."""
        if self._mode == "w":
            return list(range(0, self._chunk_n))
        return list(self._index.chunks)

    @property
    def user_metadata(self) -> dict[str, Any]:
        return self._md.user

    @property
    def store_metadata(self) -> dict[str, Any]:
        return self._md.store

    @property
    def filename(self) -> str:
        return self._basedir

    @property
    def full_path(self) -> str:
        if is_url(self._basedir):
            return self._basedir.rstrip("/") + "/" + STORE_MD_FILENAME
        return os.path.join(self._basedir, STORE_MD_FILENAME)

    @property
    def image_shape(self) -> tuple[int, ...]:
        if self._encoding:
            return self._imgshape[0], self._imgshape[1], 3
        return tuple(self._imgshape)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.frame_count,) + self._out_shape

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._imgdtype)

    @property
    def chunksize(self) -> int:
        return self._chunksize

    @property
    def format(self) -> str:
        return self._format

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def uuid(self) -> str | None:
        return self._md.uuid

    @property
    def created(self) -> tuple[datetime.datetime, Any]:
        """``(created time in UTC, recording time zone)``."""
        if not hasattr(self, "_created"):
            mtime = None
            if "created_utc" not in self._md.store:
                try:
                    mtime = self._storage.stat(STORE_MD_FILENAME).mtime_ns / 1e9
                except OSError:
                    mtime = None
            name = posixpath.basename(self._basedir.rstrip("/").replace(os.sep, "/"))
            self._created = created_datetime(self._md, name, mtime)
        return self._created

    @property
    def lossless(self) -> bool:  # pragma: no cover - overridden
        return False

    def convert_frame_time_to_datetime(self, frame_time, tz=None) -> datetime.datetime:
        """A frame time (seconds since the epoch) as a datetime in the store's time zone (or *tz*)."""
        if tz is None:
            _, tz = self.created
        return datetime.datetime.fromtimestamp(float(frame_time), tz=tz)

    # ------------------------------------------------------------------ extra data
    def _all_chunk_numbers(self) -> list[int]:
        if self._mode == "r" and self._chunk_entries is not None:
            return [e.chunk for e in self._chunk_entries]
        return self._layout.list_chunks(self._storage)

    def _extra_data_chunk_numbers(self) -> list[int]:
        """Chunks that may hold extra data: every chunk, and those with extra data but no frames."""
        chunks = set(self._all_chunk_numbers())
        if self._layout.kind == "video":
            chunks.update(self._layout.extra_data_chunks_in(self._storage.listdir("")))
        return sorted(chunks)

    def _iter_extra_data_files(self, extensions=EXTRA_DATA_FILE_EXTENSIONS):
        for c in self._extra_data_chunk_numbers():
            cands = self._layout.extra_data_candidates(c)
            motif = [(m, k) for m, k in cands if m and any(k.endswith(e) for e in extensions)]
            found_motif = False
            for m, k in motif:
                if self._storage.exists(k):
                    yield True, k
                    found_motif = True
                    break
            if found_motif:
                continue
            for m, k in cands:
                if not m and any(k.endswith(e) for e in extensions) and self._storage.exists(k):
                    yield False, k

    @property
    def has_extra_data(self) -> bool:
        return any(True for _ in self._iter_extra_data_files())

    def find_extra_data_files(self, extensions=EXTRA_DATA_FILE_EXTENSIONS) -> list[str]:
        """Paths of the store's extra-data files."""
        return [self._storage.describe(k) for _, k in self._iter_extra_data_files(extensions)]

    def get_extra_data(self, ignore_corrupt_chunks: bool = False):
        """All extra data as one pandas DataFrame (None if the store has none)."""
        import pandas as pd

        dfs = []
        for is_motif, key in self._iter_extra_data_files():
            try:
                df = _xd.read_extra_data_file(self._storage, key, is_motif)
            except (CorruptChunkError, OSError, ValueError) as e:
                if ignore_corrupt_chunks:
                    log.warning("chunk extra data %s is corrupt: %s", self._storage.describe(key), e)
                    continue
                if isinstance(e, CorruptChunkError):
                    raise
                raise CorruptChunkError(f"{self._storage.describe(key)}: {e}") from None
            if df is not None and not df.empty:
                dfs.append(df)
        if dfs:
            return pd.concat(dfs, axis=0, ignore_index=True)
        return None

    def get_extra_data_samplerate(self) -> float:
        """Sample rate of the DAQ data in Motif ``.extra_data.h5`` files."""
        for _, key in self._iter_extra_data_files((".extra_data.h5",)):
            attrs = _xd.motif_h5_attrs(self._storage, key)
            ds = attrs["_datasets"]
            if len(ds) > 1:
                raise ValueError("Multiple sample rates detected: please use motif_extra_data_h5_attrs")
            if len(ds) == 1:
                try:
                    return attrs[ds[0]]["samplerate"]
                except KeyError:
                    pass
        raise ValueError("No sample rate or dataset found in file")

    # ------------------------------------------------------------------ index files
    def _write_sqlite_index(self, key: str) -> None:
        if self._mode == "w":
            index, _, _ = build_index(self._storage, self._layout, use_cache=False, write_cache=False)
        else:
            index = self._index
        write_sqlite_index(self._storage, key, index, self._layout)

    def save_index(self, path: str | None = None) -> None:
        """Save the frame index as the original's ``.index.sqlite`` (or to *path*)."""
        if self._mode != "r":
            return
        if path is None:
            self._write_sqlite_index(STORE_INDEX_FILENAME)
        else:
            from ..storage import LocalStorage

            d, name = os.path.split(os.path.abspath(path))
            write_sqlite_index(LocalStorage(d), name, self._index, self._layout)

    def reindex(self) -> None:
        """Renumber the frames before the single frame_number 0 as negative numbers.

        Raises ValueError unless exactly one frame has frame_number 0. The old
        numbers are kept in each chunk index as ``_frame_number_before_reindex``;
        extra data records are renumbered too.
        """
        self._require_read()
        fn = self._index.frame_number
        zeros = np.flatnonzero(fn == 0)
        if len(zeros) != 1:
            raise ValueError(f"{len(zeros)} frame_number=0 found (should be 1)")
        zero_idx = int(zeros[0])
        new = np.array(fn, dtype=np.int64)
        new[:zero_idx] = np.arange(-zero_idx, 0)
        for c in self._index.chunks:
            start, stop = self._index.chunk_range(c)
            base = self._layout.index_base(c)
            old_key = find_chunk_index(self._storage, base)
            write_chunk_index(self._storage, base, new[start:stop], self._index.frame_time[start:stop],
                              extra={"_frame_number_before_reindex": np.asarray(fn[start:stop])})
            if old_key and old_key.endswith(".yaml"):
                self._storage.remove(old_key)
        for c in self._all_chunk_numbers():
            for is_motif, key in self._layout.extra_data_candidates(c):
                if is_motif or not self._storage.exists(key):
                    continue
                recs = _xd.parse_json_records(self._storage.read_bytes(key), self._storage.describe(key))
                if recs and any("frame_index" not in r for r in recs):
                    log.error("can not reindex extra-data on old format stores: %s", self._storage.describe(key))
                    continue
                for r in recs:
                    r["_frame_number_before_reindex"] = r["frame_number"]
                    fi = int(r["frame_index"])
                    if 0 <= fi < len(new):
                        r["frame_number"] = int(new[fi])
                text = "[" + ", ".join(_xd.encode_record(r) for r in recs) + "]"
                self._storage.write_bytes(key, text.encode("utf-8"))
        self._close_readers()
        self._open_index()

    # ------------------------------------------------------------------ pickling
    def __reduce__(self):
        """A store open for reading pickles as its location and options (no frames, no caches) and is
        opened again, at its first use, where it is unpickled (worker processes, dask, DataLoaders)."""
        if self.__dict__.get("_reopen_args") is not None:  # unpickled and not used yet
            basedir, options, raw = self._reopen_args
        elif self._mode != "r":
            raise TypeError(f"{self._basedir}: a store open for writing cannot be pickled (it holds the store's "
                            f"lock, its encoders and open files); pickle a store opened for reading instead")
        else:
            basedir, options, raw = self._basedir, dict(self._options), self._raw_frames
        return (_unpickled_store, (type(self), basedir, options, raw))

    def __getattr__(self, name: str):
        # only called for attributes that do not exist: an unpickled store opens at its first use
        d = self.__dict__
        args = d.get("_reopen_args")
        if args is None or d.get("_reopening") or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        basedir, options, raw = args
        d["_reopening"] = True
        try:
            self.__init__(basedir=basedir, mode="r", **options)
        finally:
            del d["_reopening"]
        del d["_reopen_args"]
        if raw:
            self.disable_decoding()
        return getattr(self, name)

    # ------------------------------------------------------------------ misc
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<{self.class_name} {self._basedir!r} mode={self._mode!r} format={self._format!r} "
                f"frames={self.frame_count} shape={self.image_shape} dtype={self._imgdtype}>")

    @classmethod
    def supported_formats(cls) -> list[str]:  # pragma: no cover - overridden
        return []

    @classmethod
    def supports_format(cls, fmt: str) -> bool:
        return fmt in cls.supported_formats()

    @property
    def _chunk_n_and_chunk_paths(self):
        """(chunk_n, path without extension) of every chunk; None for a store opened with ``index=`` until
        ``_iter_chunk_n_and_chunk_paths()`` has listed them (the original's behaviour)."""
        if self._mode == "r" and self._chunk_entries is None and not getattr(self, "_chunks_listed", False):
            return None
        return [(c, self._storage.describe(self._layout.index_base(c))) for c in self._all_chunk_numbers()]

    def _iter_chunk_n_and_chunk_paths(self):
        self._chunks_listed = True
        yield from self._chunk_n_and_chunk_paths

    #: the original's names of the ``__store`` section of metadata.yaml and of the user metadata
    _metadata = store_metadata
    _user_metadata = user_metadata

    @classmethod
    def extract_only_frame(cls, full_path, frame_index: int, _smd=None) -> np.ndarray:
        """The frame at *frame_index* of the store at *full_path* (the original's classmethod)."""
        from .factory import extract_only_frame

        return extract_only_frame(full_path, frame_index)


def _unpickled_store(cls: type[ImgStore], basedir: str, options: dict, raw_frames: bool) -> ImgStore:
    """A store of class *cls* at *basedir* that opens for reading at its first use (see ``ImgStore.__reduce__``)."""
    store = cls.__new__(cls)
    store.__dict__["_reopen_args"] = (basedir, options, raw_frames)
    return store

