"""Helpers the original exported from ``imgstore.util`` (kept importable for existing code)."""

from __future__ import annotations

import functools
import re
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from .color import _cv2, cv_conversion_codes, encoding_converter, ensure_color, ensure_grayscale  # noqa: F401
from .format.extradata import JsonCustomEncoder  # noqa: F401
from .format.metadata import local_timezone_name
from .storage import LocalStorage

#: OpenCV's ``COLOR_<X>2BGR[_<method>]`` constant names
_CV2_CODEC_RE = re.compile(r"^COLOR_(?P<codec>[A-Za-z0-9_]+)2BGR($|(?P<method>_[A-Za-z0-9]*))")


def FourCC(*chars: str) -> int:  # noqa: N802 - original name
    """OpenCV-style four character code as an int."""
    s = "".join(chars)
    if len(s) != 4:
        raise ValueError("FourCC needs 4 characters")
    return sum(ord(c) << (8 * i) for i, c in enumerate(s))


_CV_COLOR_GRAY2BGR = 8  # cv2.COLOR_GRAY2BGR
_CV_COLOR_BGR2GRAY = 6  # cv2.COLOR_BGR2GRAY


def _cvt_color(img: np.ndarray, code: int, ensure_copy: bool = True) -> np.ndarray:
    """*img* as BGR (``code`` cv2.COLOR_GRAY2BGR) or gray (cv2.COLOR_BGR2GRAY), converted only if needed."""
    if code == _CV_COLOR_GRAY2BGR:
        return ensure_color(img, ensure_copy=ensure_copy)
    if code == _CV_COLOR_BGR2GRAY:
        return ensure_grayscale(img, ensure_copy=ensure_copy)
    raise ValueError(f"cvtColor code not understood: {code}")


class ImageCodecProcessor:
    """Converts frames in a store ``encoding`` (e.g. ``cv_bayerbg``) to BGR (needs OpenCV).

    Encodings are OpenCV's ``COLOR_<X>2BGR[_<method>]`` conversions named ``cv_<x>[_<method>]``.
    """

    CV2_CODEC_RE = _CV2_CODEC_RE

    def __init__(self) -> None:
        self._default_code: str | None = None
        self.autoconvert = lambda x: x

    def __repr__(self) -> str:
        return f"<ImageCodecProcessor({self._default_code})>"

    @classmethod
    def from_pylon_format(cls, s: str | None) -> "ImageCodecProcessor":
        """For a Basler pylon pixel format (pylon names Bayer patterns with B and R swapped)."""
        mapping = {"BayerBG": "cv_bayerrg", "Bayer_BG": "cv_bayerrg", "BayerRG": "cv_bayerbg",
                   "Bayer_RG": "cv_bayerbg", "BayerGB": "cv_bayergr", "Bayer_GB": "cv_bayergr"}
        if s and s != "None" and s not in mapping:
            raise ValueError(f"unknown pylon format: {s!r}")
        obj = cls()
        obj.set_default_code(mapping.get(s) if s else None)
        return obj

    @classmethod
    def from_cv2_enum(cls, e: int) -> "ImageCodecProcessor":
        """For an OpenCV ``cv2.COLOR_<X>2BGR`` conversion constant."""
        obj = cls()
        obj.set_default_code(obj.cv2_enum_to_code(e))
        return obj

    @property
    def encoding(self) -> str:
        return self._default_code or ""

    def set_default_code(self, code: str | None) -> None:
        """Make *code* the encoding ``autoconvert`` and ``convert_to_bgr`` use (None: no conversion)."""
        self._default_code = code or None
        conv = encoding_converter(self._default_code)
        self.autoconvert = conv if conv is not None else (lambda x: x)

    def check_code(self, code: str) -> bool:
        """Whether *code* is an encoding this installation can convert."""
        try:
            encoding_converter(code)
            return True
        except Exception:
            return False

    def cv2_enum_to_code(self, enum: int) -> str:
        """The encoding name of an OpenCV ``COLOR_<X>2BGR`` constant (KeyError if it is not one)."""
        return _cv2_enum_to_code()[int(enum)]

    def convert_to_bgr(self, img: np.ndarray, code: str | None = None, method_enum: int | None = None) -> np.ndarray:
        """*img* converted to BGR from *code* (default: this processor's encoding), or with OpenCV's *method_enum*."""
        if method_enum is not None:
            return _cv2().cvtColor(img, int(method_enum))
        conv = encoding_converter(code or self._default_code)
        if conv is None:
            raise ValueError("encoding must be specified")
        return conv(img)


@functools.lru_cache(maxsize=None)
def _cv2_enum_to_code() -> dict[int, str]:
    """OpenCV conversion constant -> encoding name (for constants shared by several names, the last name's)."""
    return {enum: code for code, enum in cv_conversion_codes(_cv2(), _CV2_CODEC_RE)}


def _split(path: str) -> tuple[LocalStorage, str]:
    import os

    d, name = os.path.split(os.path.abspath(path))
    return LocalStorage(d), name


def motif_extra_data_json_to_df(store, path: str):
    """DataFrame of a Motif ``.extra_data.json`` file."""
    from .format.extradata import read_motif_json

    return read_motif_json(*_split(path))


def motif_extra_data_h5_to_df(store, path: str):
    """DataFrame of a Motif ``.extra_data.h5`` file."""
    from .format.extradata import read_motif_h5

    return read_motif_h5(*_split(path))


def motif_extra_data_h5_attrs(path: str) -> dict[str, Any]:
    """Dataset names and attributes of a Motif ``.extra_data.h5`` file."""
    from .format.extradata import motif_h5_attrs

    return motif_h5_attrs(*_split(path))


def motif_get_parse_true_fps(store, default: float | None = 25.0, hwardware_only: bool = False) -> float:
    """The camera's true frame rate from Motif metadata (or the median frame interval if default is None)."""
    md = store.user_metadata
    if "hwframerate" in md:
        return float(md["hwframerate"])
    if "motifptpframerate" in md:
        return float(md["motifptpframerate"])
    if (not hwardware_only) and md.get("acquisitionframerate") and md.get("acquisitionframerateenable") is True:
        return float(md["acquisitionframerate"])
    if default is None:
        return 1.0 / float(np.median(np.diff(store.frame_times)))
    return default


def motif_get_recording_timezone(store):
    """The recording's time zone: the user metadata's ``timezone`` if valid, else the store's."""
    _, tz = store.created
    name = (store.user_metadata or {}).get("timezone")
    if name:
        try:
            return ZoneInfo(name)
        except Exception:
            pass
    return tz


def get_local_timezone() -> str:
    return local_timezone_name()


def get_local_timezone_zoneinfo() -> ZoneInfo:
    return ZoneInfo(local_timezone_name())
