"""``imgstore.align_stores`` against a brute-force alignment, and its reads (each frame decoded once)."""

from __future__ import annotations

import contextlib
import math
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli_helpers import make_store
from conftest import decode_frame

import imgstore
from imgstore import align
from imgstore.align import default_time_tolerance


class FakeStore:
    """A store in memory: frame *i* is an image holding *i*; counts seeks (get_image) and reads."""

    def __init__(self, numbers, times, name="fake") -> None:
        self.frame_numbers = np.asarray(numbers, dtype=np.int64)
        self.frame_times = np.asarray(times, dtype=np.float64)
        self.image_shape, self.dtype, self.filename = (2, 2), np.dtype(np.int32), name
        self.frame_count = len(self.frame_numbers)
        self._next = 0
        self.seeks = self.reads = 0

    def _frame(self, i):
        if not 0 <= i < self.frame_count:
            raise EOFError
        self._next = i + 1
        self.reads += 1
        return np.full((2, 2), i, np.int32), (int(self.frame_numbers[i]), float(self.frame_times[i]))

    def get_next_image(self):
        return self._frame(self._next)

    def get_image(self, frame_number, exact_only=True, frame_index=None):
        self.seeks += 1
        return self._frame(frame_index)


def brute_force(stores, by, tolerance, missing):
    """(keys, rows of frame indices) the slow, obvious way."""
    if by == "frame_number":
        sets = [set(s.frame_numbers.tolist()) for s in stores]
        keys = sorted(set.intersection(*sets) if missing == "drop" else set.union(*sets))
        rows = [[s.frame_numbers.tolist().index(k) if k in sets[j] else -1 for j, s in enumerate(stores)]
                for k in keys]
        return keys, rows
    keys, rows = [], []
    for i0, key in enumerate(stores[0].frame_times.tolist()):
        row = [i0]
        for s in stores[1:]:
            tol = default_time_tolerance(s.frame_times) if tolerance is None else tolerance
            best = min(((abs(t - key), t, i) for i, t in enumerate(s.frame_times.tolist()) if math.isfinite(t)),
                       default=None)
            row.append(best[2] if best is not None and math.isfinite(key) and best[0] <= tol else -1)
        if missing != "drop" or min(row) >= 0:
            keys.append(key)
            rows.append(row)
    return keys, rows


numbers = st.lists(st.integers(0, 12), max_size=12)
quarter_times = st.lists(st.integers(0, 40).map(lambda v: 100 + v / 4), min_size=0, max_size=12)


@st.composite
def fake_stores(draw):
    stores = []
    for k in range(draw(st.integers(1, 3))):
        fns = draw(numbers)
        times = draw(st.lists(st.integers(0, 40).map(lambda v: 100 + v / 4), min_size=len(fns), max_size=len(fns)))
        if fns and draw(st.booleans()):
            times[draw(st.integers(0, len(fns) - 1))] = float("nan")
        stores.append(FakeStore(fns, times, name=f"cam{k}"))
    return stores


@settings(max_examples=150, deadline=None)
@given(fake_stores(), st.sampled_from(["frame_number", "frame_time"]), st.sampled_from(["drop", "hold", "black"]),
       st.sampled_from([None, 0.0, 0.3, 2.0]), st.booleans())
def test_matches_brute_force(stores, by, missing, tolerance, threads):
    if by == "frame_number":
        tolerance = None
    if by == "frame_time" and not stores[0].frame_count:
        return
    with read_ahead(threads):
        check_against_brute_force(stores, by, missing, tolerance)


@contextlib.contextmanager
def read_ahead(on: bool):
    """Iterate with a reading thread per store (as for big frames) or on the caller's thread."""
    old = align.READ_AHEAD_MIN_BYTES
    align.READ_AHEAD_MIN_BYTES = 0 if on else 1 << 62
    try:
        yield
    finally:
        align.READ_AHEAD_MIN_BYTES = old


def check_against_brute_force(stores, by, missing, tolerance):
    al = imgstore.align_stores(stores, by=by, tolerance=tolerance, missing=missing)
    keys, rows = brute_force(stores, by, tolerance, missing)
    table = al.table
    assert list(table.columns) == [s.filename for s in stores]
    np.testing.assert_array_equal(table.index.to_numpy(dtype=float), np.asarray(keys, dtype=float))
    assert table.to_numpy().tolist() == rows
    held = [None] * len(stores)
    got = list(al)
    assert len(got) == len(rows) == len(al)
    for (key, imgs, metas), row, want_key in zip(got, rows, keys):
        assert key == want_key or (math.isnan(key) and math.isnan(want_key))
        for s, (i, img, (fn, t)) in enumerate(zip(row, imgs, metas)):
            if i >= 0:
                held[s] = i
            shown = i if i >= 0 else (held[s] if missing == "hold" else None)
            if shown is None:
                assert fn is None and math.isnan(t) and not img.any()
            else:
                assert img[0, 0] == shown and fn == stores[s].frame_numbers[shown]
    for k in {0, len(al) // 2, len(al) - 1} if len(al) else ():  # random access gives the same rows
        _, imgs, metas = al[k]
        assert [int(i[0, 0]) for i in imgs] == [int(i[0, 0]) for i in got[k][1]]
        assert [m[0] for m in metas] == [m[0] for m in got[k][2]]


@pytest.mark.parametrize("threads", [False, True])
def test_reads_each_store_in_order_decoding_each_frame_once(threads):
    a = FakeStore(range(0, 300), np.arange(300) / 30.0)
    b = FakeStore(range(0, 300, 3), np.arange(100) / 10.0 + 0.004)  # a third of the rate
    al = imgstore.align_stores([a, b], by="frame_time", missing="black")  # a's last: 63 ms from b's last
    with read_ahead(threads):
        rows = list(al)
    assert len(rows) == 300 and (a.seeks, a.reads) == (1, 300)
    assert (b.seeks, b.reads) == (1, 100)  # each of b's frames read once, repeated for three rows
    assert [m[1][0] for m in (r[2] for r in rows)][:7] == [0, 0, 3, 3, 3, 6, 6]
    assert imgstore.align_stores([a, b], by="frame_number").table.shape == (100, 2)


def test_read_errors_and_early_stops_with_threads():
    class Broken(FakeStore):
        def get_next_image(self):
            if self._next == 5:
                raise OSError("cam2/000000.mkv: damaged")
            return super().get_next_image()

    a, b = FakeStore(range(20), np.arange(20.0)), Broken(range(20), np.arange(20.0))
    with read_ahead(True):
        with pytest.raises(OSError, match="damaged"):
            list(imgstore.align_stores([a, b]))
        before = threading.active_count()
        for k, (key, imgs, metas) in enumerate(imgstore.align_stores([a, FakeStore(range(20), np.arange(20.0))])):
            if k == 3:
                break
        assert threading.active_count() <= before  # the reading threads ended with the loop


def test_errors():
    a = FakeStore([1], [0.0])
    with pytest.raises(ValueError, match="policy"):
        imgstore.align_stores([a], missing="sometimes")
    with pytest.raises(ValueError, match="frame_time"):
        imgstore.align_stores([a], by="frame_number", tolerance=1)
    with pytest.raises(ValueError, match="align by"):
        imgstore.align_stores([a], by="frame_index")
    with pytest.raises(IndexError):
        imgstore.align_stores([a])[1]


def test_real_video_stores_by_barcode(tmp_path):
    a = make_store(tmp_path / "cam1", n=90, fmt="h264/mkv", chunksize=40, numbers=range(90), extra_every=0)
    b = make_store(tmp_path / "cam2", n=45, fmt="h264/mkv", chunksize=40, numbers=range(0, 90, 2), fps=15.0,
                   t0=1.7e9 + 0.01, extra_every=0)
    al = imgstore.align_stores([a, b], by="frame_time", missing="hold")
    assert list(al.table.columns) == ["cam1", "cam2"]
    for key, (img_a, img_b), ((fa, ta), (fb, tb)) in al:
        assert decode_frame(img_a) == fa and decode_frame(img_b) == fb
        assert abs(tb - ta) <= 1 / 30 + 1e-9 and key == ta
    by_number = imgstore.align_stores([a, b])
    assert by_number.table.index.tolist() == list(range(0, 90, 2))
    key, imgs, metas = by_number[10]
    assert key == 20 and [decode_frame(i) for i in imgs] == [20, 20] and [m[0] for m in metas] == [20, 20]
