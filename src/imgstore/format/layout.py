"""Where things live inside a store folder: chunk names and the files of a chunk."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from ..constants import EXTRA_DATA_FILE_EXTENSIONS as _EXTRA_DATA_EXTENSIONS
from ..storage import FileInfo, Storage

_CHUNK_DIR_RE = re.compile(r"^[0-9]{6,10}$")
#: chunk numbers are int64 in the index; no real store comes near this
MAX_CHUNK_NUMBER = 2 ** 31 - 1


def parse_chunk_name(name: str) -> int | None:
    """The chunk number of a chunk folder / file stem such as ``000003``, else None.

    Only the names writers make count: ASCII digits, zero-padded to six
    (``3``, ``0000003``, ``٠٠٠٠٠٣`` or a 40-digit number are not chunks).
    """
    if not _CHUNK_DIR_RE.match(name):
        return None
    n = int(name)
    if n > MAX_CHUNK_NUMBER or chunk_name(n) != name:
        return None
    return n


def chunk_name(chunk_n: int) -> str:
    """Zero-padded chunk name, e.g. ``000003``."""
    return "%06d" % int(chunk_n)


@dataclass(frozen=True)
class Layout:
    """File naming of one store kind.

    ``kind`` is ``"directory"`` (one folder per chunk) or ``"video"`` (one
    video file per chunk in the store root, with extension ``extension``).
    """

    kind: str
    extension: str = ""  # video chunk extension, e.g. ".mp4"; frame file ext for directory stores
    frame_ext: str = ""  # directory stores: frame file extension without dot ("npy", "png", ...)

    # --- chunk discovery -------------------------------------------------
    def list_chunks(self, storage: Storage) -> list[int]:
        """Chunk numbers present in the store, sorted (found by listing, not counting)."""
        return self.chunks_in(storage.listdir(""))

    def chunks_in(self, listing: Iterable[FileInfo]) -> list[int]:
        """Chunk numbers named in *listing* (the entries of the store folder), sorted."""
        out = set()
        if self.kind == "directory":
            for info in listing:
                n = parse_chunk_name(info.name) if info.is_dir else None
                if n is not None:
                    out.add(n)
        else:
            ext = self.extension
            for info in listing:
                if info.is_dir or not info.name.endswith(ext):
                    continue
                stem = info.name[: -len(ext)] if ext else info.name
                n = parse_chunk_name(stem)
                if n is not None:
                    out.add(n)
        return sorted(out)

    def extra_data_chunks_in(self, listing: Iterable[FileInfo]) -> list[int]:
        """Chunk numbers with an extra-data file named in *listing* (the store folder's entries), sorted.

        Video stores only: a chunk that holds no frame has no video file, but may hold extra data
        (a store of no frames, records added before its first frame).
        """
        out = set()
        if self.kind == "video":
            for info in listing:
                stem, dot, ext = info.name.partition(".")
                n = parse_chunk_name(stem) if dot and not info.is_dir else None
                if n is not None and "." + ext in _EXTRA_DATA_EXTENSIONS:
                    out.add(n)
        return sorted(out)

    # --- files of one chunk --------------------------------------------
    def index_base(self, chunk_n: int) -> str:
        """Key of the chunk index without extension (``.npz`` or ``.yaml`` is appended)."""
        if self.kind == "directory":
            return f"{chunk_name(chunk_n)}/index"
        return chunk_name(chunk_n)

    def chunk_key(self, chunk_n: int) -> str:
        """The chunk's data: its folder (directory stores) or its video file."""
        if self.kind == "directory":
            return chunk_name(chunk_n)
        return chunk_name(chunk_n) + self.extension

    def frame_key(self, chunk_n: int, position: int) -> str:
        """Directory stores: the file holding frame *position* of chunk *chunk_n*."""
        return f"{chunk_name(chunk_n)}/{'%06d' % position}.{self.frame_ext}"

    def extra_data_key(self, chunk_n: int) -> str:
        """Where ``add_extra_data`` writes records for a chunk."""
        return self.index_base(chunk_n) + ".extra.json"

    def extra_data_candidates(self, chunk_n: int) -> list[tuple[bool, str]]:
        """``(is_motif, key)`` candidates in the order the original looks for them.

        Motif's out-of-process IO puts ``NNNNNN.extra_data.h5`` / ``.json`` in the
        root; if one exists the chunk's own files are not used.
        """
        root = [(True, chunk_name(chunk_n) + ".extra_data.h5"), (True, chunk_name(chunk_n) + ".extra_data.json")]
        own = [(False, self.index_base(chunk_n) + ".extra.json"),
               (False, self.index_base(chunk_n) + ".extra_data.json")]
        return root + own
