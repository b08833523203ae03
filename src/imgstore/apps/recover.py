"""``imgstore-recover PATH``: turn the store of a writer that died back into a normal store.

Readers already cope with such a store (they index a chunk without ``.npz``
by its frame log, cap it at the frames its data holds, salvage an
unterminated extra-data array and ignore a stale lock); this command makes
it a store in the original's layout again, readable by every imgstore
version, the original (OpenCV) one included:

* each chunk that has only a frame log (``NNNNNN.frames``,
  ``NNNNNN/index.frames``) gets its ``.npz``, holding the logged frames that
  are present in the chunk's data *and decode* (every one of them is
  decoded to check, unless ``--no-verify``), and the log is removed; a log
  left beside a complete ``.npz`` (the writer died between the two) is removed;
* the video file of such a chunk is remuxed (no re-encoding) into a complete
  file: a fragmented MP4 becomes a plain MP4, an MKV gets its Cues, an AVI
  its idx1 -- without them OpenCV's seeks in the original return wrong
  frames or none; packets cut short by the crash, or beyond the indexed
  frames, are dropped. A crashed video chunk without any indexed frame is
  removed; a video store left without any chunk gets an empty chunk 0 where
  the format allows one that opens (the original opens chunk 0 of every
  store; an MKV without frames does not open at all);
* a complete chunk whose MP4 is still fragmented is remuxed too;
* a raw chunk's header gets its real frame count, and a torn last frame is cut off;
* unterminated extra-data JSON arrays are terminated (a torn last record is dropped);
* video packet indexes (``.pktidx.npz``) that are stale or missing are rebuilt;
* temporary files of interrupted atomic writes (``.tmp-*``) are removed;
* a stale ``.lock`` (its process is gone, or an empty one: see
  :mod:`imgstore.format.lock`) is removed.

It refuses to touch a store whose writer is alive. Running it again does
nothing. ``--dry-run`` prints what it would do. Exit status: 0 done (or
nothing to do), 1 error, 2 refused (live writer).
"""

from __future__ import annotations

import argparse
import logging
import os
import posixpath
import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..color import is_color
from ..constants import STORE_LOCK_FILENAME
from ..errors import CorruptChunkError, ImgStoreError
from ..format import extradata as _xd
from ..format.chunkindex import FRAME_LOG_EXT, find_chunk_index, parse_chunk_index, write_chunk_index
from ..format.layout import Layout
from ..format.lock import read_lock
from ..format.metadata import StoreMetadata, read_metadata
from ..storage import LocalStorage
from ..storage.remote import is_url

log = logging.getLogger("imgstore.recover")

TMP_PREFIX = ".tmp-"


class WriterAlive(ImgStoreError):
    """The store's lock is held by a process that is still running."""


@dataclass
class Recovery:
    """What :func:`recover_store` did (or, with ``dry_run``, would do)."""

    path: str
    dry_run: bool = False
    actions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def do(self, what: str) -> bool:
        """Record an action; True if it should really be done."""
        self.actions.append(what)
        return not self.dry_run


# ------------------------------------------------------------------ store description
@dataclass
class _Store:
    storage: LocalStorage
    md: StoreMetadata
    layout: Layout
    imgshape: tuple[int, ...]
    dtype: np.dtype

    @property
    def is_video(self) -> bool:
        return self.layout.kind == "video"


def _describe(path: str) -> _Store:
    storage = LocalStorage(path)
    md = read_metadata(storage)
    shape = tuple(int(x) for x in md.imgshape)
    if md.is_video:
        from ..codecs.video import resolve_video_format

        layout = Layout("video", extension=md.extension)
        try:
            even = resolve_video_format(md.format, md.extension).even_dims
        except ImgStoreError:
            even = True
        if even:
            shape = (shape[0] & -2, shape[1] & -2) + shape[2:]
    elif md.format == "raw":
        layout = Layout("directory", frame_ext="raw")
    else:
        from ..codecs.images import IMAGE_FORMATS

        if md.format not in IMAGE_FORMATS:
            raise ImgStoreError(f"{path}: store format {md.format!r} is not supported here")
        layout = Layout("directory", frame_ext=IMAGE_FORMATS[md.format].extension)
    return _Store(storage, md, layout, shape, np.dtype(md.imgdtype))


# ------------------------------------------------------------------ chunk data
def _frames_that_decode(st: _Store, chunk_n: int, wanted: int) -> tuple[int, str]:
    """How many of the chunk's first *wanted* frames are present and decode, and why not more."""
    if wanted <= 0:
        return 0, ""
    color = is_color(st.imgshape)
    try:
        if st.is_video:
            from ..codecs.video import VideoChunkReader

            reader = VideoChunkReader(st.storage, st.layout.chunk_key(chunk_n), color=color, imgshape=st.imgshape,
                                      dtype=st.dtype, cache_frames=0, write_index=False)
        elif st.md.format == "raw":
            from ..codecs.raw import RawChunkReader

            shape = st.imgshape[:2] if len(st.imgshape) == 3 and st.imgshape[2] == 1 else st.imgshape
            reader = RawChunkReader(st.storage, st.layout.chunk_key(chunk_n), shape, st.dtype)
        else:
            from ..codecs.directory import DirectoryChunkReader
            from ..codecs.images import IMAGE_FORMATS

            reader = DirectoryChunkReader(st.storage, st.layout, chunk_n, IMAGE_FORMATS[st.md.format], color=color,
                                          n_frames=wanted, readahead=0)
    except (CorruptChunkError, OSError) as e:
        return 0, str(e)
    try:
        n = wanted
        try:
            n = min(n, len(reader))
        except TypeError:
            pass
        want_shape = tuple(st.imgshape)
        for p in range(n):
            try:
                img = reader.read(p)
            except (CorruptChunkError, OSError, IndexError, ValueError) as e:
                return p, str(e)
            if img.shape[:2] != want_shape[:2]:
                return p, f"frame {p} has shape {img.shape}, store says {want_shape}"
        return n, "" if n == wanted else f"the chunk's data holds {n} frames"
    finally:
        reader.close()


def _is_video_chunk_unopenable(st: _Store, key: str) -> bool:
    from ..codecs.video_index import open_container

    try:
        c, f = open_container(st.storage, key)
    except (CorruptChunkError, OSError):
        return True
    c.close()
    if f is not None:
        f.close()
    return False


def _fix_raw_chunk(st: _Store, chunk_n: int, n: int, rec: Recovery) -> None:
    from ..codecs.raw import FRAMES_FILENAME, HEADER_SIZE, encode_header

    key = f"{st.layout.chunk_key(chunk_n)}/{FRAMES_FILENAME}"
    path = st.storage.local_path(key)
    if not os.path.exists(path):
        return
    shape = st.imgshape[:2] if len(st.imgshape) == 3 and st.imgshape[2] == 1 else st.imgshape
    frame_bytes = int(np.prod(shape)) * st.dtype.itemsize
    header = encode_header(n, shape, st.dtype)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        old = f.read(HEADER_SIZE)
    want = HEADER_SIZE + n * frame_bytes
    if old == header and size == want:
        return
    if rec.do(f"{st.storage.describe(key)}: header set to {n} frames" + (
            f", {size - want} bytes after them cut off" if size > want else "")):
        with open(path, "r+b") as f:
            f.write(header)
            f.truncate(want)
            f.flush()
            os.fsync(f.fileno())


# ------------------------------------------------------------------ the procedure
def recover_store(path: str, *, dry_run: bool = False, verify: bool = True,
                  progress: Callable[[int, int], None] | None = None) -> Recovery:
    """Repair the store at *path* (a folder or its metadata.yaml) left by a writer that died.

    Raises WriterAlive while its writer still runs. With *verify* (default)
    every logged frame of a crashed chunk is decoded before it is indexed.
    *progress* is called with (chunks done, chunks in all).
    """
    if is_url(str(path)) and not str(path).startswith("file://"):
        raise ImgStoreError(f"{path}: only local stores can be recovered")
    path = os.fspath(path)
    if path.startswith("file://"):
        path = path[len("file://"):]
    if os.path.basename(path) == "metadata.yaml":
        path = os.path.dirname(path) or "."
    rec = Recovery(path, dry_run)
    st = _describe(path)
    storage = st.storage

    holder = read_lock(storage)
    if holder is not None and holder.alive():
        raise WriterAlive(f"{storage.describe(STORE_LOCK_FILENAME)}: the store is being written by "
                          f"{holder.describe()}; recover it after that writer has stopped")

    # interrupted atomic writes
    folders = [""] + ([st.layout.chunk_key(c) for c in st.layout.list_chunks(storage)]
                      if not st.is_video else [])
    for d in folders:
        for info in storage.listdir(d):
            if info.name.startswith(TMP_PREFIX) and not info.is_dir:
                key = f"{d}/{info.name}" if d else info.name
                if rec.do(f"{storage.describe(key)}: removed (left by an interrupted write)"):
                    storage.remove(key)

    chunks = st.layout.list_chunks(storage)
    for done, c in enumerate(chunks):
        try:
            _recover_chunk(st, c, rec, verify)
        except CorruptChunkError as e:  # a damaged index: not what a killed writer leaves
            rec.warnings.append(f"chunk {c} left alone: {e}")
        if progress is not None:
            progress(done + 1, len(chunks))
    _orphan_logs(st, set(chunks), rec)
    if st.is_video and not rec.dry_run and not st.layout.list_chunks(storage):
        _empty_first_chunk(st, rec)

    # extra data: terminate unterminated JSON arrays (ours and Motif's)
    for c in sorted(set(chunks) | _chunks_with_extra_data(st)):
        for _, key in st.layout.extra_data_candidates(c):
            if key.endswith(".json") and storage.exists(key):
                _terminate_json(st, key, rec)

    if holder is not None and rec.do(f"{storage.describe(STORE_LOCK_FILENAME)}: stale lock removed "
                                     f"({holder.describe() if holder.pid is not None else 'empty'})"):
        try:
            storage.remove(STORE_LOCK_FILENAME)
        except FileNotFoundError:
            pass
    return rec


def _recover_chunk(st: _Store, c: int, rec: Recovery, verify: bool) -> None:
    storage = st.storage
    base = st.layout.index_base(c)
    index_key = find_chunk_index(storage, base)
    log_key = base + FRAME_LOG_EXT
    chunk_key = st.layout.chunk_key(c)
    where = storage.describe(chunk_key)

    if index_key is None:
        # no index and no log: a chunk its writer had only begun (killed before the log was created)
        empty = (not storage.listdir(chunk_key)) if not st.is_video else _is_video_chunk_unopenable(st, chunk_key)
        if not empty:
            rec.warnings.append(f"{where}: chunk without an index, left alone")
        elif rec.do(f"{where}: removed (an empty chunk without an index)"):
            storage.remove(chunk_key)
        return

    if not index_key.endswith(FRAME_LOG_EXT):  # a complete chunk
        if storage.exists(log_key) and rec.do(f"{storage.describe(log_key)}: removed (the chunk's "
                                              f"{posixpath.basename(index_key)} is complete)"):
            storage.remove(log_key)
        if st.is_video and chunk_key.endswith(".mp4"):
            from ..codecs.video_index import mp4_is_fragmented

            if mp4_is_fragmented(storage, chunk_key) and len(parse_chunk_index(
                    storage.read_bytes(index_key), index_key, storage.describe(index_key))[0]):
                # killed while close() remuxed it (an MP4 without frames stays fragmented: a plain
                # one without frames has no video stream)
                _remux(st, chunk_key, None, rec, "fragmented MP4 remuxed into a plain MP4")
                _check_packet_index(st, chunk_key, rec)
                return
        if st.is_video and storage.exists(_packet_index_key(chunk_key)):
            _check_packet_index(st, chunk_key, rec)  # stale if the writer died before it was rewritten
        return

    # a chunk whose writer died: index it by its log, capped at the frames present and decodable
    fn, ft = parse_chunk_index(storage.read_bytes(log_key), log_key, storage.describe(log_key))
    n_log = len(fn)
    if verify:
        n, why = _frames_that_decode(st, c, n_log)
    else:
        n, why = n_log, ""
    if n < n_log:
        rec.warnings.append(f"chunk {c}: {n_log} frames logged, {n} present and decodable ({why})")
    if st.is_video and n == 0:
        # holds no frame we can index (e.g. killed before its first cluster/fragment was complete)
        for key in (chunk_key, _packet_index_key(chunk_key), log_key):
            if storage.exists(key) and rec.do(f"{storage.describe(key)}: removed (the chunk holds no indexed frame)"):
                storage.remove(key)
        return
    if st.is_video:
        # a crashed file has no index (MKV Cues, AVI idx1, MP4 moov): OpenCV cannot seek in it
        got = _remux(st, chunk_key, n, rec, f"remuxed (no re-encoding) into a complete file of {n} frames")
        if got is not None and got < n:
            rec.warnings.append(f"{where}: only {got} of {n} frames could be remuxed")
            n = got
    elif st.md.format == "raw":
        _fix_raw_chunk(st, c, n, rec)
    if rec.do(f"{storage.describe(base + '.npz')}: written from the frame log ({n} frames"
              + (f" of {n_log} logged" if n != n_log else "") + ")"):
        write_chunk_index(storage, base, fn[:n], ft[:n], store_md=st.md.store)
    if rec.do(f"{storage.describe(log_key)}: removed"):
        storage.remove(log_key)
    if st.is_video:
        _check_packet_index(st, chunk_key, rec)


def _packet_index_key(chunk_key: str) -> str:
    from ..codecs.video_index import packet_index_key

    return packet_index_key(chunk_key)


def _remux(st: _Store, chunk_key: str, max_frames: int | None, rec: Recovery, what: str) -> int | None:
    from ..codecs.video import remux_video_chunk

    if not rec.do(f"{st.storage.describe(chunk_key)}: {what}"):
        return None
    try:
        return remux_video_chunk(st.storage, chunk_key, max_frames=max_frames)
    except (ImgStoreError, OSError) as e:
        rec.warnings.append(f"{st.storage.describe(chunk_key)}: cannot remux: {e}")
        return None


def _check_packet_index(st: _Store, chunk_key: str, rec: Recovery) -> None:
    storage = st.storage
    if storage.exists(chunk_key):
        from ..codecs.video_index import build_packet_index, load_packet_index, packet_index_key

        try:
            load_packet_index(storage, chunk_key, rebuild=False)
        except CorruptChunkError:
            if rec.do(f"{storage.describe(packet_index_key(chunk_key))}: packet index rebuilt"):
                try:
                    build_packet_index(storage, chunk_key, write=True)
                except (CorruptChunkError, OSError) as e:
                    rec.warnings.append(f"{storage.describe(chunk_key)}: cannot index: {e}")


def _empty_first_chunk(st: _Store, rec: Recovery) -> None:
    """A video store left without any chunk (its writer died before a frame reached the disk) gets an
    empty chunk 0, as the original's writer creates one: the original opens chunk 0 of every store."""
    from ..codecs.video import VideoChunkWriter, get_video_format
    from ..codecs.video_index import open_container

    storage = st.storage
    key = st.layout.chunk_key(0)
    try:
        VideoChunkWriter(storage, key, get_video_format(st.md.format), st.imgshape, st.dtype).close()
        c, f = open_container(storage, key)
        c.close()
    except (ImgStoreError, OSError, ValueError) as e:
        # e.g. Matroska: a file without any cluster does not open
        if storage.exists(key):
            storage.remove(key)
        rec.warnings.append(f"{st.storage.describe('')}: holds no frames; the original imgstore cannot open a "
                            f"{st.md.format} store without a readable chunk 0 ({e.__class__.__name__})")
        return
    rec.do(f"{storage.describe(key)}: empty chunk written (the store holds no frames; the original imgstore "
           f"needs a chunk 0 to open it)")
    write_chunk_index(storage, st.layout.index_base(0), [], [], store_md=st.md.store)


def _orphan_logs(st: _Store, chunks: set[int], rec: Recovery) -> None:
    """Frame logs of chunks whose data never reached the disk (a video file not created yet)."""
    if not st.is_video:
        return
    from ..format.layout import parse_chunk_name

    for info in st.storage.listdir(""):
        if info.is_dir or not info.name.endswith(FRAME_LOG_EXT):
            continue
        c = parse_chunk_name(info.name[: -len(FRAME_LOG_EXT)])
        if c is None or c in chunks:
            continue
        if st.storage.stat(info.name).size >= 16:
            rec.warnings.append(f"{st.storage.describe(info.name)}: logs frames of a chunk without a video file")
        if rec.do(f"{st.storage.describe(info.name)}: removed (its chunk has no video file)"):
            st.storage.remove(info.name)


def _chunks_with_extra_data(st: _Store) -> set[int]:
    from ..format.layout import parse_chunk_name

    out = set()
    if st.is_video:
        for info in st.storage.listdir(""):
            if not info.is_dir and ".extra" in info.name:
                c = parse_chunk_name(info.name.split(".", 1)[0])
                if c is not None:
                    out.add(c)
    return out


def _terminate_json(st: _Store, key: str, rec: Recovery) -> None:
    import json

    data = st.storage.read_bytes(key)
    where = st.storage.describe(key)
    try:
        json.loads(data.decode("utf-8-sig"))
        return  # complete
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        records = _xd.parse_json_records(data, where)
    except CorruptChunkError as e:
        rec.warnings.append(f"{where}: damaged beyond an unterminated array, left alone ({e})")
        return
    text = "[" + ", ".join(_xd.encode_record(r) for r in records) + "]"
    if rec.do(f"{where}: JSON array terminated ({len(records)} records)"):
        st.storage.write_bytes(key, text.encode("utf-8"), atomic=True)


# ------------------------------------------------------------------ command line
DESCRIPTION = """\
Turn the store of a writer that died back into a normal store in the original's layout
(readers do not need it: they read such a store as it is). It refuses to touch a store whose
writer is still running; running it again does nothing. Exit status: 0 done (or nothing to
do), 1 error, 2 refused (the store's writer is alive).

examples:
  imgstore recover mystore --dry-run
  imgstore recover mystore"""


def configure(p: argparse.ArgumentParser) -> None:
    """The command's arguments (shared by ``imgstore recover`` and ``imgstore-recover``)."""
    p.add_argument("path", help="store folder (or its metadata.yaml)")
    p.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    p.add_argument("--no-verify", action="store_true",
                   help="index crashed chunks by their data's frame count without decoding every frame")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.add_argument("--json", action="store_true", help="print what was (or would be) done as JSON")


def run(args: argparse.Namespace, prog: str = "imgstore recover") -> int:
    """Recover ``args.path``; prints what was (or would be) done. Returns the exit status."""
    from .progress import Progress

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    bar = Progress(None, "recover", unit="chunk", quiet=args.quiet)
    try:
        rec = recover_store(args.path, dry_run=args.dry_run, verify=not args.no_verify,
                            progress=lambda done, total: (bar.set_total(total), bar.set(done)))
    except WriterAlive as e:
        bar.close(summary=False)
        print(f"{prog}: refused: {e}", file=sys.stderr)
        return 2
    except (ImgStoreError, OSError, ValueError) as e:
        bar.close(summary=False)
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    bar.close()
    if args.json:
        import json

        print(json.dumps({"path": rec.path, "dry_run": rec.dry_run, "actions": rec.actions,
                          "warnings": rec.warnings}, indent=1))
        return 0
    prefix = "would: " if args.dry_run else ""
    for a in rec.actions:
        print(prefix + a)
    for w in rec.warnings:
        print(f"warning: {w}")
    if not rec.actions:
        print(f"{rec.path}: nothing to do")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="imgstore-recover", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    configure(p)
    return run(p.parse_args(argv), prog="imgstore-recover")


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
