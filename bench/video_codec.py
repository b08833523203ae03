#!/usr/bin/env python
"""Video chunk codecs measured on their own: the figures of docs/design/video-formats.md,
mjpeg-bands.md and packet-index.md, re-measured.

    .venv/bin/python bench/video_codec.py formats [--formats h264/mkv,mjpeg/avi] [--frames 600]
    .venv/bin/python bench/video_codec.py gop [--gops 10,25,40,50,100,250]
    .venv/bin/python bench/video_codec.py bands          # MJPEG random reads, bands on / off
    .venv/bin/python bench/video_codec.py pktidx         # building a packet index, per frame
    .venv/bin/python bench/video_codec.py small-frames   # x265 at 32x32 / 64x64, CTU 32 vs 16
    .venv/bin/python bench/video_codec.py rates          # nominal container rates at the clamp's edges

Frames are the benchmark's (``workload.py``: textured background, moving blobs, sensor noise,
a frame-number barcode), 1280x1024 gray and 640x480 BGR, written by ``VideoChunkWriter`` into
one chunk and read by ``VideoChunkReader``; "random" is a uniformly random frame with the
frame cache off, "clustered" a frame within +-50 of a centre moving through the chunk, with the
cache on. Every frame read is checked by its barcode. This machine is shared and noisy: compare
ratios of one run, not absolute numbers across runs.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import workload  # noqa: E402

SHAPES = {"gray": (1024, 1280), "color": (480, 640, 3)}


def _chunk(storage, fmt, frames, **kw):
    from imgstore.codecs.video import VideoChunkWriter

    key = "000000" + ("." + fmt.split("/")[1] if "/" in fmt else ".avi")
    t = time.perf_counter()
    w = VideoChunkWriter(storage, key, fmt, frames[0].shape, fps=workload.FPS, **kw)
    for f in frames:
        w.write(f)
    w.close()
    return key, len(frames) / (time.perf_counter() - t)


def _reader(storage, key, shape, cache=True):
    from imgstore.codecs.frame_cache import FrameCache
    from imgstore.codecs.video import VideoChunkReader

    return VideoChunkReader(storage, key, color=len(shape) == 3, imgshape=shape,
                            cache=None if cache else FrameCache(0))


def _reads_per_s(reader, positions) -> float:
    t = time.perf_counter()
    for p in positions:
        img = reader.read(int(p))
        assert workload.read_barcode(img) == int(p), f"wrong frame at {p}"
    return len(positions) / (time.perf_counter() - t)


def measure(fmt, shape_name, frames, reads, clustered=False, **kw) -> dict:
    """Write one chunk of *frames* in *fmt*, then read it back at random, clustered and in order."""
    from imgstore.storage import LocalStorage

    shape = SHAPES[shape_name]
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="imgstore-bench-") as d:
        st = LocalStorage(d)
        key, write_fps = _chunk(st, fmt, frames, **kw)
        n = len(frames)
        out = {"format": fmt, "shape": shape_name, "write_fps": write_fps,
               "kB_per_frame": os.path.getsize(os.path.join(d, key)) / n / 1e3}
        with _reader(st, key, shape, cache=False) as r:
            out["random_per_s"] = _reads_per_s(r, rng.integers(0, n, reads))
        if clustered:
            centres = np.linspace(0, n - 1, reads).astype(int)
            with _reader(st, key, shape) as r:
                out["clustered_per_s"] = _reads_per_s(r, np.clip(centres + rng.integers(-50, 51, reads), 0, n - 1))
        with _reader(st, key, shape) as r:
            out["sequential_fps"] = _reads_per_s(r, range(n))
    return out


def _frames(shape_name, n):
    return workload.make_frames(n, SHAPES[shape_name])


def task_formats(a) -> list:
    opts = json.loads(a.encoder_options) if a.encoder_options else {}
    return [measure(fmt, s, _frames(s, a.frames), a.reads, gop=a.gop, **opts)
            for s in a.shapes.split(",") for fmt in a.formats.split(",")]


def task_gop(a) -> list:
    rows = []
    for s in a.shapes.split(","):
        frames = _frames(s, a.frames)
        rows += [dict(measure("h264/mkv", s, frames, a.reads, clustered=True, gop=int(g)), gop=int(g))
                 for g in a.gops.split(",")]
    return rows


def task_bands(a) -> list:
    from imgstore.storage import LocalStorage

    rows = []
    for s in a.shapes.split(","):
        frames = _frames(s, a.frames)
        positions = np.random.default_rng(1).integers(0, len(frames), a.reads)
        with tempfile.TemporaryDirectory(prefix="imgstore-bench-") as d:
            st = LocalStorage(d)
            key, _ = _chunk(st, "mjpeg/avi", frames)
            for bands in (True, False):
                with _reader(st, key, SHAPES[s], cache=False) as r:
                    r._bands = r._bands and bands
                    rows.append({"shape": s, "bands": bands, "random_per_s": _reads_per_s(r, positions)})
    return rows


def task_pktidx(a) -> list:
    from imgstore.codecs.video import build_packet_index
    from imgstore.storage import LocalStorage

    rows = []
    for s in a.shapes.split(","):
        frames = _frames(s, a.frames)
        for fmt in a.formats.split(","):
            with tempfile.TemporaryDirectory(prefix="imgstore-bench-") as d:
                st = LocalStorage(d)
                key, _ = _chunk(st, fmt, frames)
                t = time.perf_counter()
                for _ in range(3):
                    build_packet_index(st, key, write=False)
                rows.append({"format": fmt, "shape": s,
                             "us_per_frame": (time.perf_counter() - t) / 3 / len(frames) * 1e6})
    return rows


def task_small_frames(a) -> list:
    from imgstore.codecs.video import VideoChunkReader
    from imgstore.storage import LocalStorage

    rows = []
    for size in (32, 64):
        frames = [np.zeros((size, size), np.uint8) for _ in range(a.frames)]
        for i, f in enumerate(frames):
            workload.set_barcode(f[:, :], i % (1 << (size // 4)))
        for ctu in (32, 16):
            with tempfile.TemporaryDirectory(prefix="imgstore-bench-") as d:
                st = LocalStorage(d)
                params = f"open-gop=0:log-level=error:ctu={ctu}"
                key, _ = _chunk(st, "hevc/mkv", frames, **{"x265-params": params})
                with VideoChunkReader(st, key, color=False, imgshape=(size, size)) as r:
                    wrong = sum(int(np.abs(r.read(i).astype(int) - frames[i]).max() > 64) for i in range(len(frames)))
            rows.append({"size": size, "ctu": ctu, "frames": len(frames), "wrong": wrong})
    return rows


def task_rates(a) -> list:
    from imgstore.codecs.video import VideoChunkReader, VideoChunkWriter, available_video_formats
    from imgstore.storage import LocalStorage

    rows = []
    frames = [np.full((64, 64), 40 * i, np.uint8) for i in range(3)]
    for fmt in available_video_formats():
        for fps in (0.0005, 0.001, 25, 1000, 9686):
            with tempfile.TemporaryDirectory(prefix="imgstore-bench-") as d:
                st = LocalStorage(d)
                key = "000000." + fmt.split("/")[1]
                row = {"format": fmt, "fps": fps}
                try:
                    w = VideoChunkWriter(st, key, fmt, (64, 64), fps=fps)
                    row["container_fps"] = str(w.fps)
                    for f in frames:
                        w.write(f)
                    w.close()
                    with VideoChunkReader(st, key, color=False, imgshape=(64, 64)) as r:
                        row["frames_read"] = len(r)
                except Exception as e:  # noqa: BLE001 - the row says what failed
                    row["error"] = f"{type(e).__name__}: {e}"
                rows.append(row)
    return rows


TASKS = {"formats": task_formats, "gop": task_gop, "bands": task_bands, "pktidx": task_pktidx,
         "small-frames": task_small_frames, "rates": task_rates}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("task", choices=sorted(TASKS))
    p.add_argument("--formats", default="h264/mkv,hevc/mkv,ffv1/mkv,mjpeg/avi")
    p.add_argument("--shapes", default="gray,color")
    p.add_argument("--frames", type=int, default=600, help="frames per chunk (default 600)")
    p.add_argument("--reads", type=int, default=60, help="random / clustered reads (default 60)")
    p.add_argument("--gop", type=int, default=None, help="formats: keyframe interval (default: the format's)")
    p.add_argument("--gops", default="10,25,40,50,100,250")
    p.add_argument("--encoder-options", default="",
                   help='formats: JSON of encoder options, e.g. {"preset": "superfast"}')
    a = p.parse_args(argv)
    for row in TASKS[a.task](a):
        print(json.dumps({k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in row.items()}))


if __name__ == "__main__":
    main()
