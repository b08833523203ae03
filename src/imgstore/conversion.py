"""``imgstore.convert(src, dest, format=...)``: a store, or a selection of its frames, in another format.

Frame numbers, frame times, extra data (each record with the frame it belongs to, re-numbered to
that frame's new index) and user metadata are kept exactly; so are the recording's creation time
and time zone. Destination chunk *k* holds frames ``k*chunksize ... (k+1)*chunksize-1`` of the
selection; chunks are written in parallel, one worker process per core, each into a one-chunk
store of its own in ``DEST/.imgstore-convert/``, and moved into the destination in order as they
finish (see :mod:`imgstore.conversion_chunk` and docs/design/convert.md). The destination is a
valid store of the chunks moved in so far at every moment: a convert that is interrupted (Ctrl-C,
SIGTERM, a crash, a power cut) leaves it so, and ``convert(..., resume=True)`` does what is left.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import shutil
import socket
import tempfile
import time as _time
import uuid as _uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .conversion_chunk import (ChunkTask, finished_frames, layout_kind, publish_chunk, published_index,
                               write_chunk, write_chunk_extra_data)
from .errors import ImgStoreError
from .selection import Selection

WORK_DIR = ".imgstore-convert"
PLAN_FILE = "plan.json"
OWNER_FILE = "owner.json"
SELECTION_FILE = "selection.npy"

#: called with (frames done, frames in all)
ProgressFn = Callable[[int, int], None]


class ConvertError(ImgStoreError, ValueError):
    """A conversion that cannot be done (or resumed) as asked; the message names the store."""


@dataclass
class ConvertResult:
    """What :func:`convert` did."""

    dest: str
    format: str
    frames: int
    chunks: int
    chunks_already_done: int
    workers: int
    seconds: float

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Plan:
    """What a conversion writes; saved in its work folder so that it can be resumed."""

    source: str
    format: str
    chunksize: int
    frames: int
    store_md: dict
    user_md: dict
    codec_options: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)

    @property
    def chunks(self) -> int:
        return math.ceil(self.frames / self.chunksize)

    def chunk_frames(self, k: int) -> int:
        return min(self.chunksize, self.frames - k * self.chunksize)


def _location(src) -> str:
    if not isinstance(src, (str, os.PathLike)):
        src = src.filename
    s = os.fspath(src)
    if "://" in s and not s.startswith("file://"):
        return s
    s = s[len("file://"):] if s.startswith("file://") else s
    if os.path.basename(s) == "metadata.yaml":
        s = os.path.dirname(s) or "."
    return os.path.abspath(s)


def _open_source(src):
    from .stores import new_for_filename

    if isinstance(src, (str, os.PathLike)):
        return new_for_filename(os.fspath(src))
    return src


# ------------------------------------------------------------------ the work folder
def _read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def _write_json(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=str)
    os.replace(tmp, path)


def _take_ownership(work: str, dest: str) -> None:
    """Refuse while another live process converts into *dest*; then mark it ours."""
    path = os.path.join(work, OWNER_FILE)
    try:
        owner = _read_json(path)
        pid, host = int(owner["pid"]), owner.get("host")
    except (OSError, ValueError, KeyError, TypeError):
        pid = host = None
    if pid is not None and pid != os.getpid() and host == socket.gethostname() and _alive(pid):
        raise ConvertError(f"{dest}: process {pid} is converting into this store; wait for it or stop it first")
    _write_json(path, {"pid": os.getpid(), "host": socket.gethostname()})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prepare_dest(dest: str, overwrite: bool) -> None:
    if not os.path.exists(dest):
        return
    if not os.path.isdir(dest):
        raise ConvertError(f"{dest}: exists and is not a folder")
    if not os.listdir(dest):
        return
    if os.path.exists(os.path.join(dest, WORK_DIR)) and not overwrite:
        raise ConvertError(f"{dest}: holds an interrupted convert; continue it with --resume "
                           f"(resume=True) or start again with --overwrite")
    if not overwrite:
        raise ConvertError(f"{dest}: already exists (pass --overwrite / overwrite=True to replace it)")
    if not (os.path.exists(os.path.join(dest, "metadata.yaml")) or os.path.exists(os.path.join(dest, WORK_DIR))):
        raise ConvertError(f"{dest}: is not an imgstore; refusing to delete it to overwrite it")
    shutil.rmtree(dest)


def _dest_store_md(src, dest: str, fmt: str, chunksize: int, user_md: dict, codec_options: dict) -> dict:
    """The destination's ``__store`` metadata, from a store of no frames written by the format's own writer
    (which also checks that the format can hold the source's frames), with the source's creation time."""
    from .format.metadata import read_metadata
    from .storage import LocalStorage
    from .stores import new_for_format

    probe = os.path.join(tempfile.mkdtemp(prefix="imgstore-convert-"), "probe")
    try:
        new_for_format(fmt, mode="w", basedir=probe, imgshape=tuple(src.image_shape), imgdtype=src.dtype,
                       chunksize=chunksize, metadata=dict(user_md), **codec_options).close()
        store_md = dict(read_metadata(LocalStorage(probe)).store)
    except (ImgStoreError, ValueError, TypeError) as e:
        raise ConvertError(f"{dest}: cannot write {fmt!r} frames of shape {tuple(src.image_shape)} "
                           f"{src.dtype}: {str(e).splitlines()[0]}") from None
    finally:
        shutil.rmtree(os.path.dirname(probe), ignore_errors=True)
    src_md = src.store_metadata
    created, tz = src.created
    store_md["created_utc"] = src_md.get("created_utc") or created.astimezone(
        datetime.timezone.utc).replace(tzinfo=None).isoformat()
    store_md["timezone_local"] = src_md.get("timezone_local") or str(getattr(tz, "key", tz))
    store_md["uuid"] = _uuid.uuid4().hex
    return store_md


def _new_plan(src, dest: str, work: str, fmt: str, chunksize: int | None, selection: Selection,
              codec_options: dict, overwrite: bool) -> tuple[_Plan, np.ndarray]:
    from .format.metadata import StoreMetadata, write_metadata
    from .storage import LocalStorage
    from .util import motif_get_recording_timezone

    sel = selection.indices(src.frame_numbers, src.frame_times, tz=motif_get_recording_timezone(src))
    if not len(sel):
        raise ConvertError(f"{_location(src)}: the selection holds no frames (of {src.frame_count})")
    chunksize = int(chunksize or src.chunksize)
    if chunksize <= 0:
        raise ConvertError(f"chunksize must be positive, not {chunksize}")
    user_md = dict(src.user_metadata)
    store_md = _dest_store_md(src, dest, fmt, chunksize, user_md, codec_options)  # before DEST is touched
    _prepare_dest(dest, overwrite)
    existed = os.path.exists(dest)
    plan = _Plan(source=_location(src), format=fmt, chunksize=chunksize, frames=len(sel), store_md=store_md,
                 user_md=user_md, codec_options=codec_options, selection=selection.to_json())
    try:
        os.makedirs(work)
        _take_ownership(work, dest)
        np.save(os.path.join(work, SELECTION_FILE), sel.astype(np.int64))
        _write_json(os.path.join(work, PLAN_FILE), plan.__dict__)
        write_metadata(LocalStorage(dest), StoreMetadata(store=plan.store_md, user=user_md))
    except BaseException:  # nothing converted yet: leave nothing behind
        shutil.rmtree(work if existed else dest, ignore_errors=True)
        raise
    return plan, sel


def _load_plan(src, dest: str, work: str, fmt: str | None, chunksize: int | None, selection: Selection,
               codec_options: dict) -> tuple[_Plan, np.ndarray]:
    try:
        plan = _Plan(**_read_json(os.path.join(work, PLAN_FILE)))
        sel = np.load(os.path.join(work, SELECTION_FILE))
    except FileNotFoundError:
        raise ConvertError(f"{dest}: there is no interrupted convert here to resume") from None
    except (OSError, ValueError, TypeError) as e:
        raise ConvertError(f"{os.path.join(work, PLAN_FILE)}: unreadable ({e}); start again with --overwrite") from None
    asked = {"source": _location(src), "format": fmt, "chunksize": chunksize,
             "codec_options": codec_options or None,
             "selection": None if selection.is_everything else selection.to_json()}
    for what, value in asked.items():
        if value is not None and value != getattr(plan, what):
            raise ConvertError(f"{dest}: was started with {what} {getattr(plan, what)!r}, not {value!r}; "
                               f"resume with the same options or start again with --overwrite")
    if len(sel) != plan.frames or (len(sel) and int(sel.max()) >= src.frame_count):
        raise ConvertError(f"{plan.source}: no longer holds the frames this convert was started on")
    _take_ownership(work, dest)
    return plan, sel


# ------------------------------------------------------------------ extra data
def _extra_records(src, sel: np.ndarray, chunksize: int) -> dict[int, list[dict]]:
    """The source's extra-data records of the selected frames, by destination chunk, frame_index re-numbered."""
    df = src.get_extra_data()
    if df is None or not len(df):
        return {}
    if "frame_index" in df.columns:
        fi = df["frame_index"].to_numpy()
    elif "frame_number" in df.columns:
        uniq, first = np.unique(np.asarray(src.frame_numbers), return_index=True)
        fn = df["frame_number"].to_numpy()
        pos = np.minimum(np.searchsorted(uniq, fn), max(len(uniq) - 1, 0))
        fi = np.where(uniq[pos] == fn, first[pos], -2) if len(uniq) else np.full(len(df), -2)
    else:
        fi = np.full(len(df), -1)
    fi = np.asarray(fi, dtype=np.float64)
    pos = np.minimum(np.searchsorted(sel, fi), len(sel) - 1)
    dest_index = np.where(sel[pos] == fi, pos, -2)
    dest_index = np.where((fi == -1) & (sel[0] == 0), -1, dest_index)  # records before the first frame
    out: dict[int, list[dict]] = {}
    records = df.to_dict("records")
    for rec, j in zip(records, dest_index.tolist()):
        if j == -2:
            continue
        if "frame_index" in rec or "frame_number" in rec:
            rec["frame_index"] = int(j)
        out.setdefault(max(int(j), 0) // chunksize, []).append(rec)
    return out


# ------------------------------------------------------------------ running the chunks
class _LocalCounter:
    """The shared counter's interface, for chunks written in this process; reports to *progress*."""

    def __init__(self, report: Callable[[int], None]) -> None:
        self._value = 0
        self._report = report
        self._last = 0.0

    def get_lock(self):
        return contextlib.nullcontext()

    @property
    def value(self) -> int:
        return self._value

    @value.setter
    def value(self, v: int) -> None:
        self._value = v
        now = _time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            self._report(v)


class _Run:
    """The chunks of one convert still to do, written and moved into place in order."""

    def __init__(self, plan: _Plan, src, sel: np.ndarray, dest: str, work: str, progress: ProgressFn | None):
        self.plan, self.src, self.sel, self.dest, self.work = plan, src, sel, dest, work
        self.kind = layout_kind(plan.store_md)
        self.progress = progress
        todo = [k for k in range(plan.chunks) if not os.path.exists(published_index(dest, self.kind, k))]
        self.already_done = plan.chunks - len(todo)
        self.todo = todo
        self.ready = {k for k in todo if finished_frames(self.folder(k)) == plan.chunk_frames(k)}
        self.frames_before = sum(plan.chunk_frames(k) for k in range(plan.chunks) if k not in todo or k in self.ready)
        self.records = _extra_records(src, sel, plan.chunksize)
        self._next = 0  # position in todo of the next chunk to move into place

    def folder(self, k: int) -> str:
        return os.path.join(self.work, f"chunk-{k:06d}")

    def task(self, k: int, parallel: bool = False) -> ChunkTask:
        p = self.plan
        options = dict(p.codec_options)
        if parallel and self.kind == "video":
            options.setdefault("threads", 1)  # one encoder thread per worker: the workers share the cores
        return ChunkTask(chunk=k, source=self.src, indices=self.sel[k * p.chunksize:(k + 1) * p.chunksize],
                         folder=self.folder(k), format=p.format, chunksize=p.chunksize, store_md=p.store_md,
                         user_md=p.user_md, codec_options=options)

    def report(self, written_now: int) -> None:
        if self.progress is not None:
            self.progress(self.frames_before + written_now, self.plan.frames)

    def publish_ready(self) -> None:
        """Move every finished chunk whose predecessors are in place into the destination."""
        while self._next < len(self.todo) and self.todo[self._next] in self.ready:
            k = self.todo[self._next]
            write_chunk_extra_data(self.folder(k), self.kind, self.records.get(k, []))
            publish_chunk(self.folder(k), self.dest, self.kind, k)
            self._next += 1

    def run_here(self) -> None:
        counter = _LocalCounter(self.report)
        for k in self.todo:
            if k not in self.ready:
                write_chunk(self.task(k), counter)
                self.ready.add(k)
            self.publish_ready()

    def run_in_workers(self, workers: int) -> None:
        from .process_pool import ProcessPool

        pending = iter([k for k in self.todo if k not in self.ready])
        self.publish_ready()
        with ProcessPool(write_chunk, workers) as pool:
            def fill() -> None:
                while pool.outstanding < 2 * pool.size:
                    k = next(pending, None)
                    if k is None:
                        return
                    pool.submit(k, self.task(k, parallel=True))

            fill()
            while pool.outstanding:
                for k, _ in pool.results(timeout=0.25):
                    self.ready.add(k)
                self.publish_ready()
                fill()
                self.report(pool.counter.value)
        self.publish_ready()


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def convert(src, dest, format: str | None = None, *, chunksize: int | None = None,
            selection: Selection | None = None, start: int | None = None, stop: int | None = None,
            frame_numbers: tuple | None = None, time: tuple | None = None, every: int = 1,
            workers: int | None = None, resume: bool = False, overwrite: bool = False,
            progress: ProgressFn | None = None, **codec_options) -> ConvertResult:
    """Write the frames of store *src* (a path, URL or open store), or a selection of them, to a new store
    *dest* in *format*; see the module docstring.

    *chunksize*: frames per destination chunk (default: the source's). The selection is *selection*
    or *start* / *stop* (frame index), *frame_numbers* ``(A, B)``, *time* ``(A, B)`` and *every*
    (see :mod:`imgstore.selection`). *workers*: processes writing chunks (default: one per core).
    *resume*: continue an interrupted convert into *dest* (options not given are taken from it).
    *overwrite*: replace an existing store at *dest*. *progress*: called with (frames done, frames
    in all). Further keyword arguments go to the destination's writer (video: ``fps``, ``gop``,
    ``threads``, ``encoder_options``).
    """
    t0 = _time.monotonic()
    if selection is None:
        selection = Selection(start=start, stop=stop, frame_numbers=frame_numbers, time=time, every=every)
    src = _open_source(src)
    dest = os.path.abspath(os.fspath(dest))
    if _location(src) == dest:
        raise ConvertError(f"{dest}: cannot convert a store into itself")
    work = os.path.join(dest, WORK_DIR)
    if resume:
        plan, sel = _load_plan(src, dest, work, format, chunksize, selection, codec_options)
    else:
        if not format:
            raise ConvertError(f"{dest}: no format given for the new store")
        plan, sel = _new_plan(src, dest, work, format, chunksize, selection, codec_options, overwrite)
    job = _Run(plan, src, sel, dest, work, progress)
    n = min(workers or _default_workers(), len(job.todo) - len(job.ready))
    job.report(0)
    if n > 1:
        job.run_in_workers(n)
    else:
        job.run_here()
    job.report(plan.frames - job.frames_before)
    shutil.rmtree(work, ignore_errors=True)
    return ConvertResult(dest=dest, format=plan.store_md.get("format", plan.format), frames=plan.frames,
                         chunks=plan.chunks, chunks_already_done=job.already_done, workers=max(n, 1),
                         seconds=_time.monotonic() - t0)


def convert_status(dest) -> tuple[int, int] | None:
    """``(chunks done, chunks in all)`` of an unfinished convert into *dest*, None if there is none."""
    dest = os.path.abspath(os.fspath(dest))
    try:
        plan = _Plan(**_read_json(os.path.join(dest, WORK_DIR, PLAN_FILE)))
    except (OSError, ValueError, TypeError):
        return None
    kind = layout_kind(plan.store_md)
    return sum(os.path.exists(published_index(dest, kind, k)) for k in range(plan.chunks)), plan.chunks
