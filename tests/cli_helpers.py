"""Running the ``imgstore`` commands as subprocesses, and small stores to run them on."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_frame

import imgstore

BIN = os.path.dirname(sys.executable)
SHAPE = (48, 64)
T0 = 1.7e9


def exe(tool: str = "imgstore") -> str:
    path = os.path.join(BIN, tool)
    if not os.path.exists(path):
        pytest.skip(f"{tool} is not installed next to {sys.executable}")
    return path


def run(*args, tool: str = "imgstore", check: bool = True, env: dict | None = None, timeout: float = 120):
    """``imgstore ARGS`` (or another console script) as a subprocess; its CompletedProcess (text)."""
    e = dict(os.environ, **(env or {}))
    p = subprocess.run([exe(tool), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=e)
    if check and p.returncode != 0:
        raise AssertionError(f"{tool} {args} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def numbers_for(n: int) -> list[int]:
    """Frame numbers with a gap and a repeat, as cameras give them."""
    out = [1000 + i for i in range(n)]
    if n > 20:
        out[10:] = [x + 5 for x in out[10:]]  # frames 1010..1014 dropped
        out[15] = out[14]                     # one number twice
    return out


def times_for(numbers, fps: float = 30.0, t0: float = T0) -> list[float]:
    return [t0 + i / fps for i in range(len(numbers))]


def make_store(path, n: int = 60, fmt: str = "npy", chunksize: int = 25, shape=SHAPE, fps: float = 30.0,
               t0: float = T0, extra_every: int = 7, metadata: dict | None = None, numbers=None):
    """A store of *n* barcoded frames with extra data every *extra_every* frames; returns it open for reading."""
    numbers = numbers_for(n) if numbers is None else list(numbers)
    md = {"genotype": "CS", "timezone": "Europe/Vienna"} if metadata is None else metadata
    with imgstore.new_for_format(fmt, mode="w", basedir=str(path), imgshape=shape, imgdtype=np.uint8,
                                 chunksize=chunksize, metadata=md) as s:
        for i, (fn, t) in enumerate(zip(numbers, times_for(numbers, fps, t0))):
            s.add_image(make_frame(fn, shape), fn, t)
            if extra_every and i % extra_every == 3:
                s.add_extra_data(temperature=20 + i / 4, label=f"r{i}")
    return imgstore.new_for_filename(str(path))
