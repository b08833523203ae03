"""``imgstore save DEST --source ...``: a new store from a video file, a V4L2 camera, or image files."""

from __future__ import annotations

import argparse
import os
import time

from .common import CommandError, add_common, positive_int, progress, say, stop_requests

NAME = "save"
SUMMARY = "record a new store from a video file, a V4L2 camera, or a folder or glob of images"
DESCRIPTION = """\
Write a new store from
  a video file          --source clip.mp4 (anything FFmpeg reads; frame times from its timestamps)
  a V4L2 camera         --source /dev/video0, or --source 0 (until Ctrl-C, or --max-frames)
  image files           --source frames/ (a folder) or --source 'frames/img_*.png' (a glob, quoted),
                        in natural order (img_2 before img_10); times from --fps
Frame numbers count from 0; frame times are seconds since the epoch: the start (--start-time,
default now) plus each frame's time in the source. Ctrl-C (or SIGTERM) stops and closes the store
cleanly: every frame saved so far stays.

examples:
  imgstore save mystore --source clip.mp4 --format h264/mkv
  imgstore save mystore --source '/data/exp1/*.tif' --format png --fps 100
  imgstore save mystore --source /dev/video0 --max-frames 3000"""


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("dest", help="store folder to create")
    p.add_argument("--source", default="0", metavar="SRC",
                   help="video file, camera (/dev/videoN or N), folder of images, or glob (default: camera 0)")
    p.add_argument("--format", default=None, help="store format (default mjpeg/avi; 'imgstore demo --list-formats')")
    p.add_argument("--chunksize", type=positive_int, default=None, help="frames per chunk")
    p.add_argument("--gray", action="store_true", help="store grayscale frames")
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop after N frames")
    p.add_argument("--fps", type=float, default=None, help="image files: frames per second (default 25)")
    p.add_argument("--start-time", default=None, metavar="T",
                   help="time of the first frame: unix seconds or an ISO datetime (default: now)")
    p.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                   help="user metadata to store (repeatable), e.g. --metadata genotype=CS")
    add_common(p, quiet=True, json=True)


def _start_time(text: str | None) -> float:
    if text is None:
        return time.time()
    try:
        return float(text)
    except ValueError:
        from ...selection import parse_datetime

        try:
            dt = parse_datetime(text)
        except ValueError as e:
            raise CommandError(f"--start-time: {e}") from None
        return dt.timestamp() if dt.tzinfo else dt.astimezone().timestamp()


def _metadata(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise CommandError(f"--metadata {item!r} is not KEY=VALUE")
        try:
            out[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    from ...stores import get_supported_formats, new_for_format
    from ..sources import open_source

    fmt = args.format or ("mjpeg/avi" if "mjpeg/avi" in get_supported_formats() else "npy")
    if os.path.exists(args.dest) and (not os.path.isdir(args.dest) or os.listdir(args.dest)):
        raise CommandError(f"{args.dest}: already exists")
    t0 = _start_time(args.start_time)
    metadata = _metadata(args.metadata)
    source = open_source(args.source, gray=args.gray, fps=args.fps)
    frames = iter(source)
    try:
        first, t_first = next(frames)
    except StopIteration:
        raise CommandError(f"{args.source}: holds no frames") from None
    kw = {} if args.chunksize is None else {"chunksize": args.chunksize}
    total = min(source.total or args.max_frames or 0, args.max_frames or 10 ** 18) or None
    n = 0
    with stop_requests() as stop, new_for_format(fmt, basedir=args.dest, imgshape=first.shape,
                                                 imgdtype=first.dtype, metadata=metadata or None, **kw) as store, \
            progress(args, total, "save") as bar:
        img, t = first, t_first
        while not stop.is_set():
            store.add_image(img, n, t0 + (t if t is not None else n / 25.0))
            n += 1
            bar.update()
            if args.max_frames and n >= args.max_frames:
                break
            try:
                img, t = next(frames)
            except StopIteration:
                break
    stopped = stop.is_set()
    if args.json:
        from .common import print_json

        print_json({"dest": args.dest, "format": fmt, "frames": n, "stopped": stopped, "source": args.source})
    else:
        say(args, f"saved {n} frames to {args.dest} ({fmt}){' (stopped)' if stopped else ''}")
    return 0
