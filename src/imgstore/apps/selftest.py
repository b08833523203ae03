"""Installation self-test: write and read back every supported format, pixel-checked."""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback

import numpy as np

from ..stores import get_supported_formats, new_for_filename, new_for_format
from .synthetic import make_frame, read_frame_number


def check_format(fmt: str, color: bool, folder: str, nframes: int = 23, chunksize: int = 7) -> str | None:
    """Write/read one store; returns None on success, else what went wrong."""
    shape = (96, 128, 3) if color else (96, 128)
    numbers = [1000 + i if i < 10 else 1005 + i for i in range(nframes)]
    times = [1.7e9 + i / 30.0 for i in range(nframes)]
    with new_for_format(fmt, basedir=folder, imgshape=shape, imgdtype=np.uint8, chunksize=chunksize) as s:
        for n, t in zip(numbers, times):
            s.add_image(make_frame(n, shape), n, t)
    r = new_for_filename(folder)
    if r.frame_count != nframes:
        return f"frame_count {r.frame_count} != {nframes}"
    if r.get_frame_metadata()["frame_number"] != numbers:
        return "frame numbers differ"
    order = np.random.default_rng(1).permutation(nframes)
    for i in order:
        img, (fn, ft) = r.get_image(numbers[i])
        if fn != numbers[i] or ft != times[i] or read_frame_number(img) != numbers[i]:
            return f"random read of frame {numbers[i]} returned frame {read_frame_number(img)}"
        if img.shape != r.image_shape:
            return f"shape {img.shape} != {r.image_shape}"
    img, (fn, _) = r.get_image(None, frame_index=3)
    for j in range(4, nframes):
        img, (fn, _) = r.get_next_image()
        if read_frame_number(img) != numbers[j]:
            return f"sequential read after seek returned {read_frame_number(img)} instead of {numbers[j]}"
    r.close()
    return None


def selftest_cases(formats: list[str] | None = None) -> list[tuple[str, bool]]:
    """``(format, colour)`` of each case the self-test runs (every supported format, gray and colour)."""
    formats = formats or [f for f in get_supported_formats() if not f.endswith("+color")]
    return [(fmt, color) for fmt in formats for color in (False, True)
            if not (fmt == "pgm" and color or fmt == "ppm" and not color)]


def run_case(fmt: str, color: bool, show_traceback: bool = False) -> tuple[str, str | None, float]:
    """Run one case: ``(label, None or what went wrong, seconds)``."""
    folder = tempfile.mkdtemp(prefix="imgstore-selftest-")
    t0 = time.perf_counter()
    try:
        err = check_format(fmt, color, folder)
    except Exception as e:  # report, keep going
        err = f"{e.__class__.__name__}: {e}"
        if show_traceback:
            traceback.print_exc()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return f"{fmt:12s} {'colour' if color else 'gray':6s}", err, time.perf_counter() - t0


def run_selftest(formats: list[str] | None = None, verbose: bool = True) -> int:
    """Run the self-test; prints one line per case and a summary. Returns the number of failures."""
    passed = failed = 0
    for fmt, color in selftest_cases(formats):
        label, err, seconds = run_case(fmt, color, show_traceback=verbose)
        if err is None:
            passed += 1
            if verbose:
                print(f"PASS {label} ({seconds:.2f} s)")
        else:
            failed += 1
            print(f"FAIL {label}: {err}")
    print(f"{passed} passed, {failed} failed")
    return failed
