"""The nominal frame rate written into a chunk's container (the store's frame times are the real ones).

Why the clamp: docs/design/video-formats.md ("Timestamps").
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from .formats import DEFAULT_FPS

#: highest nominal frame rate a chunk's container is given: Matroska counts milliseconds and FFmpeg's
#: AVI muxer refuses finer clocks (docs/design/video-formats.md); the store's frame times are the real ones
MAX_CONTAINER_FPS = 1000
#: lowest nominal frame rate (one frame every 1000 s)
MIN_CONTAINER_FPS = Fraction(1, 1000)


def container_rate(fps, where: str = "") -> Fraction:
    """The nominal frame rate written into a chunk's container for *fps* (None: :data:`DEFAULT_FPS`).

    A fraction with small terms (x265 fails on a rate like 30000029/1000000, what frame times often
    give), clamped to ``[MIN_CONTAINER_FPS, MAX_CONTAINER_FPS]``, so that the muxer keeps every
    frame's timestamp apart; the store's frame times are the real ones.
    """
    if fps is None:
        return Fraction(DEFAULT_FPS)
    try:
        f = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: fps must be a number, got {fps!r}") from None
    if not np.isfinite(f) or f <= 0:
        raise ValueError(f"{where}: fps must be positive and finite, got {fps!r}")
    rate = Fraction(f).limit_denominator(1001)
    return min(max(rate, MIN_CONTAINER_FPS), Fraction(MAX_CONTAINER_FPS))


def nominal_fps(frame_times) -> float:
    """Frames per second from the median of the positive intervals between *frame_times*
    (:data:`DEFAULT_FPS` if there are none)."""
    dt = np.diff(np.asarray(frame_times, dtype=np.float64))
    dt = dt[np.isfinite(dt) & (dt > 0)]
    return 1.0 / float(np.median(dt)) if len(dt) else float(DEFAULT_FPS)
