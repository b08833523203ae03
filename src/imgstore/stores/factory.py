"""Opening stores: ``new_for_filename``, ``new_for_format``, ``extract_only_frame``, ``get_supported_formats``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..constants import STORE_MD_FILENAME
from ..errors import StoreNotFoundError, UnsupportedFormatError
from ..format.metadata import DIRECTORY_CLASSES, VIDEO_CLASSES, read_metadata
from ..storage import open_storage
from ..storage.remote import is_url
from .base import ImgStore, set_frame_extractor
from .directory import DirectoryImgStore
from .video import VideoImgStore


def _is_md_file(p: str) -> bool:
    return p.replace("\\", "/").rstrip("/").split("/")[-1] == STORE_MD_FILENAME


def _dirname(p: str) -> str:
    if is_url(p):
        return p.rstrip("/").rsplit("/", 1)[0]
    return os.path.dirname(p)


def _join_md(p: str) -> str:
    if is_url(p):
        return p.rstrip("/") + "/" + STORE_MD_FILENAME
    return os.path.join(p, STORE_MD_FILENAME)


def _parse_basedir_fullpath(path, basedir, read: bool) -> tuple[str, str]:
    """``(store folder, metadata.yaml path)`` from the two spellings the original accepts."""
    path = os.fspath(path) if isinstance(path, os.PathLike) else path
    basedir = os.fspath(basedir) if isinstance(basedir, os.PathLike) else basedir
    if path and basedir:
        raise ValueError("path and basedir are mutually exclusive")
    if basedir:
        if _is_md_file(basedir):
            raise ValueError(f"basedir should be a directory (not a file ending with {STORE_MD_FILENAME})")
        return basedir, _join_md(basedir)
    if path and _is_md_file(path):
        return _dirname(path), path
    if path:
        if read and not is_url(path):
            if os.path.isdir(path) and os.path.exists(os.path.join(path, STORE_MD_FILENAME)):
                return path, os.path.join(path, STORE_MD_FILENAME)
            raise StoreNotFoundError(f"path '{path}' does not exist (or holds no {STORE_MD_FILENAME})")
        return path, _join_md(path)
    raise ValueError(f"should be a path to a store {STORE_MD_FILENAME} file or a directory containing one")


def _class_for(class_name: str, where: str) -> type[ImgStore]:
    if class_name in DIRECTORY_CLASSES:
        return DirectoryImgStore
    if class_name in VIDEO_CLASSES:
        return VideoImgStore
    raise UnsupportedFormatError(f"{where}: store class {class_name} not supported")


def new_for_filename(path=None, **kwargs: Any) -> ImgStore:
    """Open an existing store (a folder, its ``metadata.yaml``, or an fsspec URL of either) for reading.

    For URLs, ``storage_options={...}`` are passed to fsspec (e.g. ``endpoint_url`` for S3).
    """
    kwargs.setdefault("mode", "r")
    basedir, fullpath = _parse_basedir_fullpath(path, kwargs.pop("basedir", None), read=kwargs["mode"] == "r")
    md = read_metadata(open_storage(basedir, storage_options=kwargs.get("storage_options")))
    cls = _class_for(md.class_name, fullpath)
    kwargs["basedir"] = basedir
    kwargs["_read_metadata"] = md  # read once (one request for a remote store)
    return cls(**kwargs)


def new_for_format(fmt: str, path=None, **kwargs: Any) -> ImgStore:
    """Create a store for writing frames in format *fmt* (needs ``imgshape`` and ``imgdtype``)."""
    kwargs.setdefault("mode", "w")
    if kwargs["mode"] == "r":
        return new_for_filename(path, **kwargs)
    basedir, _ = _parse_basedir_fullpath(path, kwargs.pop("basedir", None), read=False)
    kwargs["basedir"] = basedir
    for cls in (DirectoryImgStore, VideoImgStore):
        if cls.supports_format(fmt):
            kwargs["format"] = fmt
            return cls(**kwargs)
    raise UnsupportedFormatError(f"store class not found which supports format '{fmt}'")


def extract_only_frame(path, frame_index: int) -> np.ndarray:
    """The frame at *frame_index* of the store at *path* (a quick way to get e.g. the first frame)."""
    with new_for_filename(path) as store:
        img, _ = store.get_image(None, frame_index=frame_index)
    return img


set_frame_extractor(extract_only_frame)  # ImgStore.extract_only_frame: base.py cannot import this module


def get_supported_formats() -> list[str]:
    """Formats this installation can write."""
    out: list[str] = []
    for cls in (DirectoryImgStore, VideoImgStore):
        out.extend(cls.supported_formats())
    return out
