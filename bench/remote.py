#!/usr/bin/env python
"""Remote video reads: HTTP requests and bytes per random frame against the minimum.

    .venv/bin/python bench/remote.py [--frames 300] [--reads 50] [--shapes color,gray]

Writes h264/mkv, avc1/mp4 and mjpeg/avi stores of the benchmark content
(``workload.py``: textured background, moving blobs, noise; chunksize 100),
serves them from ``tests/rangeserver.py`` (a real HTTP server on 127.0.0.1
with Range support that counts requests and bytes) and reads random frames
through ``imgstore.new_for_filename(url)``.

The *minimum* for a random frame is the size of the packets that must be
decoded to show it: the keyframe at or before it up to its own packet.

Modes:

* ``store``: ``get_image`` of random frame numbers on one open store. The
  store keeps two chunk readers open, so with three chunks a read often opens
  a reader again: loading its packet index (a HEAD of the chunk and a GET of
  its ``.pktidx.npz``) is counted apart, as ``index req``. The decoded-frame
  cache and the span cache serve part of the reads, so this can cost less
  than the minimum.
* ``cold``: a fresh chunk reader per read (index given, nothing cached): what
  one random frame costs on its own.
* ``batch``: the same frames in one ``store[list]``: spans merged, distinct
  ones fetched concurrently.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, os.pardir, "tests"))

import workload  # noqa: E402
from rangeserver import RangeServer  # noqa: E402

FORMATS = ["h264/mkv", "avc1/mp4", "mjpeg/avi"]


def _minimum(idx, position):
    d = int(idx.order[position])
    k = d
    while not idx.is_key[k]:
        k -= 1
    return int(idx.size[k:d + 1].astype(np.int64).sum())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--reads", type=int, default=50)
    ap.add_argument("--shapes", default="color,gray")
    ap.add_argument("--formats", default=",".join(FORMATS))
    args = ap.parse_args(argv)

    import imgstore
    from imgstore.codecs.video import VideoChunkReader
    from imgstore.codecs.video_index import PacketIndex, packet_index_key
    from imgstore.storage import FsspecStorage

    rows = []
    with tempfile.TemporaryDirectory(prefix="imgstore-remote-bench-") as root:
        for shape_name in args.shapes.split(","):
            shape = workload.SHAPES[shape_name]
            frames = workload.make_frames(args.frames, shape)
            for fmt in args.formats.split(","):
                name = f"{fmt.replace('/', '_')}_{shape_name}"
                d = os.path.join(root, name)
                s = imgstore.new_for_format(fmt, basedir=d, mode="w", imgshape=shape, imgdtype=np.uint8,
                                            chunksize=workload.CHUNKSIZE)
                for i, f in enumerate(frames):
                    s.add_image(f, i, workload.T0 + i / workload.FPS)
                s.close()
        del frames
        with RangeServer(root) as srv:
            for shape_name in args.shapes.split(","):
                for fmt in args.formats.split(","):
                    name = f"{fmt.replace('/', '_')}_{shape_name}"
                    d = os.path.join(root, name)
                    ext = "." + fmt.split("/")[1]
                    chunks = sorted(f for f in os.listdir(d) if f.endswith(ext))
                    idxs = {}
                    for c in chunks:
                        with open(os.path.join(d, packet_index_key(c)), "rb") as f:
                            idxs[c] = PacketIndex.from_bytes(f.read())
                    per_chunk = workload.CHUNKSIZE
                    targets = np.random.default_rng(workload.SEED + 1).permutation(args.frames)[:args.reads]

                    def where(n):
                        return chunks[n // per_chunk], n % per_chunk

                    minimum = sum(_minimum(idxs[c], p) for c, p in map(where, targets))

                    # store: get_image on one open store
                    s = imgstore.new_for_filename(f"{srv.url}/{name}")
                    srv.stats.reset()
                    t = time.perf_counter()
                    for n in targets:
                        img, md = s.get_image(int(n))
                        assert workload.read_barcode(img) == int(n) == int(md[0])
                    dt = time.perf_counter() - t
                    video = [(m, p, b) for m, p, b in srv.stats.log if m == "GET" and p.endswith(ext)]
                    other = len(srv.stats.log) - len(video)
                    rows.append((fmt, shape_name, "store", len(video), sum(b for *_, b in video), other, minimum,
                                 len(targets), dt))
                    s.close()

                    # cold: a fresh chunk reader per read
                    st = FsspecStorage(f"{srv.url}/{name}")
                    srv.stats.reset()
                    t = time.perf_counter()
                    for n in targets:
                        c, p = where(int(n))
                        with VideoChunkReader(st, c, color=len(workload.SHAPES[shape_name]) == 3,
                                              index=idxs[c]) as r:
                            assert workload.read_barcode(r.read(p)) == int(n)
                    dt = time.perf_counter() - t
                    rows.append((fmt, shape_name, "cold", srv.stats.requests, srv.stats.bytes, 0, minimum,
                                 len(targets), dt))

                    # batch: one store[list]
                    s = imgstore.new_for_filename(f"{srv.url}/{name}")
                    for c in range(len(chunks)):
                        s.get_image(c * per_chunk)  # load every chunk's index first
                    s.close()
                    s = imgstore.new_for_filename(f"{srv.url}/{name}")
                    srv.stats.reset()
                    t = time.perf_counter()
                    imgs = s[np.sort(targets)]
                    dt = time.perf_counter() - t
                    assert [workload.read_barcode(im) for im in imgs] == sorted(int(n) for n in targets)
                    video = [(m, p, b) for m, p, b in srv.stats.log if m == "GET" and p.endswith(ext)]
                    other = len(srv.stats.log) - len(video)
                    rows.append((fmt, shape_name, "batch", len(video), sum(b for *_, b in video), other, minimum,
                                 len(targets), dt))
                    s.close()

    print(f"{args.reads} random frames of {args.frames} (chunksize {workload.CHUNKSIZE}) over HTTP on 127.0.0.1; "
          "per frame:")
    print("| format | frames | mode | requests | kB | minimum kB | bytes / minimum | index req | ms |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for fmt, shape_name, mode, req, nbytes, other, minimum, n, dt in rows:
        label = "1280x1024 gray" if shape_name == "gray" else "640x480 BGR"
        print(f"| {fmt} | {label} | {mode} | {req / n:.2f} | {nbytes / n / 1e3:.1f} | {minimum / n / 1e3:.1f} | "
              f"{nbytes / minimum:.2f} | {other / n:.2f} | {dt / n * 1e3:.1f} |")


if __name__ == "__main__":
    main()
