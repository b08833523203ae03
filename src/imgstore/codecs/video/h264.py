"""What the H.264 bitstream says: whether a stream is monochrome (from its SPS), how many slices a frame has."""

from __future__ import annotations

_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def _unescape(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.v = int.from_bytes(data, "big")
        self.n = len(data) * 8
        self.i = 0

    def u(self, k: int) -> int:
        if self.i + k > self.n:
            raise ValueError("SPS ends early")
        self.i += k
        return (self.v >> (self.n - self.i)) & ((1 << k) - 1)

    def ue(self) -> int:
        z = 0
        while self.u(1) == 0:
            z += 1
            if z > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << z) - 1 + (self.u(z) if z else 0)


def _first_sps(extradata: bytes) -> bytes | None:
    if not extradata:
        return None
    if extradata[0] == 1 and len(extradata) > 8:  # avcC
        nsps = extradata[5] & 0x1F
        i = 6
        if nsps:
            ln = int.from_bytes(extradata[i:i + 2], "big")
            return extradata[i + 2:i + 2 + ln]
        return None
    # Annex B: find a NAL of type 7
    i = extradata.find(b"\x00\x00\x01")
    while i >= 0:
        j = i + 3
        if j < len(extradata) and extradata[j] & 0x1F == 7:
            k = extradata.find(b"\x00\x00\x01", j)
            return extradata[j:k if k >= 0 else len(extradata)]
        i = extradata.find(b"\x00\x00\x01", j)
    return None


def h264_chroma_format(extradata: bytes) -> int | None:
    """``chroma_format_idc`` of the first SPS in H.264 *extradata* (0 = monochrome), None if unknown."""
    try:
        sps = _first_sps(bytes(extradata))
        if not sps or sps[0] & 0x1F != 7:
            return None
        b = _Bits(_unescape(sps[1:64]))
        profile = b.u(8)
        b.u(8)  # constraint flags
        b.u(8)  # level
        b.ue()  # seq_parameter_set_id
        return b.ue() if profile in _HIGH_PROFILES else 1
    except (ValueError, IndexError):
        return None


def h264_slice_count(extradata: bytes, packet: bytes) -> int | None:
    """Coded slices (NAL units of type 1 or 5) in one H.264 access unit, None if it cannot be parsed.

    *packet* is length-prefixed (avcC *extradata*, as in MP4 and Matroska) or Annex B (start codes).
    """
    try:
        data = bytes(packet)
        ext = bytes(extradata or b"")
        types = []
        if ext[:1] == b"\x01" and len(ext) > 4:  # avcC: NAL units prefixed by their length
            n = (ext[4] & 3) + 1
            i = 0
            while i + n <= len(data):
                ln = int.from_bytes(data[i:i + n], "big")
                if ln <= 0 or i + n + ln > len(data):
                    return None
                types.append(data[i + n] & 0x1F)
                i += n + ln
            if i != len(data):
                return None
        else:
            i = data.find(b"\x00\x00\x01")
            while i >= 0 and i + 3 < len(data):
                types.append(data[i + 3] & 0x1F)
                i = data.find(b"\x00\x00\x01", i + 3)
        count = sum(1 for t in types if t in (1, 5))
        return count or None
    except (IndexError, ValueError, TypeError):
        return None
