"""The original's OpenCV window helpers (``new_window``, screen resolution).

Windows need OpenCV's highgui (``pip install 'imgstore[opencv]'``); without it ``new_window``
raises OptionalDependencyError. The screen resolution is read from ``xrandr`` (macOS:
``system_profiler``) and needs no OpenCV.
"""

from __future__ import annotations

import logging
import math
import re
import subprocess
import sys

from .errors import OptionalDependencyError

_IS_MAC = sys.platform == "darwin"
_SCREEN_RESOLUTION: str | None = None

_log = logging.getLogger("imgstore.ui")


def _cv2():
    try:
        import cv2  # type: ignore
    except ImportError:
        raise OptionalDependencyError(
            "imgstore.ui windows need OpenCV's highgui: pip install 'imgstore[opencv]'") from None
    return cv2


class _Window:
    """A named OpenCV window (what ``new_window`` returns); ``str(win)`` is its name."""

    def __init__(self, name: str, flags: int, sizestr: str) -> None:
        self.name = name
        self._flags = flags
        self._size = sizestr
        self._set = False

    def __repr__(self) -> str:
        return f"Window<{self.name!r}, flags={bin(self._flags)}, sizestr={self._size}, mac={_IS_MAC}>"

    def __str__(self) -> str:
        return self.name

    @property
    def size(self) -> tuple[int, int] | None:
        """``(width, height)`` it was sized to, None if OpenCV chose."""
        return tuple(int(v) for v in self._size.split("x")) if "x" in self._size else None

    def imshow(self, *args, **kwargs) -> None:
        cv2 = _cv2()
        cv2.imshow(*args, **kwargs)
        if _IS_MAC and not self._set and self.size is not None:  # macOS applies the size after the first imshow
            cv2.resizeWindow(self.name, *self.size)
            self._set = True

    def waitKey(self, *args, **kwargs) -> int:  # noqa: N802 - OpenCV's name
        return _cv2().waitKey(*args, **kwargs)


def get_screen_resolution() -> str:
    """The screen resolution as ``'WxH'`` (``''`` if it cannot be found); asked once per process."""
    global _SCREEN_RESOLUTION
    if _SCREEN_RESOLUTION is None:
        res = ""
        try:
            if _IS_MAC:
                out = subprocess.check_output(["system_profiler", "SPDisplaysDataType"], text=True)
                m = re.search(r"Resolution:\s*(\d+)\s*x\s*(\d+)", out)
                res = f"{m.group(1)}x{m.group(2)}" if m else ""
            else:
                out = subprocess.check_output(["xrandr"], text=True, stderr=subprocess.DEVNULL)
                current = [line for line in out.splitlines() if "*" in line]
                res = current[0].split()[0] if current else ""
        except (OSError, subprocess.CalledProcessError) as e:
            _log.warning("could not detect the screen resolution: %r", e)
        _SCREEN_RESOLUTION = res
    return _SCREEN_RESOLUTION


def get_and_parse_screen_resolution(scale: float = 1.0, default: tuple[int, int] = (1024, 768)) -> tuple[int, int]:
    """``(width, height)`` of the screen times *scale* (*default* if unknown)."""
    w, h = default
    res = get_screen_resolution()
    if res:
        try:
            w, h = (float(v) for v in res.split("x"))
        except ValueError:
            _log.warning("could not parse the screen resolution %r", res)
    return int(float(scale) * w), int(float(scale) * h)


def new_window(name: str, size=None, expanded_ui: bool = True, shape=None,
               screen_relative_size: float = 0.75) -> _Window:
    """Create an OpenCV window for images of *size* ``(w, h)`` (or array *shape*), at most
    *screen_relative_size* of the screen; autosized when neither is given."""
    cv2 = _cv2()
    if shape is not None:
        size = shape[1], shape[0]
    flags = cv2.WINDOW_GUI_EXPANDED if expanded_ui else cv2.WINDOW_GUI_NORMAL
    if size is None:
        cv2.namedWindow(name, cv2.WINDOW_AUTOSIZE | flags)
        return _Window(name, cv2.WINDOW_AUTOSIZE | flags, "auto")
    flags |= cv2.WINDOW_NORMAL
    cv2.namedWindow(name, flags)
    if not (size[0] > 0) or math.isnan(size[0]):
        return _Window(name, flags, "unknown")
    sw, sh = get_and_parse_screen_resolution(scale=screen_relative_size)
    if math.isinf(size[0]):
        w, h = sw, sh
    else:
        w, h = size
        shrink = min(sw / w if w > sw else 1.0, sh / h if h > sh else 1.0)
        w, h = w * shrink, h * shrink
    cv2.resizeWindow(name, int(w), int(h))
    return _Window(name, flags, f"{int(w)}x{int(h)}")
