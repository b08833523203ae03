"""``imgstore demo``: record from a synthetic camera, read it back checking every frame, print the store."""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from .common import CommandError, add_common, positive_int

NAME = "demo"
SUMMARY = "record a store from a synthetic camera, read it back checking every frame"
DESCRIPTION = """\
Write a store from a synthetic camera (every frame carries its frame number in a barcode), read
it back sequentially and at random checking every frame by that barcode, and print what the
store holds and how fast it went.

examples:
  imgstore demo
  imgstore demo --format h264/mkv --frames 1000 --dir /tmp/demo-store
  imgstore demo --list-formats"""


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default=None, help="where to write the store (default: a new temporary folder)")
    p.add_argument("--format", default="npy", help="store format (default npy); see --list-formats")
    p.add_argument("--frames", type=positive_int, default=300, help="frames to record (default 300)")
    p.add_argument("--chunksize", type=positive_int, default=100, help="frames per chunk (default 100)")
    p.add_argument("--shape", default="480x640", help="HxW or HxWx3 (default 480x640)")
    p.add_argument("--list-formats", action="store_true", help="print the formats this installation writes")
    add_common(p)


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(x) for x in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) not in (2, 3) or min(shape) <= 0:
        raise CommandError(f"--shape {text!r} is not HxW or HxWx3")
    return shape


def _write(folder: str, fmt: str, frames: int, chunksize: int, shape) -> float:
    """Record the synthetic frames; returns the seconds spent in the store (not making frames)."""
    from ...stores import new_for_format
    from ..synthetic import make_frame

    fps, t_start, t_write = 30.0, time.time(), 0.0
    with new_for_format(fmt, basedir=folder, imgshape=shape, imgdtype=np.uint8, chunksize=chunksize,
                        metadata={"genotype": "demo", "source": "imgstore-demo"}) as s:
        for i in range(frames):
            frame = make_frame(i, shape)
            t0 = time.perf_counter()
            s.add_image(frame, i, t_start + i / fps)
            if i % 50 == 0:
                s.add_extra_data(temperature=20.0 + i / 100.0)
            t_write += time.perf_counter() - t0
        t0 = time.perf_counter()
    return t_write + time.perf_counter() - t0


def run(args: argparse.Namespace) -> int:
    from ...stores import get_supported_formats, new_for_filename
    from ..synthetic import read_frame_number
    from .info import describe_store, print_summary

    if args.list_formats:
        print("\n".join(get_supported_formats()))
        return 0
    shape = _shape(args.shape)
    folder = args.dir or os.path.join(tempfile.mkdtemp(prefix="imgstore-demo-"), "store")
    print(f"writing {args.frames} synthetic {args.shape} frames as {args.format!r} to {folder}")
    t_write = _write(folder, args.format, args.frames, args.chunksize, shape)
    with new_for_filename(folder) as r:
        t0 = time.perf_counter()
        wrong = 0
        for _ in range(r.frame_count):
            img, (fn, _) = r.get_next_image()
            wrong += read_frame_number(img) != fn
        t_read = time.perf_counter() - t0
        picks = np.random.default_rng(0).integers(0, r.frame_count, size=min(50, r.frame_count))
        t0 = time.perf_counter()
        for n in picks:
            img, (fn, _) = r.get_image(int(n))
            wrong += read_frame_number(img) != fn
        t_rand = time.perf_counter() - t0
        print("store:")
        print_summary(describe_store(r))
        ed = r.get_extra_data()
        print(f"  extra data rows {0 if ed is None else len(ed)}")
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(folder) for f in fs)
    print(f"write {args.frames / t_write:.0f} fps, sequential read {args.frames / t_read:.0f} fps, "
          f"random read {len(picks) / t_rand:.0f} frames/s, {size / args.frames / 1e3:.1f} kB/frame")
    print(f"frames checked by their barcode: {args.frames + len(picks)}, wrong: {wrong}")
    return 1 if wrong else 0
