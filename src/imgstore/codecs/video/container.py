"""A chunk file opened with PyAV's demuxer, and the timestamp its packets are known by."""

from __future__ import annotations

from ...errors import CorruptChunkError
from ...storage.base import Storage


def packet_ts(pkt) -> int | None:
    """The timestamp a packet is indexed by: pts, else dts."""
    ts = pkt.pts
    if ts is None:
        ts = pkt.dts
    return ts


def _file_size(storage: Storage, key: str) -> int:
    return int(storage.stat(key).size)


def open_container(storage: Storage, key: str):
    """Open chunk *key* for reading with PyAV: by OS path if local, else as a file object.

    Returns ``(container, fileobj_or_None)``. Raises FileNotFoundError if the
    chunk is missing and CorruptChunkError if it cannot be opened as video.
    """
    return _open_container(storage, key)


#: demuxer options for a local chunk opened only to list its packets: FFmpeg's probe then does not
#: decode (it decoded 7 frames of an H.264 chunk to learn its pixel format: 25 of the 27 ms it took to
#: open one of 1280x1024, 2026-12-03). Remote chunks keep the default, which reads less: a probe that
#: never learns the pixel format reads on to its size limit.
_PROBE_NO_DECODE = {"skip_frame": "all"}


def _open_container(storage: Storage, key: str, wrap=None, *, decode_probe: bool = True):
    import av

    path = storage.local_path(key)
    fobj = None
    try:
        if path is not None:
            container = av.open(path, "r", options=None if decode_probe else _PROBE_NO_DECODE)
        else:
            fobj = storage.open_read(key)
            if wrap is not None:
                fobj = wrap(fobj)
            container = av.open(fobj, "r")
    except FileNotFoundError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, EOFError) as e:
        if fobj is not None:
            fobj.close()
        if isinstance(e, FileNotFoundError) or (path is not None and not storage.exists(key)):
            raise FileNotFoundError(f"{storage.describe(key)}: no such chunk") from e
        raise CorruptChunkError(f"{storage.describe(key)}: cannot open video: {e}") from e
    return container, fobj
