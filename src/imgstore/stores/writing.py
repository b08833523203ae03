"""Writing a store: the lock, ``add_image`` into the chunk being written, chunk rollover (a full
chunk is finished in the background, :mod:`.chunk_finish`), the frame log of what is on disk,
extra data, ``flush`` and ``empty``. Crash safety: docs/design/crash-safety.md."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from ..color import ensure_color, ensure_grayscale, is_color
from ..constants import FRAME_INDEX_CACHE_FILENAME, STORE_LOCK_FILENAME, STORE_MD_FILENAME, STORE_MD_KEY
from ..errors import ImgStoreError, StoreExistsError, StoreFormatError, StoreLockedError, UnsupportedFormatError
from ..format import extradata as _xd
from ..format.chunkindex import FrameLog
from ..format.lock import lock_payload, read_lock
from ..format.metadata import StoreMetadata, new_store_metadata, write_metadata
from ..index import as_int_scalar
from .chunk_finish import ChunkFinish

log = logging.getLogger("imgstore")


class StoreWriting:
    """The write side of :class:`~.base.ImgStore`. Owns the chunk being written (``_chunk_n``,
    ``_chunk_fn``, ``_chunk_ft``, ``_writer``, ``_frame_log``, ``_extra``), the chunk finishing in the
    background (``_finishing``), the counts and ranges of what was added (``_frame_n``,
    ``_frame_min``, ``_frame_max``, ``_t0``, ``_tN``) and the image conversion on the way in
    (``_writer_imgshape``, ``_encode_image``)."""

    #: seconds between fsyncs of the chunk being written (its frame log is in the OS after every frame)
    index_flush_interval = 1.0

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
        self._finishing: ChunkFinish | None = None
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
            job = ChunkFinish(self, self._writer, self._frame_log, self._extra, self._chunk_n,
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
