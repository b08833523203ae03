"""imgstore: houses long scientific video recordings and their metadata.

Drop-in compatible with loopbio's imgstore (same API, same on-disk format),
with video through FFmpeg (PyAV) instead of OpenCV.
"""

from ._version import __version__

try:  # FFmpeg's libraries load here, as the original loads OpenCV's on import (docs/design/video-reading.md)
    import av as _av  # noqa: F401
except ImportError:  # pragma: no cover - stores of image files are read without it
    pass
from .errors import (CorruptChunkError, EndOfStoreError, FrameNotFoundError, ImgStoreError, StoreFormatError,
                     StoreLockedError, StoreNotFoundError, UnsupportedFormatError)
from .stores import (DirectoryImgStore, ImgStore, VideoImgStore, extract_only_frame, get_supported_formats,
                     new_for_filename, new_for_format)
from .color import ensure_color, ensure_grayscale
from .stores.rawvideo import RawVideoFile, open_raw_video
from .videofile import VideoFile, open_video
from .align import AlignedStores, align_stores
from .conversion import convert
from .selection import Selection
from .integrations.dask import to_dask_array as _to_dask_array
from .stores.array_view import set_dask_bridge as _set_dask_bridge

# the composition root wires the layers together: store.to_dask() builds its array with the dask
# integration, which sits above imgstore.stores (docs/ARCHITECTURE.md, "Wiring")
_set_dask_bridge(_to_dask_array)


def test():
    """Run the installation self-test (same as the ``imgstore-test`` command)."""
    from .apps.selftest import run_selftest

    return run_selftest()


def main_test(argv=None) -> None:
    """The original's name for the ``imgstore-test`` command; exits with its status (*argv*: its options)."""
    from .apps.cli import main_test as _main_test

    _main_test([] if argv is None else argv)


__all__ = [
    "new_for_filename", "new_for_format", "extract_only_frame", "get_supported_formats", "ImgStore",
    "DirectoryImgStore", "VideoImgStore", "ensure_color", "ensure_grayscale", "ImgStoreError",
    "StoreNotFoundError", "StoreFormatError", "UnsupportedFormatError", "FrameNotFoundError", "EndOfStoreError",
    "CorruptChunkError", "StoreLockedError", "open_raw_video", "RawVideoFile", "open_video", "VideoFile", "__version__",
    "convert", "align_stores", "AlignedStores", "Selection",
]
