"""The sample table of an MP4/MOV file's first video track, read from its ``moov`` box alone.

What pycamhd does for one camera's ProRes files, for any MP4/MOV: the
``moov`` box is found at either end of the file by reading box headers (a few
small range reads, never the media data), then each sample's byte offset
(``stco``/``co64`` chunk offsets through any ``stsc`` layout and ``stsz``
sizes), decode and presentation times (``stts``, ``ctts``, shifted by the
first ``elst`` edit), keyframes (``stss``; all samples when absent), and the
codec with its configuration record (``avcC``/``hvcC``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import CorruptChunkError

#: sample entry FourCC -> FFmpeg decoder name
CODECS = {
    "avc1": "h264", "avc3": "h264", "hvc1": "hevc", "hev1": "hevc", "mp4v": "mpeg4", "jpeg": "mjpeg",
    "mjpa": "mjpeg", "mjpb": "mjpeg", "apcn": "prores", "apch": "prores", "apcs": "prores", "apco": "prores",
    "ap4h": "prores", "ap4x": "prores", "av01": "av1", "vp09": "vp9", "ffv1": "ffv1", "png ": "png",
}
_CONFIG_BOXES = ("avcC", "hvcC", "av1C", "vpcC", "glbl")
_CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl", "edts", "dinf"}


@dataclass
class SampleTable:
    """Per-sample arrays of the first video track, in decode (file) order."""

    offset: np.ndarray  # int64 byte offset of each sample
    size: np.ndarray  # int64
    dts: np.ndarray  # int64, track timescale
    pts: np.ndarray  # int64, track timescale, after the edit list shift
    is_key: np.ndarray  # bool
    timescale: int
    fourcc: str
    codec: str
    width: int
    height: int
    extradata: bytes
    file_size: int


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    """``(type, payload_start, payload_end)`` of the boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    i = start
    while i + 8 <= end:
        size, typ = struct.unpack(">I4s", data[i: i + 8])
        hdr = 8
        if size == 1:
            if i + 16 > end:
                break
            size = struct.unpack(">Q", data[i + 8: i + 16])[0]
            hdr = 16
        elif size == 0:
            size = end - i
        if size < hdr or i + size > end:
            raise ValueError(f"box {typ!r} at {i} overruns its parent")
        yield typ.decode("latin1"), i + hdr, i + size
        i += size


def find_moov(read_range: Callable[[int, int], bytes], file_size: int, where: str) -> bytes:
    """The ``moov`` box payload, found by walking the top-level box headers (moov may be at either end)."""
    pos = 0
    while pos + 8 <= file_size:
        head = read_range(pos, min(pos + 16, file_size))
        size, typ = struct.unpack(">I4s", head[:8])
        hdr = 8
        if size == 1:
            size = struct.unpack(">Q", head[8:16])[0]
            hdr = 16
        elif size == 0:
            size = file_size - pos
        if size < hdr:
            break
        if typ == b"moov":
            if pos + size > file_size:
                break
            return read_range(pos + hdr, pos + size)
        pos += size
    raise CorruptChunkError(f"{where}: no moov box (not an MP4/MOV file, or it was cut short)")


def _full(data: bytes, a: int) -> int:
    return a + 4  # skip version and flags


def _u32s(data: bytes, a: int, n: int, stride: int = 1) -> np.ndarray:
    return np.frombuffer(data, dtype=">u4", count=n * stride, offset=a).astype(np.int64).reshape(n, stride)


#: MPEG-4 objectTypeIndication (esds) -> FFmpeg decoder name, for 'mp4v' sample entries
_OBJECT_TYPES = {0x20: "mpeg4", 0x6C: "mjpeg", 0x6A: "mpeg1video", 0x60: "mpeg2video", 0x61: "mpeg2video",
                 0x21: "h264"}


def _descriptor(data: bytes, i: int) -> tuple[int, int, int]:
    """``(tag, payload start, payload end)`` of an MPEG-4 descriptor at *i*."""
    tag = data[i]
    i += 1
    n = 0
    for _ in range(4):
        b = data[i]
        i += 1
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            break
    return tag, i, i + n


def _parse_esds(data: bytes, a: int, b: int) -> tuple[str, bytes]:
    """Codec and decoder-specific info of an ``esds`` box."""
    tag, i, end = _descriptor(data, a + 4)
    if tag != 0x03:
        return "", b""
    flags = data[i + 2]
    i += 3 + (2 if flags & 0x80 else 0)
    if flags & 0x40:
        i += 1 + data[i]
    if flags & 0x20:
        i += 2
    tag, j, dend = _descriptor(data, i)
    if tag != 0x04:
        return "", b""
    codec = _OBJECT_TYPES.get(data[j], "")
    k = j + 13
    extradata = b""
    if k < dend:
        tag, x, y = _descriptor(data, k)
        if tag == 0x05:
            extradata = data[x:y]
    return codec, extradata


def _parse_stsd(data: bytes, a: int, b: int) -> tuple[str, str, int, int, bytes]:
    a = _full(data, a) + 4  # entry count
    for typ, ea, eb in _boxes(data, a, b):
        # visual sample entry: 6 reserved + 2 data ref + 16 predefined/reserved, then width, height
        width, height = struct.unpack(">HH", data[ea + 24: ea + 28])
        codec, extradata = CODECS.get(typ, ""), b""
        for sub, sa, sb in _boxes(data, ea + 78, eb):
            if sub in _CONFIG_BOXES:
                extradata = data[sa:sb]
                break
            if sub == "esds":
                codec, extradata = _parse_esds(data, sa, sb)
                break
        return typ, codec, width, height, extradata
    raise ValueError("empty sample description")


def parse_moov(moov: bytes, file_size: int, where: str) -> SampleTable:
    """The first video track's sample table from a ``moov`` payload."""
    try:
        return _parse_moov(moov, file_size)
    except (ValueError, struct.error, IndexError, KeyError) as e:
        raise CorruptChunkError(f"{where}: unreadable moov box ({e})") from None


def _parse_moov(moov: bytes, file_size: int) -> SampleTable:
    for typ, a, b in _boxes(moov):
        if typ != "trak":
            continue
        boxes: dict[str, tuple[int, int]] = {}

        def walk(x, y):
            for t, c, d in _boxes(moov, x, y):
                if t in _CONTAINERS:
                    walk(c, d)
                else:
                    boxes.setdefault(t, (c, d))

        walk(a, b)
        if "hdlr" not in boxes:
            continue
        ha, _ = boxes["hdlr"]
        if moov[ha + 8: ha + 12] != b"vide":
            continue
        ma, _ = boxes["mdhd"]
        version = moov[ma]
        timescale = struct.unpack(">I", moov[ma + 12: ma + 16] if version == 0 else moov[ma + 20: ma + 24])[0]
        fourcc, codec, width, height, extradata = _parse_stsd(moov, *boxes["stsd"])

        sa, _ = boxes["stsz"]
        sample_size, count = struct.unpack(">II", moov[sa + 4: sa + 12])
        sizes = (np.full(count, sample_size, np.int64) if sample_size else
                 _u32s(moov, sa + 12, count)[:, 0])

        offsets = _sample_offsets(moov, boxes, sizes, count)
        pts, dts = _sample_times(moov, boxes, count)
        is_key = _keyframes(moov, boxes, count)
        if count and int((offsets + sizes).max()) > file_size:
            raise ValueError("samples lie beyond the end of the file")
        return SampleTable(offsets.astype(np.int64), sizes.astype(np.int64), dts, pts.astype(np.int64), is_key,
                           int(timescale), fourcc, codec, int(width), int(height),
                           bytes(extradata), int(file_size))
    raise ValueError("no video track")


def _sample_offsets(moov: bytes, boxes: dict, sizes: np.ndarray, count: int) -> np.ndarray:
    """File offset of each of the track's *count* samples (``stco``/``co64`` chunk offsets, ``stsc``)."""
    if "stco" in boxes:
        ca, _ = boxes["stco"]
        n = struct.unpack(">I", moov[ca + 4: ca + 8])[0]
        chunk_off = _u32s(moov, ca + 8, n)[:, 0]
    else:
        ca, _ = boxes["co64"]
        n = struct.unpack(">I", moov[ca + 4: ca + 8])[0]
        chunk_off = np.frombuffer(moov, dtype=">u8", count=n, offset=ca + 8).astype(np.int64)

    ta, _ = boxes["stsc"]
    n = struct.unpack(">I", moov[ta + 4: ta + 8])[0]
    stsc = _u32s(moov, ta + 8, n, 3)  # first_chunk (1-based), samples_per_chunk, desc index
    per_chunk = np.zeros(len(chunk_off), np.int64)
    for k in range(n):
        first = stsc[k, 0] - 1
        last = stsc[k + 1, 0] - 1 if k + 1 < n else len(chunk_off)
        per_chunk[first:last] = stsc[k, 1]
    chunk_of_sample = np.repeat(np.arange(len(chunk_off)), per_chunk)[:count]
    if len(chunk_of_sample) < count:
        raise ValueError("stsc/stco describe fewer samples than stsz")
    first_sample = np.concatenate([[0], np.cumsum(per_chunk)])[:-1]
    csum = np.concatenate([[0], np.cumsum(sizes)])
    within = csum[np.arange(count)] - csum[first_sample[chunk_of_sample]]
    offsets = chunk_off[chunk_of_sample] + within
    return offsets


def _sample_times(moov: bytes, boxes: dict, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``(pts, dts)`` of each sample, track timescale (``stts``, ``ctts``, the first non-empty ``elst`` edit)."""
    xa, _ = boxes["stts"]
    n = struct.unpack(">I", moov[xa + 4: xa + 8])[0]
    stts = _u32s(moov, xa + 8, n, 2)
    deltas = np.repeat(stts[:, 1], stts[:, 0])[:count]
    dts = np.concatenate([[0], np.cumsum(deltas)])[:count].astype(np.int64)
    pts = dts.copy()
    if "ctts" in boxes:
        qa, _ = boxes["ctts"]
        cver = moov[qa]
        n = struct.unpack(">I", moov[qa + 4: qa + 8])[0]
        raw = np.frombuffer(moov, dtype=">u4", count=2 * n, offset=qa + 8).reshape(n, 2)
        offs = raw[:, 1].astype(np.int64)
        if cver == 1:
            offs = raw[:, 1].view(">i4").astype(np.int64)
        pts = pts + np.repeat(offs, raw[:, 0].astype(np.int64))[:count]
    if "elst" in boxes:
        ea, _ = boxes["elst"]
        ever = moov[ea]
        n = struct.unpack(">I", moov[ea + 4: ea + 8])[0]
        p = ea + 8
        for _ in range(n):
            if ever == 1:
                _dur, media_time = struct.unpack(">Qq", moov[p: p + 16])
                p += 20
            else:
                _dur, media_time = struct.unpack(">Ii", moov[p: p + 8])
                p += 12
            if media_time >= 0:  # the first non-empty edit: where presentation starts
                pts = pts - media_time
                break
    return pts, dts


def _keyframes(moov: bytes, boxes: dict, count: int) -> np.ndarray:
    """Which samples are sync samples (``stss``; every one if there is none)."""
    if "stss" in boxes:
        ka, _ = boxes["stss"]
        n = struct.unpack(">I", moov[ka + 4: ka + 8])[0]
        is_key = np.zeros(count, bool)
        is_key[_u32s(moov, ka + 8, n)[:, 0] - 1] = True
    else:
        is_key = np.ones(count, bool)
    return is_key
