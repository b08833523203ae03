"""The original's text drawing helpers (OpenCV Hershey fonts): a status bar of two strings on frames.

Drawing needs OpenCV (``pip install 'imgstore[opencv]'``); without it every function and method
that measures or draws raises OptionalDependencyError. The constants need nothing.
``imgstore-view`` draws its status bar with Pillow instead (``imgstore.apps.render``).
"""

from __future__ import annotations

import numpy as np

from .errors import OptionalDependencyError

FONT_POS_TOP = 0
FONT_POS_BOTTOM = 1
FONT_POS_TOP_LEFT = 2

#: ``cv2.FONT_HERSHEY_SIMPLEX``
DEFAULT_FONT = 0


def _cv2():
    try:
        import cv2  # type: ignore
    except ImportError:
        raise OptionalDependencyError("imgstore.font draws with OpenCV: pip install 'imgstore[opencv]'") from None
    return cv2


def measure_string(s: str, name: int, scale: float, thickness: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of *s* drawn in font *name* (height includes descenders)."""
    (w, h), _ = _cv2().getTextSize(s, name, scale, thickness)
    return w, h + int(scale + 0.5)


def fit_text(txt: str, img, pos: int = FONT_POS_TOP, color=(255, 255, 255), name: int = DEFAULT_FONT,
             only_measure: bool = False, img_shape=None) -> tuple[float, int]:
    """``(scale, thickness)`` at which *txt* spans 90-100% of the image width; draws it at the
    top or bottom of *img* unless *only_measure* (then *img* may be None if *img_shape* is given)."""
    if pos not in (FONT_POS_TOP, FONT_POS_BOTTOM):
        raise ValueError("invalid position")
    if img is None and img_shape is None:
        raise ValueError("img or img_shape must be provided")
    ih, iw = (img.shape if img_shape is None else img_shape)[:2]

    def width_at(scale):
        return measure_string(txt, name, scale, max(1, int(scale // 2)))[0] + 1

    lo, hi = 1.0 / 64, 1.0
    while width_at(hi) < iw and hi < 1024:  # grow until too wide
        lo, hi = hi, hi * 2
    scale = lo
    for _ in range(30):  # the largest scale that still fits, which is >= 90% wide for any sane font
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if width_at(mid) < iw else (lo, mid)
        scale = lo
        if width_at(scale) > 0.9 * iw:
            break
    thickness = max(1, int(scale // 2))
    if not only_measure:
        th = measure_string(txt, name, scale, thickness)[1] + 1
        origin = (1, th + 3) if pos == FONT_POS_TOP else (1, ih - 3)
        _cv2().putText(img, txt, origin, name, scale, color, thickness)
    return scale, thickness


class FontRenderer:
    """Draws strings in one font, scale and thickness."""

    def __init__(self, name: int, scale: float, thickness: int) -> None:
        self.name = name
        self.scale = scale
        self.thickness = thickness

    def measure_string(self, s: str) -> tuple[int, int]:
        return measure_string(s, self.name, self.scale, self.thickness)

    def write_string(self, s: str, pos, color, img=None, bgcolor=None) -> np.ndarray:
        """Draw *s* with its bottom-left corner at *pos* ``(x, y)`` (or FONT_POS_TOP_LEFT) on *img*,
        on a *bgcolor* box if given; with no *img*, on a new black image just large enough. Returns the image."""
        w, h = self.measure_string(s)
        if pos == FONT_POS_TOP_LEFT:
            pos = (0, h)
        if img is None:
            img = np.zeros((h + pos[1] + 1, w + pos[0] + 1, 3), np.uint8)
            pos = (pos[0], pos[1] + h)
        cv2 = _cv2()
        if bgcolor is not None:
            cv2.rectangle(img, (pos[0], pos[1]), (pos[0] + w, pos[1] - h), bgcolor, -1)
        cv2.putText(img, s, tuple(pos), self.name, self.scale, color, self.thickness)
        return img

    def write_paragraph(self, s: str, pos, color, img=None) -> np.ndarray:
        """Draw the lines of *s* below each other from *pos* (top left); with no *img*, on a new one."""
        x, y = (0, 0) if pos == FONT_POS_TOP_LEFT else pos
        placed, width = [], 0
        for line in s.split("\n"):
            lw, lh = self.measure_string(line)
            width = max(width, lw)
            placed.append((line, (x, y + lh)))
            y += int(1.2 * lh)
        if img is None:
            img = np.zeros((y, width + x, 3), np.uint8)
        for line, p in placed:
            self.write_string(line, p, color, img=img)
        return img


class FontRendererStatusBar(FontRenderer):
    """A left and a right string in a bar along the top or bottom of frames of one size."""

    POS_TOP = FONT_POS_TOP
    POS_BOTTOM = FONT_POS_BOTTOM
    POS_TOP_LEFT = FONT_POS_TOP_LEFT

    def __init__(self, name: int, scale: float = 1, thickness: int = 1) -> None:
        super().__init__(name, scale, thickness)
        #: (x, y, w, h) of the left and right string (y: baseline) and of the bar
        self._layout_l = self._layout_r = self._layout_box = None

    @classmethod
    def new_for_image(cls, img, font_name: int = DEFAULT_FONT, pos: int = POS_BOTTOM,
                      **layout_and_init_args) -> "FontRendererStatusBar":
        """For frames like *img*, shrinking the font if ``ltext`` + ``rtext`` would not fit."""
        h, w = img.shape[:2]
        padh = layout_and_init_args.get("padh", 12)
        txt = " " + layout_and_init_args.get("ltext", "") + layout_and_init_args.get("rtext", "")
        tw, _ = measure_string(txt, font_name, layout_and_init_args.get("scale", 1),
                               layout_and_init_args.get("thickness", 1))
        if tw + 2 * padh > w:
            layout_and_init_args["scale"], layout_and_init_args["thickness"] = fit_text(
                txt, None, name=font_name, only_measure=True, img_shape=(h, w - 2 * padh))
        return cls.new_for_image_size((w, h), font_name, pos, **layout_and_init_args)

    @classmethod
    def new_for_image_size(cls, frame_size, font_name: int = DEFAULT_FONT, pos: int = POS_BOTTOM,
                           **layout_and_init_args) -> "FontRendererStatusBar":
        """For frames of *frame_size* ``(w, h)``; *layout_and_init_args*: scale, thickness and layout()'s."""
        init = {k: layout_and_init_args.pop(k) for k in ("scale", "thickness") if k in layout_and_init_args}
        renderer = cls(font_name, **init)
        renderer.layout(pos, frame_size, **layout_and_init_args)
        return renderer

    def layout(self, pos: int, winsize, ltext: str = "", rtext: str = "", padv: int = 4, padh: int = 12) -> None:
        """Place strings as long as *ltext* / *rtext* in a bar at *pos* of frames of *winsize* ``(w, h)``."""
        w, h = winsize
        ltw, lth = self.measure_string(ltext) if ltext else (0, 0)
        rtw, rth = self.measure_string(rtext) if rtext else (0, 0)
        bar_h = max(lth, rth) + 2 * padv
        if pos == FONT_POS_BOTTOM:
            ly, ry, top = h - padv, h - padv, h - bar_h
        elif pos == FONT_POS_TOP:
            ly, ry, top = lth + padv, rth + padv, 0
        else:
            return
        if ltext:
            self._layout_l = (padh, ly, ltw, lth)
        if rtext:
            self._layout_r = (w - rtw - padh, ry, rtw, rth)
        self._layout_box = (0, top, w, bar_h)

    def render(self, img, ltext: str = "", lcolor=(255, 255, 255), rtext: str = "", rcolor=(255, 255, 255),
               bgcolor=None) -> None:
        """Draw the strings (and the bar in *bgcolor*, if given) onto *img* in place."""
        cv2 = _cv2()
        if bgcolor:
            x, y, w, h = self._layout_box
            cv2.rectangle(img, (x, y), (x + w, y + h), bgcolor, -1)
        for text, where, color in ((ltext, self._layout_l, lcolor), (rtext, self._layout_r, rcolor)):
            if text and where:
                cv2.putText(img, text, (where[0], where[1]), self.name, self.scale, color, self.thickness)

    def extract(self, img) -> tuple:
        """The image regions of the left and right string (None where there is none)."""
        out = []
        for where in (self._layout_l, self._layout_r):
            x, y, w, h = where or (0, 0, 0, 0)
            out.append(img[y - h:y + 1, x:x + w + 1, :] if w else None)
        return tuple(out)
