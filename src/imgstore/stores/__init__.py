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
