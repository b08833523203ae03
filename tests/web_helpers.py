"""Stores with known gaps and extra data, and the ``imgstore serve`` server in a subprocess, for the web tests."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np

import imgstore
from imgstore.apps.synthetic import make_frame

T0 = 1796200000.0  # 2026-12-02 08:26:40 UTC
FPS = 30.0
SHAPE = (120, 160)

# store A: numbers 0..99, then 105..299 (a 5-number jump at index 100); a 1 s pause in time at index 200
A_NUMBERS = np.array(list(range(0, 100)) + list(range(105, 300)), dtype=np.int64)
A_TIMES = T0 + A_NUMBERS / FPS + np.where(np.arange(len(A_NUMBERS)) >= 200, 1.0, 0.0)
# store B: every number 0..299 at the same rate, colour
B_NUMBERS = np.arange(300, dtype=np.int64)
B_TIMES = T0 + B_NUMBERS / FPS


def write_store(path, fmt, numbers, times, shape=SHAPE, dtype=np.uint8, extra=False, chunksize=100,
                metadata=None) -> str:
    with imgstore.new_for_format(fmt, mode="w", basedir=str(path), imgshape=shape, imgdtype=dtype,
                                 chunksize=chunksize, metadata=metadata or {}) as s:
        for k, (n, t) in enumerate(zip(numbers, times)):
            s.add_image(make_frame(int(n), shape, dtype), int(n), float(t))
            if extra:
                s.add_extra_data(temperature=20.0 + np.sin(k / 10.0), spike=100.0 if k == 123 else 0.0)
    return str(path)


def make_stores(root) -> dict[str, str]:
    """The stores A (h264 gray, gaps, extra data), B (mjpeg BGR) and C (ffv1 uint16 gray)."""
    return {
        "a": write_store(os.path.join(root, "a"), "h264/mkv", A_NUMBERS, A_TIMES, extra=True,
                         metadata={"genotype": "wt", "arena": 3}),
        "b": write_store(os.path.join(root, "b"), "mjpeg/avi", B_NUMBERS, B_TIMES, shape=SHAPE + (3,)),
        "c": write_store(os.path.join(root, "c"), "ffv1/mkv", np.arange(40), T0 + np.arange(40) / FPS,
                         dtype=np.uint16),
    }


class Server:
    """``python -m imgstore.apps.web ARGS --port 0`` running; ``url`` is its first line of output."""

    def __init__(self, *args: str, timeout: float = 60.0, command: tuple[str, ...] = ("-m", "imgstore.apps.web")) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, *command, *args, "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("http"):
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"server did not start: {line!r} {err}")
        self.url = line.strip()
        self.base = self.url.split("?")[0]
        self.port = int(self.base.rsplit(":", 1)[1].strip("/"))

    def get(self, path: str, headers: dict | None = None):
        """(status, headers, body) of GET *path* (relative to the server's root)."""
        req = urllib.request.Request(self.base + path.lstrip("/"), headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, path: str):
        status, _, body = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
        return self.proc.returncode


def decode_image(data: bytes) -> np.ndarray:
    """A JPEG or PNG (8 or 16 bit) as an array, gray if it is gray."""
    import imagecodecs

    return imagecodecs.png_decode(data) if data[:4] == b"\x89PNG" else imagecodecs.jpeg8_decode(data)


def barcode(img: np.ndarray) -> int:
    """The frame number drawn into *img* (gray or colour, any dtype)."""
    from imgstore.apps.synthetic import read_frame_number

    if img.ndim == 3:
        img = img[..., :3].max(axis=2)
    return read_frame_number(img)


def parse_multipart(content_type: str, body: bytes) -> list[tuple[dict, bytes]]:
    """The parts of a multipart/mixed body, with the standard library's MIME parser."""
    import email.parser
    import email.policy

    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    assert msg.is_multipart()
    return [(dict(p.items()), p.get_payload(decode=True)) for p in msg.iter_parts()]
