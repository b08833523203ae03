#!/usr/bin/env python
"""Pixel loops: the compiled ``imgstore._pixels`` against the numpy formulation, per frame (docs/design/pixels.md).

    .venv/bin/python bench/pixels.py
"""
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


if __name__ == "__main__":
    main()
