"""Raw chunks against memory bandwidth: warm frame-range reads vs np.copyto, in one run.

    python bench/raw.py [--gib 1.0] [--repeats 5]

Writes a `raw` store of 1280x1024 uint8 frames (about --gib GiB, chunks of
--chunksize frames) into a temporary folder, reads it once to warm the page
cache, then times, interleaved:

* memory copy: ``np.copyto(dst, src)`` of a frame range's worth of bytes
  between two in-memory buffers (the machine's copy bandwidth);
* range view: ``store[a:b]`` (zero-copy: the time to get the view);
* range read: ``np.copyto(dst, store[a:b])`` - the frames actually copied out
  of the page cache through the long-lived mapping;
* list read: ``store[idx]`` for random frames (gathered with pread);
* the original's layout for comparison: one ``np.load`` per frame of the same
  range from an ``npy`` store.

Prints GB/s and the ratio of range read to memory copy (target >= 0.7).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import imgstore  # noqa: E402


def _best(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=1.0, help="store size in GiB")
    ap.add_argument("--chunksize", type=int, default=200)
    ap.add_argument("--range", type=int, default=100, help="frames per range read")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    shape = (1024, 1280)
    fbytes = shape[0] * shape[1]
    n = max(args.range * 2, int(args.gib * 2**30 // fbytes))
    root = tempfile.mkdtemp(prefix="imgstore-rawbench-")
    try:
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        for fmt in ("raw", "npy"):
            with imgstore.new_for_format(fmt, basedir=os.path.join(root, fmt), imgshape=shape, imgdtype=np.uint8,
                                         chunksize=args.chunksize) as s:
                for i in range(n if fmt == "raw" else args.range * 2):
                    frame[0, :8] = np.frombuffer(np.int64(i).tobytes(), np.uint8)
                    s.add_image(frame, i, i / 30.0)
        raw = imgstore.new_for_filename(os.path.join(root, "raw"))
        npy = imgstore.new_for_filename(os.path.join(root, "npy"))
        for i in range(0, n, args.chunksize):  # warm: page cache and the long-lived mappings
            np.asarray(raw[i: min(i + args.chunksize, n)]).sum(dtype=np.uint64)
        k = args.range
        nb = k * fbytes
        src = np.ones(nb, np.uint8)
        dst = np.empty(nb, np.uint8)
        dst_frames = dst.reshape((k,) + shape)
        starts = [s_ for s_ in range(0, n - k, args.chunksize) if (s_ % args.chunksize) + k <= args.chunksize]
        pick = rng.choice(n, size=k, replace=False)

        t_copy = _best(lambda: np.copyto(dst, src), args.repeats)
        t_view = _best(lambda: [raw[a: a + k] for a in starts[:10]], args.repeats) / min(10, len(starts))
        it = iter(starts * (args.repeats + 1))
        def range_read():
            a = next(it)
            np.copyto(dst_frames, raw[a: a + k])

        t_range = _best(range_read, args.repeats)
        t_list = _best(lambda: raw[pick], args.repeats)
        t_npy = _best(lambda: npy[0:k], args.repeats)
        gb = nb / 1e9
        rows = [
            ("memory copy (np.copyto)", gb / t_copy),
            (f"raw range read, {k} frames (copied out)", gb / t_range),
            (f"raw list read, {k} random frames", gb / t_list),
            (f"npy store (one file per frame), {k} frames", gb / t_npy),
        ]
        print(f"raw chunks vs memory bandwidth: {n} frames of 1280x1024 uint8 ({n * fbytes / 2**30:.2f} GiB), "
              f"warm page cache, best of {args.repeats}")
        print()
        print("| read | GB/s | vs memory copy |")
        print("|---|---:|---:|")
        for name, v in rows:
            print(f"| {name} | {v:.2f} | {v / rows[0][1]:.2f} |")
        print(f"| raw range view (zero-copy) | {t_view * 1e6:.1f} µs per view | – |")
        ok = rows[1][1] / rows[0][1] >= 0.7
        print()
        print(f"range read / memory copy = {rows[1][1] / rows[0][1]:.2f} (target >= 0.70: {'met' if ok else 'NOT met'})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
