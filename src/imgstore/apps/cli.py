"""Command-line tools: ``imgstore-demo``, ``imgstore-info``, ``imgstore-test``, ``imgstore-save``, ``imgstore-view``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from ..errors import ImgStoreError, OptionalDependencyError
from ..stores import get_supported_formats, new_for_filename, new_for_format


def _fail(msg: str) -> "None":
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(2)


# --------------------------------------------------------------------------- info
def describe_store(store) -> dict:
    """A JSON-able summary of a store opened for reading."""
    created, tz = store.created
    out = {
        "path": store.filename,
        "class": store.class_name,
        "format": store.format,
        "frame_count": store.frame_count,
        "image_shape": list(store.image_shape),
        "dtype": str(store.dtype),
        "chunksize": store.chunksize,
        "chunks": len(store.chunks),
        "frame_min": store.frame_min,
        "frame_max": store.frame_max,
        "frame_time_min": store.frame_time_min,
        "frame_time_max": store.frame_time_max,
        "duration_s": store.duration,
        "created_utc": created.isoformat(),
        "timezone": str(tz),
        "uuid": store.uuid,
        "lossless": store.lossless,
        "has_extra_data": store.has_extra_data,
        "user_metadata": store.user_metadata,
    }
    if store.frame_count > 1:
        dt = np.diff(store.frame_times)
        dt = dt[np.isfinite(dt)]
        if len(dt) and np.median(dt) > 0:
            out["median_fps"] = float(1.0 / np.median(dt))
    return out


def _print_summary(d: dict) -> None:
    for k, v in d.items():
        if k == "user_metadata":
            v = ", ".join(f"{a}={b!r}" for a, b in v.items()) or "-"
        print(f"  {k:15s} {v}")


def main_info(argv=None) -> None:
    """Print what a store holds."""
    p = argparse.ArgumentParser(prog="imgstore-info", description="Print what an imgstore holds.")
    p.add_argument("path", help="store folder, its metadata.yaml, or an fsspec URL")
    p.add_argument("--json", action="store_true", help="print JSON")
    args = p.parse_args(argv)
    try:
        with new_for_filename(args.path) as s:
            d = describe_store(s)
    except (ImgStoreError, OSError) as e:
        _fail(str(e))
    if args.json:
        print(json.dumps(d, default=str, indent=1))
    else:
        print(args.path)
        _print_summary(d)


# --------------------------------------------------------------------------- demo
def main_demo(argv=None) -> None:
    """Write a store from a synthetic camera, read it back, and print what it holds."""
    from .synthetic import make_frame, read_frame_number

    p = argparse.ArgumentParser(prog="imgstore-demo", description=main_demo.__doc__)
    p.add_argument("--dir", default=None, help="where to write the store (default: a new temporary folder)")
    p.add_argument("--format", default="npy", help="store format (default npy); see --list-formats")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--chunksize", type=int, default=100)
    p.add_argument("--shape", default="480x640", help="HxW or HxWx3 (default 480x640)")
    p.add_argument("--list-formats", action="store_true")
    args = p.parse_args(argv)
    if args.list_formats:
        print("\n".join(get_supported_formats()))
        return
    shape = tuple(int(x) for x in args.shape.lower().split("x"))
    folder = args.dir or os.path.join(tempfile.mkdtemp(prefix="imgstore-demo-"), "store")
    fps = 30.0
    t_start = time.time()
    print(f"writing {args.frames} synthetic {args.shape} frames as {args.format!r} to {folder}")
    t_write = 0.0  # time spent in the store, not in synthesising frames
    with new_for_format(args.format, basedir=folder, imgshape=shape, imgdtype=np.uint8,
                        chunksize=args.chunksize, metadata={"genotype": "demo", "source": "imgstore-demo"}) as s:
        for i in range(args.frames):
            frame = make_frame(i, shape)
            t0 = time.perf_counter()
            s.add_image(frame, i, t_start + i / fps)
            if i % 50 == 0:
                s.add_extra_data(temperature=20.0 + i / 100.0)
            t_write += time.perf_counter() - t0
        t0 = time.perf_counter()
    t_write += time.perf_counter() - t0

    with new_for_filename(folder) as r:
        t0 = time.perf_counter()
        wrong = 0
        for _ in range(r.frame_count):
            img, (fn, _) = r.get_next_image()
            wrong += read_frame_number(img) != fn
        t_read = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        picks = rng.integers(0, r.frame_count, size=min(50, r.frame_count))
        t0 = time.perf_counter()
        for n in picks:
            img, (fn, _) = r.get_image(int(n))
            wrong += read_frame_number(img) != fn
        t_rand = time.perf_counter() - t0
        print("store:")
        _print_summary(describe_store(r))
        ed = r.get_extra_data()
        print(f"  extra data rows {0 if ed is None else len(ed)}")
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(folder) for f in fs)
    print(f"write {args.frames / t_write:.0f} fps, sequential read {args.frames / t_read:.0f} fps, "
          f"random read {len(picks) / t_rand:.0f} frames/s, {size / args.frames / 1e3:.1f} kB/frame")
    print(f"frames checked by their barcode: {args.frames + len(picks)}, wrong: {wrong}")
    if wrong:
        raise SystemExit(1)


# --------------------------------------------------------------------------- test
def main_test(argv=None) -> None:
    """Check that every supported format writes and reads back correctly on this installation."""
    from .selftest import run_selftest

    p = argparse.ArgumentParser(prog="imgstore-test", description=main_test.__doc__)
    p.add_argument("--format", action="append", help="only this format (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    failed = run_selftest(args.format, verbose=not args.quiet)
    raise SystemExit(1 if failed else 0)


# --------------------------------------------------------------------------- save
def _iter_video_frames(source: str, color: bool):
    import av

    if source.isdigit() or source.startswith("/dev/video"):
        dev = f"/dev/video{source}" if source.isdigit() else source
        container = av.open(dev, format="v4l2")
    else:
        container = av.open(source)
    try:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            t = float(frame.time) if frame.time is not None else None
            yield frame.to_ndarray(format="bgr24" if color else "gray"), t
    finally:
        container.close()


def main_saver(argv=None) -> None:
    """Convert a video file (or a V4L2 camera) into an imgstore."""
    p = argparse.ArgumentParser(prog="imgstore-save", description=main_saver.__doc__)
    p.add_argument("dest", help="store folder to create")
    p.add_argument("--source", default="0", metavar="PATH",
                   help="video file to convert, or a camera number / /dev/videoN (default: camera 0)")
    p.add_argument("--format", default="mjpeg/avi" if "mjpeg/avi" in get_supported_formats() else "npy",
                   choices=get_supported_formats())
    p.add_argument("--chunksize", type=int, default=None)
    p.add_argument("--gray", action="store_true", help="store grayscale frames")
    p.add_argument("--max-frames", type=int, default=None)
    args = p.parse_args(argv)
    if os.path.exists(args.dest) and os.listdir(args.dest):
        _fail("destination already exists")
    color = not args.gray
    try:
        frames = _iter_video_frames(args.source, color)
        first, t_first = next(frames)
    except StopIteration:
        _fail(f"could not read a frame from source: {args.source}")
    except Exception as e:
        _fail(f"could not open source {args.source}: {e}")
    kw = {} if args.chunksize is None else {"chunksize": args.chunksize}
    t0 = time.time()
    n = 0
    with new_for_format(args.format, basedir=args.dest, imgshape=first.shape, imgdtype=first.dtype, **kw) as s:
        img, t = first, t_first
        while True:
            s.add_image(img, n, t0 + (t if t is not None else n / 25.0))
            n += 1
            if args.max_frames and n >= args.max_frames:
                break
            try:
                img, t = next(frames)
            except StopIteration:
                break
    print(f"saved {n} frames to {args.dest} ({args.format})")


# --------------------------------------------------------------------------- view
def main_viewer(argv=None) -> None:
    """Play back a store with its frame number and time.

    Space pause/play, Left/Right step, Home/End, +/- speed, Esc or q quit.
    """
    from ..util import motif_get_recording_timezone
    from .viewer import Player

    p = argparse.ArgumentParser(prog="imgstore-view", description=main_viewer.__doc__)
    p.add_argument("path")
    p.add_argument("--fps", default=30.0, type=float, help="playback speed (0 = as fast as possible)")
    p.add_argument("--hide-statusbar", action="store_true")
    p.add_argument("--backend", choices=("tk", "cv2"), default="tk",
                   help="window toolkit: tk (default, no OpenCV needed) or cv2 (OpenCV's highgui)")
    p.add_argument("--export", metavar="PNG", help="instead of a window, write the frame at --frame-index "
                                                     "(with its status bar) as a PNG and exit")
    p.add_argument("--frame-index", type=int, default=0)
    p.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)  # for tests: close after S s
    args = p.parse_args(argv)
    try:
        store = new_for_filename(args.path)
    except (ImgStoreError, OSError) as e:
        _fail(str(e))
    if not store.frame_count:
        _fail(f"{args.path}: the store holds no frames")
    player = Player(store, fps=args.fps, tz=motif_get_recording_timezone(store), statusbar=not args.hide_statusbar)
    if args.export:
        from .render import save_png

        player.playing = False
        player.seek(args.frame_index)
        save_png(args.export, player.frame())
        print(args.export)
        return
    if args.backend == "cv2":
        _view_cv2(player)
        return
    try:
        from .viewer import TkViewer

        TkViewer(player, title=f"imgstore: {args.path}").run(max_seconds=args.seconds)
    except ImportError as e:
        raise OptionalDependencyError(f"the Tk viewer needs tkinter ({e}); try --backend cv2 or --export") from None


def _view_cv2(player) -> None:
    try:
        import cv2  # type: ignore
    except ImportError:
        raise OptionalDependencyError("--backend cv2 needs OpenCV: pip install 'imgstore[opencv]'") from None
    player.seek(0)
    while True:
        cv2.imshow("imgstore", player.frame())
        delay = max(1, int(1000.0 / player.fps)) if player.fps > 0 else 1
        k = cv2.waitKey(delay) & 0xFF
        if k in (27, ord("q")):
            break
        if k == ord(" "):
            player.toggle()
        if player.playing and not player.step(1):
            break
    cv2.destroyAllWindows()
