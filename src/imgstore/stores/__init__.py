"""Store classes and the functions that open them (importable as in the original ``imgstore.stores``)."""

from ..constants import (EXTRA_DATA_FILE_EXTENSIONS, FRAME_MD, STORE_INDEX_FILENAME, STORE_LOCK_FILENAME,
                         STORE_MD_FILENAME, STORE_MD_KEY)
from .base import ImgStore
from .directory import DirectoryImgStore
from .factory import extract_only_frame, get_supported_formats, new_for_filename, new_for_format
from .video import VideoImgStore

_ImgStore = ImgStore  # the original's name for the base class

__all__ = [
    "ImgStore", "DirectoryImgStore", "VideoImgStore", "new_for_filename", "new_for_format",
    "extract_only_frame", "get_supported_formats", "STORE_MD_FILENAME", "STORE_MD_KEY", "STORE_LOCK_FILENAME",
    "STORE_INDEX_FILENAME", "EXTRA_DATA_FILE_EXTENSIONS", "FRAME_MD",
]
# --- the original's other names in imgstore.stores (it imported them there; scripts import them from it)
import itertools as _itertools
import os as _os
from subprocess import DEVNULL  # noqa: F401
from zoneinfo import ZoneInfo  # noqa: F401

from ..constants import FRAME_MD as _FRAME_MD  # noqa: F401
from ..index import ImgStoreIndex  # noqa: F401
from ..util import (FourCC, ImageCodecProcessor, JsonCustomEncoder, ensure_color, ensure_grayscale,  # noqa: F401
                    get_local_timezone_zoneinfo, motif_extra_data_h5_attrs, motif_extra_data_h5_to_df,
                    motif_extra_data_json_to_df)
from .factory import _parse_basedir_fullpath  # noqa: F401

#: the original's optional bloscpack module: None, as there when it is not installed ('bpk' stores are not supported)
bloscpack = None
#: the original's debug switches (no effect here)
_VERBOSE_DEBUG_GETS = _VERBOSE_DEBUG_CHUNKS = _VERBOSE_VERY = False


def _extract_store_metadata(full_path: str) -> dict:
    """The ``__store`` section of the metadata.yaml at *full_path*."""
    from ..format.metadata import read_metadata
    from ..storage import open_storage

    return dict(read_metadata(open_storage(_os.path.dirname(_os.fspath(full_path)))).store)


def _extract_ranges(data) -> list[tuple[int, int]]:
    """Sorted integers as inclusive ``(first, last)`` runs: [2, 3, 4, 12, 20] -> [(2, 4), (12, 12), (20, 20)]."""
    runs = []
    for _, group in _itertools.groupby(enumerate(sorted(data)), lambda iv: iv[1] - iv[0]):
        values = [v for _, v in group]
        runs.append((values[0], values[-1]))
    return runs
