"""``imgstore info PATH``: what a store holds."""

from __future__ import annotations

import argparse

import numpy as np

from .common import add_common, open_store, print_json

NAME = "info"
SUMMARY = "what a store holds: frames, times, format, metadata"
DESCRIPTION = """\
Print what a store holds: frame count, frame numbers and times, format, chunks, creation time,
time zone and user metadata.

examples:
  imgstore info mystore
  imgstore info mystore/metadata.yaml --json
  imgstore info https://example.org/stores/fly1 cam1 cam2"""


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


def print_summary(d: dict) -> None:
    for k, v in d.items():
        if k == "user_metadata":
            v = ", ".join(f"{a}={b!r}" for a, b in v.items()) or "-"
        print(f"  {k:15s} {v}")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="store folder, its metadata.yaml, or a URL")
    add_common(p, quiet=True, json=True)


def run(args: argparse.Namespace) -> int:
    found = []
    for path in args.paths:
        with open_store(path, quiet=args.quiet) as s:
            found.append((path, describe_store(s)))
    if args.json:
        print_json(found[0][1] if len(found) == 1 else [d for _, d in found])
        return 0
    for path, d in found:
        print(path)
        print_summary(d)
    return 0
