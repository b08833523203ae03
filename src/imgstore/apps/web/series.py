"""A store's extra data as numeric time series, and windows of them cut down for plotting.

Each numeric column becomes one series against frame time (seconds since the
epoch): the records' own ``frame_time`` where they have one, else the time of
the frame their ``frame_index`` names. Long windows are reduced per column by
keeping the minimum and the maximum of every bin, so no peak and no dropout
disappears from the plot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: columns that locate a record rather than measure something
_LOCATORS = ("frame_time", "frame_number", "frame_index")


@dataclass
class _Column:
    name: str
    time: np.ndarray  # sorted, finite
    value: np.ndarray  # finite, same length


class ExtraSeries:
    """The numeric columns of a store's extra data, each sorted by time."""

    def __init__(self, columns: list[_Column]) -> None:
        self._columns = {c.name: c for c in columns}

    @classmethod
    def from_dataframe(cls, df, frame_times: np.ndarray) -> "ExtraSeries":
        """Series of a ``get_extra_data()`` DataFrame (None: no extra data)."""
        if df is None or len(df) == 0:
            return cls([])
        t = _record_times(df, frame_times)
        if t is None:
            return cls([])
        columns = []
        for name in df.columns:
            if name in _LOCATORS:
                continue
            v = _numeric(df[name])
            if v is None:
                continue
            ok = np.isfinite(t) & np.isfinite(v)
            tt, vv = t[ok], v[ok]
            if len(tt) and np.any(tt[1:] < tt[:-1]):
                order = np.argsort(tt, kind="stable")
                tt, vv = tt[order], vv[order]
            if len(tt):
                columns.append(_Column(str(name), np.ascontiguousarray(tt), np.ascontiguousarray(vv)))
        return cls(columns)

    @property
    def names(self) -> list[str]:
        return list(self._columns)

    def describe(self) -> list[dict]:
        """Name, sample count and time span of each series."""
        return [{"name": c.name, "samples": len(c.time), "start": float(c.time[0]), "stop": float(c.time[-1])}
                for c in self._columns.values()]

    def window(self, start: float | None, stop: float | None, max_points: int,
               names: list[str] | None = None) -> dict:
        """The samples with start <= time <= stop of each series, at most *max_points* per series."""
        unknown = [n for n in names or () if n not in self._columns]
        if unknown:
            raise KeyError(unknown[0])
        out = []
        for c in self._columns.values():
            if names is not None and c.name not in names:
                continue
            a = 0 if start is None else int(np.searchsorted(c.time, start, side="left"))
            b = len(c.time) if stop is None else int(np.searchsorted(c.time, stop, side="right"))
            t, v = minmax_downsample(c.time[a:b], c.value[a:b], max_points)
            out.append({"name": c.name, "samples": b - a, "time": t.tolist(), "value": v.tolist()})
        return {"start": start, "stop": stop, "max_points": max_points, "columns": out}


def minmax_downsample(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most *max_points* of (x, y): the minimum and maximum of y in each of max_points // 2 equal bins, in order."""
    n = len(y)
    if n <= max_points:
        return x, y
    bins = max(max_points // 2, 1)
    size = math.ceil(n / bins)
    full = (n // size) * size
    blocks = y[:full].reshape(-1, size)
    base = np.arange(blocks.shape[0], dtype=np.int64) * size
    lo = base + np.argmin(blocks, axis=1)
    hi = base + np.argmax(blocks, axis=1)
    picks = [lo, hi]
    if full < n:
        tail = y[full:]
        picks.append(np.array([full + int(np.argmin(tail)), full + int(np.argmax(tail))], dtype=np.int64))
    idx = np.unique(np.concatenate(picks))
    return x[idx], y[idx]


def _record_times(df, frame_times: np.ndarray) -> np.ndarray | None:
    if "frame_time" in df.columns:
        t = _numeric(df["frame_time"])
        if t is not None and np.isfinite(t).any():
            return t
    if "frame_index" in df.columns:
        idx = _numeric(df["frame_index"])
        if idx is not None:
            ok = np.isfinite(idx) & (idx >= 0) & (idx < len(frame_times))
            t = np.full(len(idx), np.nan)
            t[ok] = np.asarray(frame_times, dtype=np.float64)[idx[ok].astype(np.int64)]
            return t
    return None


def _numeric(col) -> np.ndarray | None:
    """A column as float64, None if it is not numeric (text, lists, ...)."""
    kind = getattr(col.dtype, "kind", "O")
    if kind == "b":
        return col.to_numpy(dtype=np.float64)
    if kind in "iuf":
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    return None
