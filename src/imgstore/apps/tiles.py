"""Frames made ready for a shared video: 8-bit, scaled, labelled, and several tiled into one picture."""

from __future__ import annotations

import datetime
import functools
import re

import numpy as np

from ..color import swap_rb
from .render import _to_uint8


def parse_scale(text: str | float | None) -> "Scale":
    """``0.5`` (a factor), ``640x480``, ``640x`` or ``x480`` (the other side keeps the aspect ratio)."""
    if text is None or isinstance(text, (int, float)):
        return Scale(factor=None if text is None else float(text))
    s = str(text).strip().lower()
    m = re.fullmatch(r"(\d*)x(\d*)", s)
    if m and (m.group(1) or m.group(2)):
        return Scale(width=int(m.group(1)) if m.group(1) else None, height=int(m.group(2)) if m.group(2) else None)
    try:
        f = float(s)
    except ValueError:
        raise ValueError(f"scale {text!r} is not a factor (0.5) or a size (640x480, 640x, x480)") from None
    return Scale(factor=f)


class Scale:
    """How to size each store's frames: by a factor, or to a width and/or height."""

    def __init__(self, factor: float | None = None, width: int | None = None, height: int | None = None) -> None:
        if factor is not None and not 0 < factor <= 16:
            raise ValueError(f"scale factor {factor} is not in (0, 16]")
        if (width is not None and width < 2) or (height is not None and height < 2):
            raise ValueError("a scaled size must be at least 2 pixels")
        self.factor, self.width, self.height = factor, width, height

    def size(self, h: int, w: int) -> tuple[int, int]:
        """``(height, width)`` of a frame of *h* x *w* pixels once scaled."""
        if self.factor is not None:
            return max(2, round(h * self.factor)), max(2, round(w * self.factor))
        if self.width and self.height:
            return self.height, self.width
        if self.width:
            return max(2, round(h * self.width / w)), self.width
        if self.height:
            return self.height, max(2, round(w * self.height / h))
        return h, w


def resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """*img* (gray or BGR uint8) at *h* x *w* pixels (area averaging down, bicubic up; FFmpeg's swscale)."""
    if img.shape[:2] == (h, w):
        return img
    import av

    fmt = "gray" if img.ndim == 2 else "bgr24"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format=fmt)
    shrink = h * w < img.shape[0] * img.shape[1]
    return frame.reformat(width=w, height=h, format=fmt, interpolation="AREA" if shrink else "BICUBIC").to_ndarray()


@functools.lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fitting(draw, text: str, w: int, h: int):
    """The text (on one line, else two) and a font that fits a frame *w* wide, *h* high."""
    size = max(9, min(h // 18, w // 30, 48))
    candidates = [text, text.replace("  ", "\n", 1)] if "  " in text else [text]
    while True:
        for t in candidates:
            font = _font(size)
            box = draw.multiline_textbbox((0, 0), t, font=font, spacing=1)
            if box[2] - box[0] <= w - 4 or size <= 6:
                return t, font, box
        size -= 1


def draw_label(img: np.ndarray, text: str) -> np.ndarray:
    """*img* (gray or BGR uint8) with *text* in white on a black box at its bottom-left corner (on two
    lines, or smaller, where one line does not fit)."""
    from PIL import Image, ImageDraw

    h, w = img.shape[:2]
    pil = Image.fromarray(img if img.ndim == 2 else swap_rb(img))
    draw = ImageDraw.Draw(pil)
    text, font, (left, top, right, bottom) = _fitting(draw, text, w, h)
    pad = 2
    y = h - (bottom - top) - 2 * pad
    draw.rectangle((0, y, min(w, right - left + 2 * pad), h), fill=0)
    draw.multiline_text((pad - left, y + pad - top), text, fill=255 if img.ndim == 2 else (255, 255, 255),
                        font=font, spacing=1)
    out = np.asarray(pil)
    return out if img.ndim == 2 else swap_rb(out)


def frame_label(frame_number, frame_time: float, tz) -> str:
    """``#frame_number  local date and time`` (to the millisecond, with the zone's abbreviation)."""
    if frame_number is None:
        return "no frame"
    if not np.isfinite(frame_time):
        return f"#{frame_number}"
    when = datetime.datetime.fromtimestamp(float(frame_time), tz=tz)
    return f"#{frame_number}  {when.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]} {when.tzname() or ''}".rstrip()


class Tiler:
    """Puts one frame per store into a grid of *columns*, each scaled to its cell, as one even-sized picture."""

    def __init__(self, shapes: list[tuple[int, ...]], scale: Scale, columns: int | None = None,
                 color: bool | None = None) -> None:
        self.n = len(shapes)
        self.columns = max(1, min(columns or self.n, self.n))
        self.rows = -(-self.n // self.columns)
        self.sizes = [scale.size(int(s[0]), int(s[1])) for s in shapes]
        self.cell_h = max(h for h, _ in self.sizes)
        self.cell_w = max(w for _, w in self.sizes)
        self.color = any(len(s) == 3 for s in shapes) if color is None else color
        self.height = (self.rows * self.cell_h + 1) & ~1  # yuv420p needs even sizes
        self.width = (self.columns * self.cell_w + 1) & ~1

    def _prepare(self, img: np.ndarray, s: int) -> np.ndarray:
        img = _to_uint8(np.asarray(img))
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        img = resize(img, *self.sizes[s])
        if self.color and img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        return img

    def compose(self, images: list[np.ndarray], labels: list[str] | None = None) -> np.ndarray:
        """The picture of one row of frames (gray if every store is gray, else BGR), labelled if *labels*."""
        shape = (self.height, self.width, 3) if self.color else (self.height, self.width)
        out = np.zeros(shape, np.uint8)
        for s, img in enumerate(images):
            tile = self._prepare(img, s)
            if labels is not None:
                tile = draw_label(tile, labels[s])
            r, c = divmod(s, self.columns)
            y, x = r * self.cell_h, c * self.cell_w
            out[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
        return out
