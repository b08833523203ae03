"""Dropped frames: jumps in the frame numbers and gaps in the frame times of a store.

A *number jump* is a frame whose number is not its predecessor's plus one (a
camera that dropped frames skips numbers; a number going back or repeating is a
jump too). A *time gap* is a frame that comes more than two frame intervals
after its predecessor, the interval being the median over the store.
"""

from __future__ import annotations

import math

import numpy as np

#: a frame more than this many median intervals after its predecessor starts a time gap
TIME_GAP_INTERVALS = 2.0
_SAMPLE = 200_001  # frames the median interval is estimated from, in a long store


def frame_interval(times: np.ndarray) -> float:
    """The median interval between consecutive frames (NaN if there is none), from a sample of long stores."""
    t = np.asarray(times, dtype=np.float64)
    if len(t) < 2:
        return math.nan
    if len(t) > _SAMPLE:
        starts = np.linspace(0, len(t) - 2, _SAMPLE // 2).astype(np.int64)
        d = t[starts + 1] - t[starts]
    else:
        d = np.diff(t)
    d = d[np.isfinite(d) & (d > 0)]
    return float(np.median(d)) if len(d) else math.nan


def find_gaps(numbers: np.ndarray, times: np.ndarray, interval: float, limit: int) -> tuple[int, list[dict]]:
    """``(how many gaps, the first *limit* of them)``; each gap is described by the frame after it."""
    fn = np.asarray(numbers, dtype=np.int64)
    ft = np.asarray(times, dtype=np.float64)
    if len(fn) < 2:
        return 0, []
    dn = np.diff(fn)
    dt = np.diff(ft)
    jump = dn != 1
    if math.isfinite(interval) and interval > 0:
        with np.errstate(invalid="ignore"):
            late = dt > TIME_GAP_INTERVALS * interval
    else:
        late = np.zeros(len(dt), dtype=bool)
    at = np.flatnonzero(jump | late)
    return len(at), [_describe(int(k), fn, ft, bool(jump[k]), bool(late[k]), interval) for k in at[:limit]]


def _describe(k: int, fn: np.ndarray, ft: np.ndarray, jump: bool, late: bool, interval: float) -> dict:
    a, b = int(fn[k]), int(fn[k + 1])
    t0, t1 = float(ft[k]), float(ft[k + 1])
    seconds = t1 - t0
    kind = [name for name, on in (("number", jump), ("time", late)) if on]
    frames_late = seconds / interval - 1 if late else 0.0
    return {
        "index": k + 1,
        "kind": kind,
        "frame_number_before": a,
        "frame_number": b,
        "missing_numbers": max(b - a - 1, 0),
        "frame_time_before": _finite_or_none(t0),
        "frame_time": _finite_or_none(t1),
        "seconds": _finite_or_none(seconds),
        "missing_intervals": round(frames_late, 3) if math.isfinite(frames_late) else None,
    }


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
