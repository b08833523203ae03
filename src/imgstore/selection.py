"""Which frames of a recording to take: by frame index, frame number, time, and every Nth.

Used by ``imgstore.convert`` and the ``convert`` / ``export`` commands. Every range is
half-open, like a Python slice: ``A:B`` takes A and what follows up to, not including, B;
either side may be left out.

* ``start`` / ``stop``: frame indices (0 ... frame_count-1; negative ones count from the end);
* ``frame_numbers=(A, B)``: frames whose frame number is in [A, B);
* ``time=(A, B)``: frames whose time is in [A, B). Plain numbers are seconds since the first
  frame (frame index 0); ISO datetimes (``2026-11-22T16:55:30``) are absolute, in the
  recording's time zone unless they carry their own offset (``...+01:00``, ``...Z``);
* ``every=N``: of the frames the other criteria select, the first and every Nth after it.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: a side of a range: a number, an ISO datetime (time ranges only), or None for open
Bound = Any


@dataclass(frozen=True)
class Selection:
    """A choice of frames (see the module docstring); the default selects every frame."""

    start: int | None = None
    stop: int | None = None
    frame_numbers: tuple[Bound, Bound] | None = None
    time: tuple[Bound, Bound] | None = None
    every: int = 1

    def __post_init__(self) -> None:
        if int(self.every) < 1:
            raise ValueError(f"every must be a positive whole number, not {self.every!r}")

    @property
    def is_everything(self) -> bool:
        return self == Selection()

    def to_json(self) -> dict:
        """A JSON-able form (datetimes as ISO strings)."""
        def side(v):
            return v.isoformat() if isinstance(v, datetime.datetime) else v

        return {"start": self.start, "stop": self.stop, "every": self.every,
                "frame_numbers": None if self.frame_numbers is None else [side(v) for v in self.frame_numbers],
                "time": None if self.time is None else [side(v) for v in self.time]}

    def indices(self, frame_numbers: np.ndarray, frame_times: np.ndarray, tz=None) -> np.ndarray:
        """Frame indices selected among frames with these numbers and times (in order), sorted.

        *tz* is the recording's time zone, for ISO datetimes without an offset (default UTC).
        """
        frame_numbers = np.asarray(frame_numbers)
        frame_times = np.asarray(frame_times, dtype=np.float64)
        n = len(frame_numbers)
        keep = np.zeros(n, dtype=bool)
        keep[slice(self.start, self.stop)] = True
        if self.frame_numbers is not None:
            lo, hi = (_number(v, "frame number") for v in self.frame_numbers)
            if lo is not None:
                keep &= frame_numbers >= lo
            if hi is not None:
                keep &= frame_numbers < hi
        if self.time is not None:
            first = _first_finite(frame_times)
            lo, hi = (_epoch(v, first, tz) for v in self.time)
            if lo is not None:
                keep &= frame_times >= lo
            if hi is not None:
                keep &= frame_times < hi
        return np.flatnonzero(keep)[:: int(self.every)]


def _first_finite(times: np.ndarray) -> float:
    finite = times[np.isfinite(times)]
    return float(finite[0]) if len(finite) else 0.0


def _number(v: Bound, what: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, (datetime.datetime, str)):
        raise ValueError(f"a {what} must be a number, not {v!r}")
    return float(v)


def _epoch(v: Bound, first: float, tz) -> float | None:
    """A time-range side as unix seconds."""
    if v is None:
        return None
    if isinstance(v, str):
        v = parse_datetime(v)
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=tz or datetime.timezone.utc)
        return v.timestamp()
    return first + float(v)


def parse_datetime(text: str) -> datetime.datetime:
    """An ISO-8601 date and time (``2026-11-22T16:55:30.5``, ``... 16:55``, ``...Z``, ``...+01:00``)."""
    s = text.strip()
    try:
        return datetime.datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds or an ISO datetime "
                         f"(e.g. 2026-11-22T16:55:30)") from None


def _side(text: str, allow_datetime: bool) -> Bound:
    """One side of ``A:B``: '' is open, else a number, else (time ranges) an ISO datetime."""
    s = text.strip()
    if not s:
        return None
    try:
        v = float(s)
    except ValueError:
        if not allow_datetime:
            raise ValueError(f"{text!r} is not a number") from None
        return parse_datetime(s)
    if not math.isfinite(v):
        raise ValueError(f"{text!r} is not a finite number")
    return int(v) if v.is_integer() and "." not in s and "e" not in s.lower() else v


def parse_range(text: str, allow_datetime: bool = False) -> tuple[Bound, Bound]:
    """``'A:B'`` (or ``'A/B'``) as ``(A, B)``; either side may be empty (open).

    With *allow_datetime*, sides may be ISO datetimes (which hold colons themselves: the split
    is the one colon where both sides parse; ``/`` separates without ambiguity).
    """
    if "/" in text:
        parts = [text.split("/", 1)]
    else:
        pos = [i for i, ch in enumerate(text) if ch == ":"]
        parts = [[text[:i], text[i + 1:]] for i in pos]
    found = []
    last_error = None
    for a, b in parts:
        try:
            found.append((_side(a, allow_datetime), _side(b, allow_datetime)))
        except ValueError as e:
            last_error = e
    if len(found) == 1:
        return found[0]
    if not parts:
        raise ValueError(f"{text!r} is not a range A:B (either side may be empty)")
    if not found:
        raise last_error  # type: ignore[misc]
    raise ValueError(f"{text!r} is ambiguous as a range: write it as A/B")
