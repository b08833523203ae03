"""One chunk of a conversion: written as a one-chunk store in a work folder, then moved into place.

A worker (:func:`write_chunk`) writes the frames of destination chunk *k* into a complete store of
its own (``DEST/.imgstore-convert/chunk-kkkkkk/``, through the public writer, so every format and
codec option works), gives its chunk index the destination's store metadata and the source's exact
frame numbers and times, and marks it done. The parent adds the chunk's extra data and moves its
files into the destination under chunk number *k* (:func:`publish_chunk`): the chunk's own index
last, so a chunk is in the destination complete or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .format.chunkindex import write_chunk_index
from .format.extradata import encode_record
from .format.layout import Layout, chunk_name
from .storage import LocalStorage

DONE_MARKER = "chunk-done.json"
_FIRST = chunk_name(0)


@dataclass
class ChunkTask:
    """What a worker needs to write destination chunk *chunk* (everything pickles cheaply)."""

    chunk: int
    source: Any                      # a store open for reading (pickles as its location)
    indices: np.ndarray              # the source frame indices of this chunk, in order
    folder: str                      # the one-chunk store to write
    format: str
    chunksize: int
    store_md: dict                   # the destination's ``__store`` metadata
    user_md: dict
    codec_options: dict = field(default_factory=dict)


def layout_kind(store_md: dict) -> str:
    """``'video'`` or ``'directory'``: how the chunks of a store with this ``__store`` metadata are laid out."""
    return "video" if "Video" in str(store_md.get("class", "")) else "directory"


def _writable_time(t: float, last: float) -> float:
    """A finite time for the writer (the chunk index gets the source's exact times afterwards)."""
    return t if np.isfinite(t) else (last if np.isfinite(last) else 0.0)


def write_chunk(task: ChunkTask, counter=None) -> int:
    """Write the task's frames into its one-chunk store; returns the number of frames written."""
    from .align import FrameCursor
    from .stores import new_for_format

    if os.path.exists(task.folder):
        shutil.rmtree(task.folder)
    src = task.source
    numbers = np.asarray(src.frame_numbers)[task.indices].astype(np.int64)
    times = np.asarray(src.frame_times, dtype=np.float64)[task.indices]
    cursor = FrameCursor(src)
    last_t = np.nan
    with new_for_format(task.format, mode="w", basedir=task.folder, imgshape=tuple(src.image_shape),
                        imgdtype=src.dtype, chunksize=task.chunksize, metadata=dict(task.user_md),
                        **task.codec_options) as out:
        for n, i in enumerate(task.indices.tolist()):
            img, _ = cursor.read(i)
            last_t = _writable_time(float(times[n]), last_t)
            out.add_image(img, int(numbers[n]), last_t)
            if counter is not None:
                with counter.get_lock():
                    counter.value += 1
    storage = LocalStorage(task.folder)
    write_chunk_index(storage, Layout(layout_kind(task.store_md)).index_base(0), numbers, times,
                      store_md=task.store_md)
    storage.write_bytes(DONE_MARKER, json.dumps({"chunk": task.chunk, "frames": len(numbers)}).encode())
    return len(numbers)


def finished_frames(folder: str) -> int | None:
    """Frames of a one-chunk store a worker finished (None if it did not finish)."""
    try:
        with open(os.path.join(folder, DONE_MARKER)) as f:
            return int(json.load(f)["frames"])
    except (OSError, ValueError, KeyError):
        return None


def write_chunk_extra_data(folder: str, kind: str, records: list[dict]) -> None:
    """The chunk's extra-data records, where the store's writer would put them."""
    if records:
        text = "[" + ", ".join(encode_record(r) for r in records) + "]"
        LocalStorage(folder).write_bytes(Layout(kind).extra_data_key(0), text.encode("utf-8"))


def published_index(dest: str, kind: str, chunk: int) -> str:
    """Path of destination chunk *chunk*'s index (present: the chunk is complete)."""
    return os.path.join(dest, Layout(kind).index_base(chunk) + ".npz")


def publish_chunk(folder: str, dest: str, kind: str, chunk: int) -> None:
    """Move the one-chunk store's chunk into *dest* as chunk *chunk*; removes *folder*."""
    name = chunk_name(chunk)
    if kind == "directory":
        target = os.path.join(dest, name)
        if os.path.exists(target):
            shutil.rmtree(target)
        os.replace(os.path.join(folder, _FIRST), target)
    else:
        index = _FIRST + ".npz"
        files = sorted(f for f in os.listdir(folder) if f.startswith(_FIRST + ".") and f != index)
        for f in files + [index]:
            os.replace(os.path.join(folder, f), os.path.join(dest, name + f[len(_FIRST):]))
    shutil.rmtree(folder, ignore_errors=True)
