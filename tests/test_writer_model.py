"""Property-based test of every writable format against a simple model of a store (issue #11, item 3).

Random sequences of ``add_image`` / ``add_extra_data`` / ``flush`` with chunk sizes 1..5, frame numbers
unsorted, repeated or negative, frame times equal, jittery, bursty (``time.time()`` of a camera delivering
frames in bursts), backwards or integers. The store read back must hold exactly what the model holds:
every frame by the number its pixels carry, every frame number and time, every extra-data row.
"""

from __future__ import annotations

import math
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import imgstore
from imgstore.apps.synthetic import make_frame, read_frame_number
from imgstore.errors import UnsupportedFormatError

GRAY, COLOR = (48, 64), (48, 64, 3)


def _shapes(fmt):
    """The frame shapes *fmt* can hold (gray, colour or both)."""
    out = []
    for shape in (GRAY, COLOR):
        try:
            d = tempfile.mkdtemp()
            imgstore.new_for_format(fmt, basedir=d + "/s", imgshape=shape, imgdtype=np.uint8).close()
            out.append(shape)
        except UnsupportedFormatError:
            pass
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return out


FORMATS = imgstore.get_supported_formats()

NUMBER_KINDS = {
    "increasing": lambda rng, n: list(range(1000, 1000 + n)),
    "unsorted": lambda rng, n: [int(v) for v in rng.permutation(n) * 3 - 7],
    "repeated": lambda rng, n: [int(v) for v in rng.integers(0, 3, n)],
    "negative": lambda rng, n: [int(v) for v in -rng.integers(0, 2 ** 40, n)],
    "jump_back": lambda rng, n: ([0, 1, 2, 20, 19, 18, 21, 22, 23, 24, 25, 26] * 2)[:n],
}


def _bursts(rng, n):
    t, out = 1.7e9 + float(rng.random()), []
    for i in range(n):
        out.append(t)
        t += float(rng.uniform(0.015, 0.04)) if i % 4 == 3 else float(rng.uniform(20e-6, 900e-6))
    return out


TIME_KINDS = {
    "regular": lambda rng, n: [1.7e9 + i / 30 for i in range(n)],
    "equal": lambda rng, n: [1.7e9] * n,
    "jitter": lambda rng, n: [float(v) for v in 1.7e9 + np.arange(n) / 30 + rng.normal(0, 0.02, n)],
    "bursts": _bursts,
    "backwards": lambda rng, n: [1.7e9 - i * 0.5 for i in range(n)],
    "integers": lambda rng, n: list(range(n)),
}

OPS = st.lists(st.sampled_from(["image", "image", "image", "extra", "flush"]), min_size=1, max_size=14)


@st.composite
def recordings(draw, shapes):
    ops = draw(OPS)
    n = ops.count("image")
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    return dict(ops=ops, chunksize=draw(st.integers(1, 5)), shape=draw(st.sampled_from(shapes)),
                numbers=NUMBER_KINDS[draw(st.sampled_from(sorted(NUMBER_KINDS)))](rng, n),
                times=TIME_KINDS[draw(st.sampled_from(sorted(TIME_KINDS)))](rng, n))


def record(path, fmt, rec):
    """Write *rec* into a new store; return the model: frames (number, time, pixel id) and extra rows."""
    s = imgstore.new_for_format(fmt, basedir=path, imgshape=rec["shape"], imgdtype=np.uint8,
                                chunksize=rec["chunksize"])
    frames, rows = [], []
    k = 0
    for op in rec["ops"]:
        if op == "image":
            fn, ft = rec["numbers"][k], rec["times"][k]
            s.add_image(make_frame(k, rec["shape"]), fn, ft)
            frames.append((fn, float(ft), k))
            k += 1
        elif op == "extra":
            s.add_extra_data(row=len(rows), note="r%d" % len(rows))
            last = frames[-1] if frames else (math.nan, math.nan, None)
            rows.append(dict(row=len(rows), frame_index=len(frames) - 1, frame_number=last[0], frame_time=last[1]))
        else:
            s.flush()
    s.close()
    return frames, rows


def same(a, b):
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b


def check(path, frames, rows):
    s = imgstore.new_for_filename(path)
    assert s.frame_count == len(frames)
    assert s.frame_numbers.tolist() == [f[0] for f in frames]
    assert s.frame_times.tolist() == [f[1] for f in frames]
    order = np.random.default_rng(0).permutation(len(frames))  # every frame by index, shuffled
    for i in order:
        img, (fn, ft) = s.get_image(None, frame_index=int(i))
        assert read_frame_number(img) == frames[i][2], f"frame index {i}"
        assert (fn, ft) == frames[i][:2]
    first = {}
    for i, (fn, _, k) in enumerate(frames):
        first.setdefault(fn, k)
    for fn, k in first.items():  # by number: the first frame written with it
        assert read_frame_number(s.get_image(fn)[0]) == k, f"frame number {fn}"
    if frames:
        got = [read_frame_number(s.get_image(None, frame_index=0)[0])]
        got += [read_frame_number(s.get_next_image()[0]) for _ in frames[1:]]
        assert got == [k for _, _, k in frames]
    df = s.get_extra_data()
    got_rows = [] if df is None else df.to_dict("records")
    assert len(got_rows) == len(rows), (got_rows, rows)
    for g, want in zip(sorted(got_rows, key=lambda r: r["row"]), rows):
        for key, v in want.items():
            assert same(float(g[key]) if isinstance(v, float) else g[key], v), (key, g, want)
        assert g["note"] == "r%d" % want["row"]
    s.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_any_recording_reads_back_as_written(fmt, tmp_path_factory):
    shapes = _shapes(fmt)
    video = "/" in fmt

    @settings(max_examples=20 if video else 15, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(rec=recordings(shapes))
    # the two bugs of issue #11, always tried: frames 0.3-0.7 ms apart (mjpeg/avi died in the muxer), and
    # a record after the last frame of a full chunk (video stores never returned it)
    @example(rec=dict(ops=["image"] * 3, chunksize=5, shape=shapes[0], numbers=[0, 5, 3],
                      times=[1.7e9, 1.7e9 + 3e-4, 1.7e9 + 1e-3]))
    @example(rec=dict(ops=["image", "extra", "image", "extra"], chunksize=2, shape=shapes[0], numbers=[4, 4],
                      times=[10, 11]))
    def run(rec):
        path = str(tmp_path_factory.mktemp("store") / "s")
        frames, rows = record(path, fmt, rec)
        check(path, frames, rows)

    run()
