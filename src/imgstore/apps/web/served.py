"""One store the server serves: its summary, its frames, its gaps and its extra data.

A store is not safe to read from several threads, so each served store reads
its frames on one worker thread of its own; its gaps and extra data (which can
take seconds to load on a long recording) come from a second instance of the
same store on a second worker thread, so that they never hold up a frame.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import os
import posixpath
import sys
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .gaps import find_gaps, frame_interval
from .imaging import default_format
from .lookup import Locator, Target
from .series import ExtraSeries

#: formats whose frames depend on earlier ones: reading on past a few frames beats a seek
_INTER_CODED = ("h264", "avc1", "hevc", "h265", "x264", "mp4")
_READ_ON_LIMIT = 8


@dataclass
class Frame:
    """A frame read from a store, with where it is."""

    index: int
    number: int
    time: float
    datetime: str
    image: np.ndarray


class ServedStore:
    """A store opened for reading and the two threads that read it."""

    def __init__(self, sid: int, location: str, opener: Callable[[str], Any]) -> None:
        self.sid = sid
        self.location = location
        self._opener = opener
        self._frames = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"imgstore-web-{sid}")
        self._meta = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"imgstore-web-{sid}-meta")
        self.store = opener(location)
        self.tz = self.store.created[1]
        self.interval = frame_interval(self.store.frame_times)
        self.locator = Locator(self.store, self.interval)
        self.summary = self._summarize()
        self._cursor: int | None = None  # index of the last frame read on the frames thread
        self._read_on = _READ_ON_LIMIT if any(k in self.store.format for k in _INTER_CODED) else 1
        self._meta_store = None
        self._gaps: tuple[int, list[dict]] | None = None
        self._series: ExtraSeries | None = None

    # ------------------------------------------------------------------ threads
    async def on_frames_thread(self, fn: Callable, *args):
        """``fn(*args)`` on the thread that owns the store's frames."""
        return await asyncio.get_running_loop().run_in_executor(self._frames, fn, *args)

    async def on_meta_thread(self, fn: Callable, *args):
        """``fn(*args)`` on the thread for gaps and extra data."""
        return await asyncio.get_running_loop().run_in_executor(self._meta, fn, *args)

    def close(self) -> None:
        for pool in (self._frames, self._meta):
            pool.shutdown(wait=True, cancel_futures=True)
        for s in (self.store, self._meta_store):
            if s is not None:
                try:
                    s.close()
                except Exception:  # noqa: BLE001 - closing a reader must not stop the server's exit
                    pass

    # ------------------------------------------------------------------ frames (frames thread)
    @property
    def frame_count(self) -> int:
        return int(self.summary["frame_count"])

    def read(self, i: int) -> Frame:
        """Frame *i*, read on from the last frame read when it is just ahead (sequential decoding)."""
        s = self.store
        c = self._cursor
        self._cursor = None
        if c is not None and 0 < i - c <= self._read_on:
            for _ in range(i - c):
                img, (fn, ft) = s.get_next_image()
        else:
            img, (fn, ft) = s.get_image(None, frame_index=i)
        self._cursor = i
        return Frame(i, int(fn), float(ft), self.datetime_of(ft), img)

    def find(self, target: Target) -> int:
        return self.locator.find(target)

    def read_target(self, target: Target) -> Frame | None:
        """The frame *target* names, None if there is none."""
        i = self.locator.find(target)
        return None if i < 0 else self.read(i)

    def datetime_of(self, t: float) -> str:
        """Frame time *t* as an ISO datetime in the recording's time zone ('' if it has none)."""
        if not math.isfinite(t):
            return ""
        try:
            return self.store.convert_frame_time_to_datetime(t).isoformat()
        except (OverflowError, OSError, ValueError):
            return ""

    # ------------------------------------------------------------------ gaps and extra data (meta thread)
    def warm_up(self) -> None:
        """Start finding the gaps and loading the extra data now, before the page asks for them."""
        self._meta.submit(self._warm)

    def _warm(self) -> None:
        try:
            self.gaps(0)
            if self.summary["has_extra_data"]:
                self.series()
        except Exception as e:  # noqa: BLE001 - the request that needs them reports the error
            print(f"imgstore serve: store {self.sid}: {type(e).__name__}: {e}", file=sys.stderr)

    def _second_instance(self):
        if self._meta_store is None:
            self._meta_store = self._opener(self.location)
        return self._meta_store

    def gaps(self, limit: int) -> tuple[int, list[dict]]:
        """``(how many gaps, the first *limit*)`` (computed once; call it on the meta thread)."""
        if self._gaps is None or len(self._gaps[1]) < min(limit, self._gaps[0]):
            s = self._second_instance()
            self._gaps = find_gaps(s.frame_numbers, s.frame_times, self.interval, max(limit, 10_000))
        total, gaps = self._gaps
        return total, gaps[:limit]

    def series(self) -> ExtraSeries:
        """The store's extra data as time series (loaded once; call it on the meta thread)."""
        if self._series is None:
            s = self._second_instance()
            self._series = ExtraSeries.from_dataframe(s.get_extra_data(), s.frame_times)
        return self._series

    # ------------------------------------------------------------------ summary
    def _summarize(self) -> dict:
        s = self.store
        created, tz = s.created
        shape = [int(x) for x in s.image_shape]
        fps = 1.0 / self.interval if math.isfinite(self.interval) and self.interval > 0 else None
        return {
            "id": self.sid,
            "name": _display_name(self.location),
            "location": self.location,
            "format": s.format,
            "frame_count": int(s.frame_count),
            "frame_min": _json_number(s.frame_min),
            "frame_max": _json_number(s.frame_max),
            "frame_time_min": _json_number(s.frame_time_min),
            "frame_time_max": _json_number(s.frame_time_max),
            "datetime_min": self.datetime_of(s.frame_time_min) if s.frame_count else "",
            "datetime_max": self.datetime_of(s.frame_time_max) if s.frame_count else "",
            "duration": _json_number(s.duration),
            "fps": fps,
            "image_shape": shape,
            "dtype": str(s.dtype),
            "color": len(shape) == 3 and shape[-1] == 3,
            "value_range": _value_range(s.dtype),
            "default_format": default_format(s.dtype, tuple(shape)),
            "chunks": len(s.chunks),
            "chunksize": _json_number(s.chunksize),
            "created_utc": created.isoformat(),
            "timezone": str(tz),
            "uuid": s.uuid,
            "user_metadata": s.user_metadata,
            "has_extra_data": bool(s.has_extra_data),
        }


def _value_range(dtype) -> list[float] | None:
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return [int(info.min), int(info.max)]
    return None


def _json_number(x) -> float | int | None:
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    return int(f) if f == int(f) and abs(f) < 2 ** 53 else f


def _display_name(location: str) -> str:
    loc = location.rstrip("/").replace(os.sep, "/")
    base = posixpath.basename(loc)
    if base == "metadata.yaml":
        base = posixpath.basename(posixpath.dirname(loc))
    return base or location
