"""The compiled pixel loops (``imgstore._pixels``) give the bytes numpy gives, for every colour."""

from __future__ import annotations

import numpy as np
import pytest

import imgstore.color as color

ALL_BGR = None


def every_colour() -> np.ndarray:
    global ALL_BGR
    if ALL_BGR is None:
        v = np.arange(1 << 24, dtype=np.uint32)
        ALL_BGR = np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
    return ALL_BGR


@pytest.fixture
def numpy_only(monkeypatch):
    monkeypatch.setattr(color, "_pixels", None)


def test_the_extension_is_built():
    # the install compiles it (pyproject ext-modules, optional so that an install without a compiler
    # still works on numpy): here it must be there, or the speed of every gray read is lost silently
    from imgstore import _pixels  # noqa: F401


def test_gray_of_every_colour_is_the_same_compiled_and_in_numpy(monkeypatch):
    bgr = every_colour()
    compiled = color.bgr_to_gray(bgr), color.rgb_to_gray(bgr)
    monkeypatch.setattr(color, "_pixels", None)
    assert np.array_equal(compiled[0], color.bgr_to_gray(bgr))
    assert np.array_equal(compiled[1], color.rgb_to_gray(bgr))
    assert np.array_equal(compiled[1], color.bgr_to_gray(bgr[..., ::-1]))


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 5, 3), (48, 65, 3)])
def test_swap_and_replicate_match_numpy(shape, monkeypatch):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    strided = np.ascontiguousarray(np.tile(img, (1, 2, 1)))[:, ::2]  # not contiguous
    results = [(color.swap_rb(a), color.ensure_color(a[..., 1]), color.bgr_to_gray(a)) for a in (img, strided)]
    monkeypatch.setattr(color, "_pixels", None)
    for a, got in zip((img, strided), results):
        want = (color.swap_rb(a), color.ensure_color(a[..., 1]), color.bgr_to_gray(a))
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.flags.c_contiguous and np.array_equal(g, w)
    assert np.array_equal(results[0][0], img[..., ::-1])
    assert np.array_equal(results[0][1], np.repeat(img[..., 1:2], 3, axis=2))


def test_other_dtypes_take_the_numpy_path():
    img = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 1000
    assert color.swap_rb(img).dtype == np.uint16 and np.array_equal(color.swap_rb(img), img[..., ::-1])
    assert np.array_equal(color.ensure_color(img[..., 0]), np.repeat(img[..., :1], 3, axis=2))


def test_buffers_of_different_pixel_counts_are_refused():
    from imgstore import _pixels

    with pytest.raises(ValueError, match="same number of pixels"):
        _pixels.bgr_to_gray(np.zeros((4, 3), np.uint8), np.zeros(5, np.uint8))
