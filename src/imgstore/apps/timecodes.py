"""Frame times as an mkvmerge / mp4fpsmod "timecode format v2" file, so a video of the store's
chunks can be re-timed to the times its frames were recorded at."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

import numpy as np

TIMECODE_HEADER = "# timecode format v2\n"
_LINES_PER_WRITE = 65536


def generate_timecodes(store, dest_file: TextIO) -> np.ndarray:
    """Write the header, then each frame's time in milliseconds since the first frame (3 decimals),
    one line per frame in store order; returns those times in seconds."""
    times = np.asarray(store.frame_times, dtype=np.float64)
    rel = times - times[0] if len(times) else times.copy()
    dest_file.write(TIMECODE_HEADER)
    ms = rel * 1000.0
    for start in range(0, len(ms), _LINES_PER_WRITE):
        dest_file.write("".join(f"{v:.3f}\n" for v in ms[start:start + _LINES_PER_WRITE].tolist()))
    return rel


def main_generate_timecodes(argv=None) -> None:
    """Print the timecode file of the store at PATH."""
    from ..stores import new_for_filename

    p = argparse.ArgumentParser(prog="imgstore-generate-timecodes", description=main_generate_timecodes.__doc__)
    p.add_argument("path", nargs=1, help="store folder or its metadata.yaml")
    args = p.parse_args(argv)
    with new_for_filename(args.path[0]) as store:
        generate_timecodes(store, sys.stdout)
