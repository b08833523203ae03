"""Where ``imgstore save`` takes frames from: a video file, a V4L2 camera, or a folder or glob of images.

Each source iterates ``(image, seconds)`` pairs: BGR or gray numpy images, and each frame's time
since the source started (from the video's timestamps, the camera's clock, or *fps* for images).
"""

from __future__ import annotations

import glob
import os
import re
import time
from typing import Iterator

import numpy as np

from ..codecs.video.pixels import frame_image
from ..color import ensure_grayscale, swap_rb
from ..errors import ImgStoreError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".pnm", ".npy", ".webp")


class SourceError(ImgStoreError, ValueError):
    """A source that cannot be read; the message names it."""


def _natural_key(path: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", os.path.basename(path))] + [path]


def is_camera(spec: str) -> bool:
    return spec.isdigit() or spec.startswith("/dev/video")


class FrameSource:
    """Frames to save: ``total`` (None: not known), ``describe()``, iteration of ``(image, seconds)``."""

    total: int | None = None
    live = False  # a camera: runs until stopped

    def __init__(self, spec: str, gray: bool) -> None:
        self.spec = spec
        self.gray = gray

    def describe(self) -> str:
        return self.spec

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:  # pragma: no cover - abstract
        raise NotImplementedError


class VideoSource(FrameSource):
    """A video file (anything FFmpeg reads), or a V4L2 camera (``/dev/videoN`` or ``N``)."""

    def __init__(self, spec: str, gray: bool) -> None:
        super().__init__(spec, gray)
        import av

        self.live = is_camera(spec)
        path = f"/dev/video{spec}" if spec.isdigit() else spec
        if self.live and not os.path.exists(path):
            raise SourceError(f"{path}: no such camera (V4L2 device)")
        if not self.live and not os.path.exists(path) and "://" not in path:
            raise SourceError(f"{path}: no such file")
        try:
            self.container = av.open(path, format="v4l2") if self.live else av.open(path)
            self.stream = self.container.streams.video[0]
        except (av.error.FFmpegError, IndexError, OSError) as e:
            raise SourceError(f"{path}: cannot be read as video ({e})") from None
        self.total = None if self.live else (self.stream.frames or None)

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        t0 = time.time()
        try:
            for frame in self.container.decode(self.stream):
                if self.live:
                    t = time.time() - t0
                else:
                    t = float(frame.time) if frame.time is not None else None
                yield frame_image(frame, self.gray), t
        finally:
            self.container.close()


def read_image(path: str) -> np.ndarray:
    """One image file as a numpy array: gray (h, w) or BGR (h, w, 3), 8 or 16 bits."""
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            return np.load(path)
        if ext in (".tif", ".tiff"):
            import tifffile

            img = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                if im.mode in ("P", "PA", "LA", "RGBA", "CMYK", "YCbCr", "1"):
                    im = im.convert("RGB" if im.mode not in ("LA", "1") else "L")
                img = np.asarray(im)
                if im.mode.startswith("I;16"):
                    img = img.astype(np.uint16)
    except (OSError, ValueError) as e:
        raise SourceError(f"{path}: cannot be read as an image ({e})") from None
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    return swap_rb(img) if img.ndim == 3 else img  # files hold RGB; stores BGR


class ImageFilesSource(FrameSource):
    """The image files of a folder, or matching a glob pattern, in natural order (frame2 before frame10)."""

    def __init__(self, spec: str, gray: bool, fps: float) -> None:
        super().__init__(spec, gray)
        if os.path.isdir(spec):
            files = [os.path.join(spec, f) for f in os.listdir(spec) if f.lower().endswith(IMAGE_EXTENSIONS)]
        else:
            files = [f for f in glob.glob(spec) if os.path.isfile(f)]
        if not files:
            raise SourceError(f"{spec}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
        self.files = sorted(files, key=_natural_key)
        self.total = len(self.files)
        self.fps = float(fps)

    def describe(self) -> str:
        return f"{self.spec} ({self.total} images)"

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        first = None
        for i, path in enumerate(self.files):
            img = read_image(path)
            if self.gray and img.ndim == 3:
                img = ensure_grayscale(img)
            if first is None:
                first = (img.shape, img.dtype)
            elif (img.shape, img.dtype) != first:
                raise SourceError(f"{path}: {img.shape} {img.dtype}, but {self.files[0]} is {first[0]} {first[1]}; "
                                  f"a store's frames all have one shape")
            yield img, i / self.fps


def open_source(spec: str, gray: bool = False, fps: float | None = None) -> FrameSource:
    """The source *spec* names: a camera (``/dev/videoN``, ``N``), a folder or glob of images, a video file."""
    if is_camera(spec):
        return VideoSource(spec, gray)
    if os.path.isdir(spec) or any(ch in spec for ch in "*?["):
        return ImageFilesSource(spec, gray, fps or 25.0)
    if spec.lower().endswith(IMAGE_EXTENSIONS):
        return ImageFilesSource(spec, gray, fps or 25.0)
    return VideoSource(spec, gray)
