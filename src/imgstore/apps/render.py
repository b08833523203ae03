"""Drawing a status bar (frame number and time) under a frame, with Pillow."""

from __future__ import annotations

import numpy as np

from ..color import ensure_color, swap_rb


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype.kind in "ui":
        return (img.astype(np.float64) * (255.0 / np.iinfo(img.dtype).max)).astype(np.uint8)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def render_with_statusbar(img: np.ndarray, text: str | None, bar_height: int = 18,
                          min_width: int = 0) -> np.ndarray:
    """A BGR uint8 copy of *img* with *text* in a black bar below it (no bar if text is None).

    Frames narrower than *min_width* are enlarged by a whole factor (pixel replication) first.
    """
    from PIL import Image, ImageDraw

    frame = ensure_color(_to_uint8(img))
    if min_width and frame.shape[1] < min_width:
        k = -(-min_width // frame.shape[1])
        frame = np.repeat(np.repeat(frame, k, axis=0), k, axis=1)
    if text is None:
        return np.ascontiguousarray(frame)
    h, w = frame.shape[:2]
    out = np.zeros((h + bar_height, w, 3), np.uint8)
    out[:h] = frame
    pil = Image.fromarray(swap_rb(out))
    ImageDraw.Draw(pil).text((4, h + 3), text, fill=(255, 255, 255))
    return swap_rb(np.asarray(pil))


def save_png(path: str, img_bgr: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(swap_rb(ensure_color(img_bgr))).save(path)
