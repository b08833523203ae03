"""imgstore.align.StoreAligner: frames of several stores matched by frame number."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import decode_frame, make_frame

from imgstore import new_for_filename, new_for_format
from imgstore.align import (MISSING_POLICY_BLACK, MISSING_POLICY_DROP, MISSING_POLICY_HOLD, StoreAligner,
                            align_frame_numbers)

SHAPE = (48, 64)
A_NUMBERS = [n for n in range(0, 10) if n not in (3, 4)]   # 0 1 2 5 6 7 8 9
B_NUMBERS = [n for n in range(2, 13) if n != 7]            # 2 3 4 5 6 8 9 10 11 12


def _time(store_n: int, fn: int) -> float:
    return 1000.0 + fn + store_n / 10.0


def _store(path, numbers, store_n, fmt="npy", chunksize=3):
    s = new_for_format(fmt, mode="w", basedir=str(path), imgshape=SHAPE, imgdtype=np.uint8, chunksize=chunksize)
    for fn in numbers:
        s.add_image(make_frame(fn, SHAPE), fn, _time(store_n, fn))
    s.close()
    return new_for_filename(str(path))


@pytest.fixture
def stores(tmp_path):
    return _store(tmp_path / "a", A_NUMBERS, 0), _store(tmp_path / "b", B_NUMBERS, 1)


def test_drop_yields_only_frames_every_store_has(stores):
    al = StoreAligner(*stores)
    fns = al.extract_common_frames(StoreAligner.MISSING_POLICY_DROP)
    common = sorted(set(A_NUMBERS) & set(B_NUMBERS))
    assert list(fns) == common
    got = list(al.iter_imgs(return_times=True))
    assert [fn for fn, _, _ in got] == common
    for fn, imgs, times in got:
        assert [decode_frame(i) for i in imgs] == [fn, fn]
        assert times == [_time(0, fn), _time(1, fn)]


@pytest.mark.parametrize("policy", [MISSING_POLICY_HOLD, MISSING_POLICY_BLACK])
def test_hold_and_black_yield_every_frame_number(stores, policy):
    al = StoreAligner(*stores)
    union = sorted(set(A_NUMBERS) | set(B_NUMBERS))
    assert list(al.extract_common_frames(policy)) == union
    last = [None, None]
    n = 0
    for fn, imgs, times in al.iter_imgs(return_times=True):
        n += 1
        for s, numbers in enumerate((A_NUMBERS, B_NUMBERS)):
            if fn in numbers:
                assert decode_frame(imgs[s]) == fn
                assert times[s] == _time(s, fn)
                last[s] = fn
            else:
                assert math.isnan(times[s])
                if policy == MISSING_POLICY_BLACK or last[s] is None:
                    assert imgs[s].shape == SHAPE and not imgs[s].any()
                else:  # held: the store's previous frame
                    assert decode_frame(imgs[s]) == last[s]
    assert n == len(union)


def test_iter_without_times_and_three_stores(tmp_path):
    c_numbers = [1, 2, 5, 6, 9, 20]
    stores = (_store(tmp_path / "a", A_NUMBERS, 0), _store(tmp_path / "b", B_NUMBERS, 1),
              _store(tmp_path / "c", c_numbers, 2, chunksize=100))
    al = StoreAligner(*stores)
    assert list(al.extract_common_frames("drop")) == [2, 5, 6, 9]
    for fn, imgs in al.iter_imgs():
        assert [decode_frame(i) for i in imgs] == [fn] * 3


def test_reads_each_store_sequentially(stores, monkeypatch):
    seeks = []
    for s, store in enumerate(stores):
        real = store.get_image

        def counting(*args, _real=real, _s=s, **kwargs):
            seeks.append(_s)
            return _real(*args, **kwargs)

        monkeypatch.setattr(store, "get_image", counting)
    al = StoreAligner(*stores)
    al.extract_common_frames(MISSING_POLICY_HOLD)
    assert len(list(al.iter_imgs())) == 13
    assert sorted(seeks) == [0, 1]  # every frame of each store is read, in order: one seek to the first
    seeks.clear()
    al.extract_common_frames(MISSING_POLICY_DROP)  # 2 5 6 8 9: frame indices a 2-4, 6-7; b 0, 3-6
    assert len(list(al.iter_imgs())) == 5
    assert sorted(seeks) == [0, 0, 1, 1]


def test_repeated_frame_numbers_use_the_first_written(tmp_path):
    a = _store(tmp_path / "a", [1, 2, 3], 0)
    b = _store(tmp_path / "b", [1, 2, 2, 3], 1)
    fns, idx = align_frame_numbers([a.frame_numbers, b.frame_numbers], MISSING_POLICY_DROP)
    assert fns.tolist() == [1, 2, 3]
    assert idx.tolist() == [[0, 1, 2], [0, 1, 3]]


def test_errors(tmp_path, stores):
    other = new_for_format("npy", mode="w", basedir=str(tmp_path / "c"), imgshape=(48, 80), imgdtype=np.uint8)
    other.add_image(np.zeros((48, 80), np.uint8), 0, 0.0)
    other.close()
    with pytest.raises(ValueError, match="image shape"):
        StoreAligner(stores[0], new_for_filename(str(tmp_path / "c")))
    al = StoreAligner(*stores)
    with pytest.raises(RuntimeError, match="extract_common_frames"):
        next(al.iter_imgs())
    with pytest.raises(ValueError, match="policy"):
        al.extract_common_frames("sometimes")


def test_no_common_frames_yields_nothing(tmp_path):
    al = StoreAligner(_store(tmp_path / "a", [1, 2], 0), _store(tmp_path / "b", [5, 6], 1))
    assert len(al.extract_common_frames(MISSING_POLICY_DROP)) == 0
    assert list(al.iter_imgs()) == []
