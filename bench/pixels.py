#!/usr/bin/env python
"""Pixel loops: the compiled ``imgstore._pixels`` against the numpy formulation, YUV -> BGR/gray
against swscale, and reads into aligned and misaligned memory, per frame (docs/design/pixels.md).

    .venv/bin/python bench/pixels.py
"""
import os
import tempfile
import time

import numpy as np

import imgstore.color as color


def per_call_ms(fn, arg, n=40):
    fn(arg)
    t = time.perf_counter()
    for _ in range(n):
        fn(arg)
    return (time.perf_counter() - t) / n * 1e3


def main():
    rng = np.random.default_rng(0)
    compiled = color._pixels
    print("| frame | operation | numpy (ms) | compiled (ms) | ratio |")
    print("|---|---|---:|---:|---:|")
    for h, w in ((1024, 1280), (480, 640)):
        bgr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for name, fn, arg in (("BGR -> gray (OpenCV-exact)", color.bgr_to_gray, bgr),
                              ("BGR <-> RGB", color.swap_rb, bgr),
                              ("gray -> BGR", color.ensure_color, bgr[..., 0].copy())):
            color._pixels = None
            slow = per_call_ms(fn, arg)
            color._pixels = compiled
            fast = per_call_ms(fn, arg) if compiled is not None else float("nan")
            print(f"| {w}x{h} | {name} | {slow:.2f} | {fast:.2f} | {slow / fast:.1f}x |")
    yuv_rows(rng)
    read_rows(rng)


def yuv_rows(rng):
    import av

    from imgstore.codecs.video import pixels, yuv

    print()
    print("| frame | YUV 4:2:0 -> | swscale (ms) | imgstore._pixels (ms) | ratio |")
    print("|---|---|---:|---:|---:|")
    for h, w in ((1024, 1280), (480, 640)):
        fr = av.VideoFrame(w, h, "yuv420p")
        for p in fr.planes:
            a = np.frombuffer(p, np.uint8)
            a[:] = rng.integers(0, 256, a.size, dtype=np.uint8)
        coeffs = yuv.fast_coeffs(fr, pixels._sws_bgr24)
        if coeffs is None:
            print(f"| {w}x{h} | (kernel not used here) | | | |")
            continue
        for name, slow, fast in (
                ("BGR", pixels._sws_bgr24, lambda f: yuv.yuv_to_bgr(f, coeffs)),
                ("OpenCV gray", lambda f: color.bgr_to_gray(pixels._sws_bgr24(f)), lambda f: yuv.yuv_to_gray(f, coeffs))):
            a, b = per_call_ms(slow, fr), per_call_ms(fast, fr)
            print(f"| {w}x{h} | {name} | {a:.3f} | {b:.3f} | {a / b:.1f}x |")


def read_rows(rng):
    """Reads of 64 distinct files (a file read again and again stays in the CPU caches, which hides
    the cost of a misaligned destination)."""
    from imgstore import frame_memory

    print()
    print("| file | readinto 16 B past a cache line (ms) | 64-byte aligned (ms) | frame_memory (ms) |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as d:
        for size in (1_310_848, 921_728):
            paths = []
            for k in range(64):
                paths.append(os.path.join(d, "%d-%d" % (size, k)))
                with open(paths[-1], "wb") as f:
                    f.write(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
            raw = np.empty(size + 8192, np.uint8)
            a0 = (-raw.ctypes.data) % 4096
            dests = {"off16": raw[a0 + 16:a0 + 16 + size], "aligned": raw[a0 + 64:a0 + 64 + size]}

            def read_all(kind):
                for path in paths:
                    with open(path, "rb", buffering=0) as fh:
                        fh.readinto(frame_memory.empty(size) if kind == "pool" else dests[kind])

            row = [per_call_ms(read_all, k, n=5) / len(paths) for k in ("off16", "aligned", "pool")]
            print(f"| {size:,} bytes | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.3f} |")


if __name__ == "__main__":
    main()
