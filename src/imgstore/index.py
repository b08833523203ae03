"""The frame index under its public name: :class:`~.frame_index.FrameIndex` (frame_number / frame_time /
frame_index <-> (chunk, position)), and the original's names of this module, ``ImgStoreIndex`` and
``FRAME_MD`` (:mod:`.legacy_index`, which builds on :mod:`.frame_index`)."""

from .constants import FRAME_MD
from .frame_index import COARSE_STEP, FrameIndex, FrameIndexBuilder, SortedColumn, as_float_scalar, as_int_scalar
from .legacy_index import ImgStoreIndex, _load_index

__all__ = ["FrameIndex", "FrameIndexBuilder", "SortedColumn", "as_int_scalar", "as_float_scalar", "COARSE_STEP",
           "ImgStoreIndex", "FRAME_MD", "_load_index"]
