"""``DirectoryImgStore``: one folder per chunk, one image file per frame (or one raw file per chunk)."""

from __future__ import annotations

import numpy as np

from ..codecs.directory import DirectoryChunkReader, DirectoryChunkWriter
from ..codecs.images import COLOR_VARIANTS, IMAGE_FORMATS
from ..codecs.raw import RawChunkReader, RawChunkWriter
from ..color import encoding_converter, is_color
from ..constants import STORE_MD_FILENAME
from ..errors import OptionalDependencyError, UnsupportedFormatError
from ..format.layout import Layout
from ..format.metadata import StoreMetadata
from .base import ImgStore


def _check_encoding_name(encoding: str) -> None:
    try:
        encoding_converter(encoding)
    except OptionalDependencyError:
        pass  # raw frames can be written without OpenCV; reading them back needs it


class DirectoryImgStore(ImgStore):
    """A store whose chunks are folders of image files (``npy``, ``png``, ``jpg``, ``tif``, ...)."""

    class_name = "DirectoryImgStore"
    _DEFAULT_CHUNKSIZE = 200

    def __init__(self, **kwargs) -> None:
        for k in ("videosize", "seek", "gpu_id"):  # accepted for compatibility with video stores
            kwargs.pop(k, None)
        super().__init__(**kwargs)

    #: one memory-mappable file of frames per chunk (new here: the original cannot read it)
    RAW_FORMAT = "raw"

    def _make_layout(self, md: StoreMetadata) -> Layout:
        fmt = md.format
        if fmt == self.RAW_FORMAT:
            return Layout("directory", frame_ext="raw")
        if fmt not in IMAGE_FORMATS:
            where = self._storage.describe(STORE_MD_FILENAME)
            if fmt == "bpk":
                raise UnsupportedFormatError(f"{where}: format 'bpk' (bloscpack) is not supported by this imgstore")
            raise UnsupportedFormatError(f"{where}: unknown format {fmt!r}")
        return Layout("directory", frame_ext=IMAGE_FORMATS[fmt].extension)

    def _prepare_write(self, fmt, imgshape, imgdtype, encoding):
        if not isinstance(fmt, str):
            raise UnsupportedFormatError(f"unknown format {fmt!r}")
        if fmt == self.RAW_FORMAT:
            if np.dtype(imgdtype).hasobject:
                raise UnsupportedFormatError(f"format 'raw' cannot store {imgdtype} frames")
            if encoding:
                _check_encoding_name(encoding)
            return fmt, tuple(imgshape), encoding, None
        base = fmt[: -len("+color")] if fmt in COLOR_VARIANTS else fmt
        if base not in IMAGE_FORMATS:
            raise UnsupportedFormatError(f"unknown format {fmt!r} (supported: {', '.join(self.supported_formats())})")
        image_format = IMAGE_FORMATS[base]
        try:
            image_format.check(imgshape, imgdtype)
        except ValueError as e:
            raise UnsupportedFormatError(str(e)) from None
        if len(imgshape) not in (2, 3) or (len(imgshape) == 3 and imgshape[2] not in (1, 3)):
            raise UnsupportedFormatError(f"imgshape {imgshape} is not (h, w) or (h, w, 3)")
        encode = None
        write_shape = tuple(imgshape)
        if encoding:
            if fmt in COLOR_VARIANTS:
                encode = encoding_converter(encoding)  # converted to BGR at write time
                write_shape = (imgshape[0], imgshape[1], 3)
                encoding = None
            else:
                _check_encoding_name(encoding)
        return base, write_shape, encoding, encode

    def _frame_shape(self) -> tuple[int, ...]:
        shape = tuple(self._imgshape)
        return shape[:2] if len(shape) == 3 and shape[2] == 1 else shape

    def _new_chunk_writer(self, chunk_n: int):
        if self._format == self.RAW_FORMAT:
            return RawChunkWriter(self._storage, self._layout.chunk_key(chunk_n), self._frame_shape(),
                                  self._imgdtype)
        return DirectoryChunkWriter(self._storage, self._layout, chunk_n, IMAGE_FORMATS[self._format])

    def _new_chunk_reader(self, chunk_n: int):
        if self._format == self.RAW_FORMAT:
            return RawChunkReader(self._storage, self._layout.chunk_key(chunk_n), self._frame_shape(),
                                  self._imgdtype)
        start, stop = self._index.chunk_range(chunk_n)
        return DirectoryChunkReader(self._storage, self._layout, chunk_n, IMAGE_FORMATS[self._format],
                                    color=is_color(self._imgshape), n_frames=stop - start)

    def _frame_where(self, chunk_n: int, pos: int) -> str:
        if self._format == self.RAW_FORMAT:
            return super()._frame_where(chunk_n, pos)
        return self._storage.describe(self._layout.frame_key(chunk_n, pos))

    def _delete_chunk(self, chunk_n: int) -> None:
        super()._delete_chunk(chunk_n)
        folder = self._layout.chunk_key(chunk_n)
        for key in list(self._storage.walk_files(folder)):
            self._storage.remove(key)
        if self._storage.exists(folder):
            self._storage.remove(folder)

    @classmethod
    def supported_formats(cls) -> list[str]:
        return list(IMAGE_FORMATS) + list(COLOR_VARIANTS) + [cls.RAW_FORMAT]

    @property
    def lossless(self) -> bool:
        return self._format != "jpg"
