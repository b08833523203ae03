"""``VideoImgStore``: one video file per chunk, decoded and encoded with FFmpeg through PyAV."""

from __future__ import annotations

from ..errors import UnsupportedFormatError
from ..format.layout import Layout
from ..format.metadata import StoreMetadata
from .base import ImgStore


class VideoImgStore(ImgStore):
    """A store whose chunks are video files (``mjpeg/avi``, ``avc1/mp4``, ``h264/mkv``, ...)."""

    class_name = "VideoImgStore"
    _DEFAULT_CHUNKSIZE = 10000

    def _check_class(self, md: StoreMetadata) -> None:
        if not md.is_video:
            super()._check_class(md)

    def _make_layout(self, md: StoreMetadata) -> Layout:
        return Layout("video", extension=md.extension)

    def _read_imgshape(self, md: StoreMetadata):
        shape = list(md.imgshape)
        shape[0] &= -2
        shape[1] &= -2
        return tuple(shape)

    def _new_chunk_reader(self, chunk_n: int):
        raise UnsupportedFormatError("video stores are not supported yet")

    @classmethod
    def supported_formats(cls) -> list[str]:
        return []

    @property
    def lossless(self) -> bool:
        return False
