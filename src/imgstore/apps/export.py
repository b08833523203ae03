"""A clip to share: frames of one store, or of several aligned and tiled side by side, as one H.264 file.

``export_video(stores, 'clip.mkv' | 'clip.mp4', ...)`` writes H.264 in yuv420p (plays in browsers,
VLC and QuickTime) at the recorded timing: in MKV every frame keeps its own timestamp (time base
1/1000 s, relative to the first frame exported); MP4 gets a constant frame rate, the median of the
exported frames' rate, unless *vfr* (then MP4 keeps every frame's own timestamp too).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np

from ..align import AlignedStores, align_stores
from ..errors import ImgStoreError
from ..selection import Selection
from .tiles import Scale, Tiler, frame_label

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
MS = Fraction(1, 1000)


class ExportError(ImgStoreError, ValueError):
    """An export that cannot be done as asked; the message names the file."""


@dataclass
class ExportResult:
    """What :func:`export_video` wrote."""

    path: str
    frames: int
    width: int
    height: int
    duration_s: float
    frame_rate: float | None  # the constant rate of a CFR file, else None
    seconds: float

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _timeline(stores: Sequence, by: str, tolerance: float | None, missing: str) -> AlignedStores:
    """One row per frame to export: a lone store's frames in store order, or several stores aligned."""
    if len(stores) == 1:
        s = stores[0]
        return AlignedStores([s], np.asarray(s.frame_numbers), np.arange(s.frame_count)[None, :], "frame_number")
    return align_stores(stores, by=by, tolerance=tolerance, missing=missing)


def _row_numbers_and_times(al: AlignedStores) -> tuple[np.ndarray, np.ndarray]:
    """Per row: a frame number (the key, or the first store's) and a time (the key, or the first store's
    that has the row)."""
    times = np.full(len(al), np.nan)
    for s in reversed(range(len(al.stores))):
        idx = al.indices[s]
        ft = np.asarray(al.stores[s].frame_times, dtype=np.float64)
        have = idx >= 0
        times[have] = ft[idx[have]]
    if al.by == "frame_time":
        return np.asarray(al.stores[0].frame_numbers)[al.indices[0]], np.asarray(al.keys, dtype=np.float64)
    return np.asarray(al.keys), times


def presentation_times(times: np.ndarray) -> np.ndarray:
    """Milliseconds since the first frame, strictly increasing (times that are missing, equal or going
    backwards are put just after the frame before)."""
    t = np.asarray(times, dtype=np.float64)
    finite = np.isfinite(t)
    if not finite.any():
        return np.arange(len(t), dtype=np.int64) * 40
    ms = np.round((t - t[finite][0]) * 1000.0)
    out = np.empty(len(t), dtype=np.int64)
    prev = -1
    for i, v in enumerate(ms.tolist()):
        prev = int(v) if np.isfinite(v) and v > prev else prev + 1
        out[i] = prev
    return out


def median_rate(times: np.ndarray) -> Fraction:
    """The median frame rate of frames at *times* (25 when it cannot be told), as a rational FFmpeg keeps."""
    t = np.asarray(times, dtype=np.float64)
    dt = np.diff(t[np.isfinite(t)])
    dt = dt[dt > 0]
    fps = 1.0 / float(np.median(dt)) if len(dt) else 25.0
    fps = min(max(fps, 0.01), 1000.0)
    return Fraction(fps).limit_denominator(1001)


def _open_output(path: str, overwrite: bool):
    import av

    ext = os.path.splitext(path)[1].lower()
    if ext not in CONTAINERS:
        raise ExportError(f"{path}: the file name must end in .mp4 or .mkv (also .m4v, .mov)")
    if os.path.exists(path) and not overwrite:
        raise ExportError(f"{path}: already exists (pass --overwrite / overwrite=True to replace it)")
    options = {"movflags": "+faststart"} if CONTAINERS[ext] in ("mp4", "mov") else {}
    return av.open(path, "w", format=CONTAINERS[ext], options=options), CONTAINERS[ext] == "matroska"


def export_video(stores: Sequence, out: str, *, selection: Selection | None = None, by: str = "frame_number",
                 tolerance: float | None = None, missing: str = "drop", scale: Scale | None = None,
                 columns: int | None = None, overlay: bool = False, vfr: bool = False, crf: int = 20,
                 preset: str = "veryfast", overwrite: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> ExportResult:
    """Write the frames of *stores* (open for reading), aligned as :func:`imgstore.align_stores` does
    when there are several, to the H.264 file *out*; see the module docstring.

    *selection* picks rows (frame index = row, frame number, time: of the first store, or the key);
    *scale* sizes each store's frames; *columns* of tiles (default: all side by side); *overlay*
    draws each frame's number and local time; *crf* / *preset*: x264 quality and speed.
    """
    import av

    from ..util import motif_get_recording_timezone

    t_start = time.monotonic()
    stores = list(stores)
    if not stores:
        raise ExportError(f"{out}: no store to export")
    al = _timeline(stores, by, tolerance, missing)
    numbers, times = _row_numbers_and_times(al)
    tz = motif_get_recording_timezone(stores[0])
    rows = (selection or Selection()).indices(numbers, times, tz=tz)
    if not len(rows):
        raise ExportError(f"{out}: the selection holds no frames")
    al, times = al.subset(rows), times[rows]
    tiler = Tiler([tuple(s.image_shape) for s in stores], scale or Scale(), columns)
    zones = [motif_get_recording_timezone(s) for s in stores]
    pts = presentation_times(times)
    rate = None if vfr else median_rate(times)
    container, is_mkv = _open_output(out, overwrite)
    try:
        stream = container.add_stream("libx264", rate=rate or Fraction(25))
        stream.width, stream.height, stream.pix_fmt = tiler.width, tiler.height, "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": preset}
        time_base = MS if (is_mkv or vfr) else 1 / rate
        stream.time_base = stream.codec_context.time_base = time_base
        fmt = "bgr24" if tiler.color else "gray"
        for k, (_, imgs, metas) in enumerate(al):
            labels = [frame_label(fn, ft, zones[s]) for s, (fn, ft) in enumerate(metas)] if overlay else None
            frame = av.VideoFrame.from_ndarray(tiler.compose(imgs, labels), format=fmt)
            frame.pts = int(pts[k]) if (is_mkv or vfr) else k
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
            if progress is not None:
                progress(k + 1, len(al))
        for packet in stream.encode():
            container.mux(packet)
    except BaseException:
        container.close()
        os.unlink(out)
        raise
    container.close()
    duration = (len(al) / float(rate)) if rate else (pts[-1] - pts[0]) / 1000.0 + (
        float(np.median(np.diff(pts))) / 1000.0 if len(pts) > 1 else 0.04)
    return ExportResult(path=out, frames=len(al), width=tiler.width, height=tiler.height, duration_s=float(duration),
                        frame_rate=None if (is_mkv or not rate) else float(rate), seconds=time.monotonic() - t_start)
