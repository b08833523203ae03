"""Synthetic frames that carry their own frame number (for demos and self-tests).

The number is a 16-bit barcode in rows 0..31: bit k (MSB first) sets columns
4k+1..4k+2 to the dtype's maximum, the same rule as the reference stores.
Below it, a textured background with a moving blob.
"""

from __future__ import annotations

import numpy as np

BARCODE_BITS = 16


def make_frame(frame_number: int, shape=(96, 128), dtype=np.uint8, seed: int = 0) -> np.ndarray:
    """A frame of *shape* (gray (h, w) or BGR (h, w, 3)) encoding *frame_number*."""
    h, w = shape[:2]
    dt = np.dtype(dtype)
    top = np.iinfo(dt).max if dt.kind in "ui" else 1.0
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = (0.25 + 0.1 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + 0.05 * rng.random((h, w)))
    cy = h / 2 + h / 4 * np.sin(frame_number / 10.0)
    cx = w / 2 + w / 4 * np.cos(frame_number / 13.0)
    blob = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (min(h, w) / 10.0) ** 2)))
    img = np.clip(bg + 0.6 * blob, 0, 1) * (top * 0.45)  # stays below half range: never reads as a set bit
    img = img.astype(dt)
    img[:32, : 4 * BARCODE_BITS] = 0
    for k in range(BARCODE_BITS):
        if (int(frame_number) >> (BARCODE_BITS - 1 - k)) & 1:
            img[:32, 4 * k + 1: 4 * k + 3] = top
    if len(shape) == 3:
        img = np.repeat(img[:, :, None], 3, axis=2)
        img[32:48, 0:32] = (top, 0, 0)  # blue patch (BGR)
        img[32:48, 32:64] = (0, 0, top)  # red patch (BGR)
    return img


def read_frame_number(img: np.ndarray) -> int:
    """Decode the barcode written by :func:`make_frame`."""
    dt = img.dtype
    half = (np.iinfo(dt).max / 2.0) if dt.kind in "ui" else 0.5
    v = 0
    for k in range(BARCODE_BITS):
        if float(img[0:32, 4 * k + 1: 4 * k + 3].mean()) > half:
            v |= 1 << (BARCODE_BITS - 1 - k)
    return v


def write_video_file(path, numbers, shape=(96, 128), codec: str = "libx264", pix_fmt: str = "yuv420p",
                     options: dict | None = None, container_options: dict | None = None, rate: int = 25) -> str:
    """A colour video file written with PyAV (as another program would), frame *i* encoding ``numbers[i]``."""
    return write_frames_file(path, (make_frame(n, tuple(shape[:2]) + (3,)) for n in numbers), codec, pix_fmt,
                             options, container_options, rate)


def write_frames_file(path, frames, codec: str = "libx264", pix_fmt: str = "yuv420p", options: dict | None = None,
                      container_options: dict | None = None, rate: int = 25) -> str:
    """A video file of the BGR uint8 *frames* written with PyAV, frame *i* at pts *i*."""
    import av

    with av.open(str(path), "w", options=container_options or {}) as c:
        st = None
        for i, bgr in enumerate(frames):
            if st is None:
                st = c.add_stream(codec, rate=rate)
                st.width, st.height, st.pix_fmt = bgr.shape[1], bgr.shape[0], pix_fmt
                if options:
                    st.codec_context.options = {k: str(v) for k, v in options.items()}
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")
            vf.pts = i
            for p in st.encode(vf):
                c.mux(p)
        if st is not None:
            for p in st.encode():
                c.mux(p)
    return str(path)
