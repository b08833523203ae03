"""Building the frame index of a store, and its cache file.

Opening a store must not read every chunk index each time (a week at 30 fps
is 1,800 chunk files and 1.8e7 frames). The index is saved to
``.imgstore-frameindex`` beside the chunks (a file the original ignores) and
memory-mapped on the next open. The cache records the size and mtime of every
chunk index it was built from; at open those are compared with a fresh listing,
and only chunks that changed are read again.

File layout: ``MAGIC``, a little-endian uint64 header length, a JSON header
(format version, per-chunk validation entries, array descriptors, CRC32 of the
array data), then the arrays, each aligned to a 4 KiB page.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import posixpath
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .constants import FRAME_INDEX_CACHE_FILENAME, STORE_MD_FILENAME
from .errors import CorruptChunkError, RemoteStorageError
from .format.chunkindex import INDEX_EXTENSIONS, parse_chunk_index
from .format.layout import Layout
from .frame_index import FrameIndex
from .storage import FileInfo, LocalStorage, Storage

log = logging.getLogger("imgstore.index")

MAGIC = b"IMGSTORE-FRAMEINDEX\n"
CACHE_VERSION = 1
_ALIGN = 4096  # page-aligned arrays: a coarse-guided lookup reads one page


@dataclass(frozen=True)
class ChunkEntry:
    """What the cache knows about one chunk's index file."""

    chunk: int
    key: str | None  # None: no index file
    size: int
    mtime_ns: int

    def as_list(self) -> list:
        return [self.chunk, self.key, self.size, self.mtime_ns]


# --- listing -----------------------------------------------------------------
def scan_chunks(storage: Storage, layout: Layout, listing: list[FileInfo] | None = None) -> list[ChunkEntry]:
    """Every chunk of the store with the identity (size, mtime) of its index file.

    Found in *listing* (the entries of the store folder; listed here if not given).
    """
    if listing is None:
        listing = storage.listdir("")
    out = []
    if layout.kind == "video":
        files = {i.name for i in listing if not i.is_dir}
        for c in layout.chunks_in(listing):
            base = layout.index_base(c)
            key = next((base + e for e in INDEX_EXTENSIONS if base + e in files), None)
            out.append(_entry(storage, c, key))
    else:
        for c in layout.chunks_in(listing):
            base = layout.index_base(c)
            entry = None
            for ext in INDEX_EXTENSIONS:
                try:
                    st = storage.stat(base + ext)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                except OSError as e:  # e.g. a symlink loop: the chunk is read (and reported corrupt) later
                    log.warning("cannot stat %s: %s", storage.describe(base + ext), e)
                    entry = ChunkEntry(c, base + ext, -1, -1)
                    break
                entry = ChunkEntry(c, base + ext, st.size, st.mtime_ns)
                break
            out.append(entry or ChunkEntry(c, None, 0, 0))
    return out


def is_listing(storage: Storage, listing: list[FileInfo]) -> bool:
    """Whether *listing* really lists the store folder.

    A server without directory listings (a static web server, a CDN) answers
    404 or a page without links; the folder holds ``metadata.yaml``, so a
    listing that lacks it is none.
    """
    return storage.local_path("") is not None or any(i.name == STORE_MD_FILENAME for i in listing)


#: chunk index files requested at once when chunks are found without a listing
PROBE_BATCH = 8
_PROBED_EXTENSIONS = (".npz", ".yaml")  # a frame log (.frames) is not looked for


def _is_index(key: str, data: bytes | None) -> bool:
    """False for a missing file, and for a page some servers send with status 200 for any path."""
    if not data:
        return False
    return data.startswith(b"PK") if key.endswith(".npz") else not data.lstrip().startswith(b"<")


def probe_chunks(storage: Storage, layout: Layout, start: int = 0, ext: str | None = None,
                 ) -> tuple[list[ChunkEntry], dict[str, bytes]]:
    """Chunks ``start, start+1, ...`` up to the first one without an index file, found by reading
    their index files (for a store folder that cannot be listed).

    *ext* is the index extension (``.npz`` or ``.yaml``); if None it is the one
    chunk *start* has. Returns the entries (the size is that of the bytes read,
    the mtime unknown: 0) and the bytes of each index file read, by key.
    """
    entries: list[ChunkEntry] = []
    fetched: dict[str, bytes] = {}

    def take(n: int, key: str, data: bytes | None) -> bool:
        if not _is_index(key, data):
            return False
        entries.append(ChunkEntry(n, key, len(data), 0))
        fetched[key] = data
        return True

    if ext is None:  # chunk *start* tells which extension the store's indexes have
        for ext in _PROBED_EXTENSIONS:
            key = layout.index_base(start) + ext
            if take(start, key, storage.read_many([key])[0]):
                break
        else:
            return entries, fetched
        start += 1
    while True:
        chunks = range(start, start + PROBE_BATCH)
        keys = [layout.index_base(n) + ext for n in chunks]
        for n, key, data in zip(chunks, keys, storage.read_many(keys)):
            if not take(n, key, data):
                return entries, fetched
        start += PROBE_BATCH


def _entry(storage: Storage, chunk: int, key: str | None) -> ChunkEntry:
    if key is None:
        return ChunkEntry(chunk, None, 0, 0)
    try:
        st = storage.stat(key)
    except FileNotFoundError:
        return ChunkEntry(chunk, None, 0, 0)
    except OSError:
        return ChunkEntry(chunk, key, -1, -1)
    return ChunkEntry(chunk, key, st.size, st.mtime_ns)


# --- cache file encoding -------------------------------------------------------
def encode_cache(entries: list[ChunkEntry], index: FrameIndex) -> list:
    """The cache file as a list of buffers to write one after the other (no full-size copy is made)."""
    arrays = {k: np.ascontiguousarray(v) for k, v in index.arrays().items()}
    descs = []
    parts: list = []
    offset = 0
    crc = 0
    for name, arr in arrays.items():
        pad = (offset + _ALIGN - 1) // _ALIGN * _ALIGN - offset
        if pad:
            parts.append(bytes(pad))
            crc = zlib.crc32(parts[-1], crc)
            offset += pad
        descs.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape), "offset": offset})
        view = memoryview(arr).cast("B") if arr.nbytes else b""
        parts.append(view)
        crc = zlib.crc32(view, crc)
        offset += arr.nbytes
    header = {
        "version": CACHE_VERSION,
        "entries": [e.as_list() for e in entries],
        "arrays": descs,
        "data_bytes": offset,
        "crc32": crc,
    }
    hdr = json.dumps(header).encode("utf-8")
    start = len(MAGIC) + 8 + len(hdr)
    data_start = (start + _ALIGN - 1) // _ALIGN * _ALIGN
    return [MAGIC + struct.pack("<Q", len(hdr)) + hdr + bytes(data_start - start)] + parts


def _crc_of_file(path: str, start: int) -> int:
    """CRC32 of a file from *start* on, read in large blocks (far faster than through a fresh mmap)."""
    crc = 0
    buf = bytearray(1 << 22)
    mv = memoryview(buf)
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = start
        while True:
            n = os.preadv(fd, [buf], pos)
            if not n:
                return crc
            crc = zlib.crc32(mv[:n], crc)
            pos += n
    finally:
        os.close(fd)


def decode_cache(buf, path: str | None = None) -> tuple[list[ChunkEntry], FrameIndex]:
    """Parse a cache file held in *buf* (bytes or an mmap of *path*); arrays are views into it.

    The array data is checked against the CRC32 in the header, so a damaged
    cache is rebuilt rather than trusted.
    """
    if bytes(buf[: len(MAGIC)]) != MAGIC:
        raise ValueError("not a frame index cache")
    (n,) = struct.unpack("<Q", bytes(buf[len(MAGIC): len(MAGIC) + 8]))
    start = len(MAGIC) + 8
    header = json.loads(bytes(buf[start: start + n]).decode("utf-8"))
    if header.get("version") != CACHE_VERSION:
        raise ValueError("cache version mismatch")
    data_start = (start + n + _ALIGN - 1) // _ALIGN * _ALIGN
    if len(buf) != data_start + int(header["data_bytes"]):
        raise ValueError("cache truncated")
    crc = _crc_of_file(path, data_start) if path is not None else zlib.crc32(buf[data_start:])
    if crc != header["crc32"]:
        raise ValueError("cache checksum mismatch")
    arrays: dict[str, np.ndarray] = {}
    for d in header["arrays"]:
        dt = np.dtype(d["dtype"])
        count = int(np.prod(d["shape"])) if d["shape"] else 1
        off = data_start + int(d["offset"])
        if off + count * dt.itemsize > len(buf):
            raise ValueError("cache truncated")
        arrays[d["name"]] = np.frombuffer(buf, dtype=dt, count=count, offset=off).reshape(d["shape"])
    entries = [ChunkEntry(int(c), k, int(s), int(m)) for c, k, s, m in header["entries"]]
    idx = FrameIndex.from_arrays(arrays)
    n_frames = len(idx.frame_number)
    if len(idx.frame_time) != n_frames or int(idx.chunk_starts[-1]) != n_frames:
        raise ValueError("inconsistent cache")
    return entries, idx


# --- where the cache lives ----------------------------------------------------------
def _user_cache_storage(storage: Storage) -> tuple[Storage, str] | None:
    base = os.environ.get("IMGSTORE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "imgstore")
    try:
        os.makedirs(base, exist_ok=True)
    except OSError:
        return None
    loc = storage.local_path("") or storage.location
    name = "frameindex-" + hashlib.sha1(os.path.abspath(loc).encode() if storage.local_path("")
                                         else loc.encode()).hexdigest()[:20]
    return LocalStorage(base), name


def _read_cache(storage: Storage, key: str):
    """``(buffer, local path or None)`` of a cache file, or None."""
    path = storage.local_path(key)
    if path is not None:
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size == 0:
                    return None
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                if hasattr(mm, "madvise") and hasattr(mmap, "MADV_RANDOM"):
                    mm.madvise(mmap.MADV_RANDOM)  # lookups touch a few pages: no read-ahead
        except (FileNotFoundError, ValueError, OSError):
            return None
        return mm, path
    try:
        return storage.read_bytes(key), None
    except (FileNotFoundError, OSError):
        return None


def _cache_locations(storage: Storage) -> list[tuple[Storage, str]]:
    locs = [(storage, FRAME_INDEX_CACHE_FILENAME)]
    user = _user_cache_storage(storage)
    if user is not None:
        locs.append(user)
    return locs


def _load_cache_file(st: Storage, key: str) -> tuple[list[ChunkEntry], FrameIndex] | None:
    got = _read_cache(st, key)
    if got is None:
        return None
    try:
        return decode_cache(*got)
    except Exception as e:  # a damaged cache is only a slower open
        log.info("ignoring unusable frame index cache %s: %s", st.describe(key), e)
    return None


def load_cached(storage: Storage) -> tuple[list[ChunkEntry], FrameIndex] | None:
    """The frame index cache beside the store, else the one in the user's cache folder, or None."""
    for st, key in _cache_locations(storage):
        got = _load_cache_file(st, key)
        if got is not None:
            return got
    return None


def _load_user_cache(storage: Storage) -> tuple[list[ChunkEntry], FrameIndex] | None:
    user = _user_cache_storage(storage)
    return _load_cache_file(*user) if user is not None else None


def save_cache(storage: Storage, entries: list[ChunkEntry], index: FrameIndex) -> bool:
    parts = encode_cache(entries, index)
    for st, key in _cache_locations(storage):
        if not st.writable:
            continue
        try:
            st.write_parts(key, parts)
            return True
        except OSError as e:
            log.debug("could not write frame index cache %s: %s", st.describe(key), e)
    return False


# --- the whole procedure ------------------------------------------------------------
_Cached = tuple[list[ChunkEntry], FrameIndex]


def _find_chunks(storage: Storage, layout: Layout, use_cache: bool, previous: _Cached | None,
                 ) -> tuple[list[ChunkEntry], _Cached | None, dict[str, bytes]]:
    """``(entries, an earlier index to reuse or None, index files already read)``."""
    listing = storage.listdir("")
    if is_listing(storage, listing):
        cached = previous if previous is not None else (load_cached(storage) if use_cache else None)
        return scan_chunks(storage, layout, listing), cached, {}
    if previous is None and use_cache:
        served = _load_cache_file(storage, FRAME_INDEX_CACHE_FILENAME)
        if served is not None:  # the server's own cache file: trusted, there is no listing to check it against
            return served[0], served, {}
    cached = previous if previous is not None else (_load_user_cache(storage) if use_cache else None)
    entries, fetched = _find_unlisted(storage, layout, cached)
    return entries, cached, fetched


def _find_unlisted(storage: Storage, layout: Layout, cached: _Cached | None,
                   ) -> tuple[list[ChunkEntry], dict[str, bytes]]:
    """Chunks of a store folder that cannot be listed: those of *cached* before its last chunk with
    an index, then the ones probed from that chunk on."""
    known = [e for e in cached[0] if e.key is not None] if cached is not None else []
    if known:
        last = known[-1]
        ext = posixpath.splitext(last.key)[1]
        found, fetched = probe_chunks(storage, layout, last.chunk, ext if ext in _PROBED_EXTENSIONS else None)
        entries = [e for e in cached[0] if e.chunk < last.chunk] + found
    else:
        entries, fetched = probe_chunks(storage, layout)
    if not entries:
        raise RemoteStorageError(
            f"{storage.describe()}: no chunks found: the server lists no folders, and it serves neither "
            f"{FRAME_INDEX_CACHE_FILENAME} nor a first chunk index {layout.index_base(0)}.npz (or .yaml)")
    return entries, fetched


@dataclass
class IndexReport:
    """How the index was obtained, and which chunks could not be used."""

    from_cache: bool = False
    chunks_read: int = 0
    missing_index: tuple[int, ...] = ()
    corrupt_index: tuple[tuple[int, str], ...] = ()


def build_index(storage: Storage, layout: Layout, *, use_cache: bool = True,
                write_cache: bool = True, min_frames_to_cache: int = 10000,
                previous: _Cached | None = None,
                frames_per_chunk: int = 0,
                ) -> tuple[FrameIndex, list[ChunkEntry], IndexReport]:
    """The store's frame index, from the cache (or *previous*) where it is still valid.

    Returns ``(index, entries, report)``; ``entries`` lists every chunk found,
    including empty ones and ones without an index.
    """
    entries, cached, fetched = _find_chunks(storage, layout, use_cache, previous)
    report = IndexReport()
    old: dict[int, tuple[ChunkEntry, np.ndarray, np.ndarray]] = {}
    if cached is not None:
        c_entries, c_idx = cached
        if c_entries == entries:
            report.from_cache = True
            report.missing_index = tuple(e.chunk for e in entries if e.key is None)
            return c_idx, entries, report
        for e in c_entries:
            if e.key is not None:
                start, stop = c_idx.chunk_range(e.chunk)
                old[e.chunk] = (e, c_idx.frame_number[start:stop], c_idx.frame_time[start:stop])

    builder = FrameIndex.builder(frames_per_chunk * len(entries))
    missing, corrupt = [], []
    for e in entries:
        if e.key is None:
            log.warning("chunk %d of %s has no index: skipped", e.chunk, storage.location)
            missing.append(e.chunk)
            continue
        prev = old.get(e.chunk)
        if prev is not None and prev[0] == e:
            builder.add(e.chunk, prev[1], prev[2])
            continue
        try:
            data = fetched[e.key] if e.key in fetched else storage.read_bytes(e.key)
            fn, ft = parse_chunk_index(data, e.key, storage.describe(e.key))
        except (CorruptChunkError, OSError) as err:
            log.warning("chunk %d skipped: %s", e.chunk, err)
            corrupt.append((e.chunk, str(err)))
            continue
        report.chunks_read += 1
        builder.add(e.chunk, fn, ft)

    index = builder.build()
    report.missing_index = tuple(missing)
    report.corrupt_index = tuple(corrupt)
    if write_cache and index.frame_count >= min_frames_to_cache:
        save_cache(storage, entries, index)
    return index, entries, report
