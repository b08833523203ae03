"""Rewriting a video chunk through a fresh muxer, without re-encoding (fragmented MP4 -> plain MP4,
a torn MKV or AVI -> one with its index); what it costs: docs/design/crash-safety.md."""

from __future__ import annotations

import io
import logging
import os

from ...errors import CorruptChunkError, UnsupportedFormatError
from ...storage.base import Storage
from .container import open_container
from .formats import FRAGMENT_SECONDS

log = logging.getLogger(__name__)

#: FFmpeg muxer for each chunk file extension (what :func:`remux_video_chunk` writes)
_MUXER_OF_EXTENSION = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}


def remux_video_chunk(storage: Storage, key: str, *, max_frames: int | None = None,
                      container: str | None = None) -> int:
    """Rewrite video chunk *key* through a fresh muxer, without re-encoding.

    Makes a fragmented MP4 a plain MP4 (one ``moov`` at the end), and gives
    an MKV or AVI whose writer died its index (Cues / idx1) and sizes, which
    OpenCV needs to seek in it. The muxer is *container* (default: from the
    file extension). Packets are copied in file order; packets cut short by
    the end of the file are dropped, and so is everything after the first
    *max_frames* packets when given. The new file replaces the old one
    atomically (a temporary file beside it, fsynced, then renamed; its name
    does not end in a video extension, so no reader takes it for a chunk).
    The chunk's packet index is stale afterwards (rebuilt on the next load).
    Returns the number of frames (packets) in the new file.
    """
    import av
    import tempfile

    if container is None:
        container = _MUXER_OF_EXTENSION.get(os.path.splitext(key)[1].lower())
        if container is None:
            raise UnsupportedFormatError(f"{storage.describe(key)}: no muxer known for this file extension")
    muxer_options = {}
    if container in ("matroska", "webm"):
        muxer_options = {"cluster_time_limit": str(int(FRAGMENT_SECONDS * 1000))}
    describe = storage.describe(key)
    size = int(storage.stat(key).size)
    path = storage.local_path(key)
    inp, in_fobj = open_container(storage, key)
    tmp = out_buf = None
    try:
        if not inp.streams.video:
            raise CorruptChunkError(f"{describe}: no video stream")
        if path is not None:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-remux-", suffix=".part", dir=os.path.dirname(path) or ".")
            os.close(fd)
            out = av.open(tmp, "w", format=container, options=muxer_options)
        else:
            out_buf = io.BytesIO()
            out = av.open(out_buf, "w", format=container, options=muxer_options)
        try:
            n = _copy_packets(inp, out, size, max_frames, describe)
        finally:
            out.close()
    except BaseException:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise
    finally:
        inp.close()
        if in_fobj is not None:
            in_fobj.close()
    if tmp is not None:
        _replace_file(path, tmp)
    else:
        storage.write_bytes(key, out_buf.getvalue(), atomic=True)
    return n


def _copy_packets(inp, out, size: int, max_frames: int | None, describe: str) -> int:
    """Mux the video packets of *inp* into *out* in file order, up to the first one cut short by the end
    of the file (*size* bytes) and at most *max_frames*; how many were muxed."""
    import av

    ist = inp.streams.video[0]
    n = 0
    ost = out.add_stream_from_template(ist)
    out.start_encoding()  # the header, even when no packet follows
    try:
        for pkt in inp.demux(ist):
            if not pkt.size:
                continue
            if max_frames is not None and n >= max_frames:
                break
            p = pkt.pos if pkt.pos is not None else -1
            if pkt.is_corrupt or (p >= 0 and p + pkt.size > size):
                break  # cut short by the end of the file
            pkt.stream = ost
            out.mux(pkt)
            n += 1
    except (av.error.FFmpegError, EOFError) as e:  # a torn last fragment
        log.debug("%s: remux stopped after %d packets: %s", describe, n, e)
    return n


def _replace_file(path: str, tmp: str) -> None:
    """Put the finished file *tmp* (beside *path*) in *path*'s place: fsynced, with *path*'s mode."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    try:
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)  # mkstemp made it private
    except OSError:
        pass
    os.replace(tmp, path)
