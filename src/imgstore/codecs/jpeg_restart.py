"""Cut a JPEG into horizontal bands at its restart markers, so that the bands decode in parallel.

A JPEG whose scan has restart markers (a ``DRI`` segment) resets its entropy
decoder at each marker: the MCU rows after a marker decode without the bytes
before it. :func:`restart_bands` turns such a JPEG into up to *k* smaller,
complete JPEGs (the same tables, a shorter frame height, the scan bytes of
their rows, restart markers renumbered from 0); decoded and stacked, their
pixels are the whole picture's, bit for bit (the decoder's IDCT works block by
block and no band shares a block with another). FFmpeg's MJPEG encoder writes a
marker after every MCU row when it encodes on slice threads, which is how the
``mjpeg/avi`` format writes (see :mod:`.video.bands`).

Only bytes are handled here: no pixels, no decoder.
"""

from __future__ import annotations

import struct

import numpy as np

_SOI, _EOI, _SOS, _DRI, _DNL = 0xD8, 0xD9, 0xDA, 0xDD, 0xDC
_RST0, _RST7 = 0xD0, 0xD7
#: baseline and extended sequential Huffman-coded DCT: the frames whose scans restart markers cut
_SEQUENTIAL_SOF = (0xC0, 0xC1)
#: other frame types (progressive, lossless, arithmetic, hierarchical): never cut
_OTHER_SOF = {0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class _Layout:
    __slots__ = ("header", "sof_at", "height", "mcu_h", "mcus_x", "mcus_y", "interval", "scan_at")


def _layout(b: bytes) -> _Layout | None:
    """The header segments of one JPEG, up to its (single) scan; None if it is not one that can be cut."""
    n = len(b)
    if n < 4 or b[0] != 0xFF or b[1] != _SOI:
        return None
    lay = _Layout()
    lay.sof_at = None
    lay.interval = 0
    comps = None
    i = 2
    while i + 4 <= n:
        if b[i] != 0xFF:
            return None
        m = b[i + 1]
        if m == 0xFF:  # fill byte
            i += 1
            continue
        if m == 0x01 or _RST0 <= m <= _RST7:
            i += 2
            continue
        (ln,) = struct.unpack_from(">H", b, i + 2)
        end = i + 2 + ln
        if ln < 2 or end > n:
            return None
        if m in _OTHER_SOF or m == _DNL:
            return None
        if m in _SEQUENTIAL_SOF:
            if lay.sof_at is not None or ln < 8:
                return None
            lay.sof_at = i
            lay.height, width, nf = struct.unpack_from(">HHB", b, i + 5)
            if ln != 8 + 3 * nf or nf < 1 or lay.height == 0 or width == 0:
                return None
            comps = [(b[i + 11 + 3 * c] >> 4, b[i + 11 + 3 * c] & 15) for c in range(nf)]
            if any(h < 1 or v < 1 for h, v in comps):
                return None
        elif m == _DRI:
            if ln != 4:
                return None
            (lay.interval,) = struct.unpack_from(">H", b, i + 4)
        elif m == _SOS:
            if lay.sof_at is None or lay.interval == 0:
                return None
            ns = b[i + 4]
            if ns == len(comps):
                hmax = max(h for h, _ in comps)
                vmax = max(v for _, v in comps)
            elif ns == 1 and len(comps) == 1:
                hmax = vmax = 1  # one component, not interleaved: an MCU is one 8x8 block
            else:
                return None  # a scan of some of the components: more scans follow
            lay.mcu_h = 8 * vmax
            lay.mcus_x = -(-width // (8 * hmax))
            lay.mcus_y = -(-lay.height // lay.mcu_h)
            lay.scan_at = end
            lay.header = b[:end]
            return lay
        i = end
    return None


#: the first band's share against each other band's: it is decoded by the caller, which starts on it
#: before a pool thread has woken up for the next one and collects the others after it
#: (docs/design/mjpeg-bands.md)
_FIRST_BAND_WEIGHT = 8 / 7


class _Plan:
    """How JPEGs that begin with *header* are cut into bands: everything but the scan's bytes."""

    __slots__ = ("header", "scan_at", "n_rst", "codes", "cuts", "headers", "tops", "renumber")


def _plan(data: bytes, k: int) -> _Plan | None:
    lay = _layout(data)
    if lay is None:
        return None
    mcus = lay.mcus_x * lay.mcus_y
    n_rst = -(-mcus // lay.interval) - 1  # a marker ends every restart interval but the last
    if n_rst < 1:
        return None
    # marker j ends interval j; it ends an MCU row where (j + 1) * interval is a multiple of the row
    first_mcu = (np.arange(n_rst, dtype=np.int64) + 1) * lay.interval
    at_row = np.flatnonzero(first_mcu % lay.mcus_x == 0)
    if len(at_row) == 0:
        return None
    rows = first_mcu[at_row] // lay.mcus_x  # MCU row that starts after each usable marker
    cuts: list[int] = []  # indexes into at_row
    w0 = _FIRST_BAND_WEIGHT
    for j in range(1, k):
        c = int(np.argmin(np.abs(rows - lay.mcus_y * (w0 + j - 1) / (w0 + k - 1))))
        if (not cuts or c > cuts[-1]) and 0 < rows[c] < lay.mcus_y:
            cuts.append(c)
    if not cuts:
        return None
    plan = _Plan()
    plan.header = lay.header
    plan.scan_at = lay.scan_at
    plan.n_rst = n_rst
    plan.codes = (_RST0 + np.arange(n_rst) % 8).astype(np.uint8)
    plan.cuts = [int(at_row[c]) for c in cuts]  # the markers the bands are cut at
    starts = [0] + [int(rows[c]) for c in cuts]
    plan.tops = [r0 * lay.mcu_h for r0 in starts]
    plan.headers = []
    plan.renumber = []
    bounds = [-1] + plan.cuts + [n_rst]
    for j, r0 in enumerate(starts):
        h = (starts[j + 1] - r0) * lay.mcu_h if j + 1 < len(starts) else lay.height - r0 * lay.mcu_h
        header = bytearray(lay.header)
        struct.pack_into(">H", header, lay.sof_at + 5, h)
        plan.headers.append(bytes(header))
        inner = bounds[j + 1] - bounds[j] - 1  # markers inside band j
        plan.renumber.append((_RST0 + np.arange(inner) % 8).astype(np.uint8))
    return plan


#: plans of the last few distinct headers (an encoder writes the same header on every frame)
_recent_plans: tuple = ()


def restart_bands(data: bytes, k: int) -> list[tuple[bytearray, int]] | None:
    """Up to *k* JPEGs, each of whole MCU rows of the baseline JPEG *data*, top to bottom, with the
    first row (in pixels) of each: ``[(jpeg, row), ...]``.

    None where *data* cannot be cut: no restart markers, not baseline or
    extended sequential Huffman DCT, more than one scan, restart markers not
    where the restart interval puts them (numbered out of order, missing,
    extra), anything but padding after the end of the image, or no marker at
    the end of an MCU row.
    """
    global _recent_plans
    if k < 2:
        return None
    recent = _recent_plans
    for pk, plan in recent:
        if pk == k and data.startswith(plan.header):
            break
    else:
        plan = _plan(data, k)
        if plan is None:
            return None
        _recent_plans = ((k, plan),) + recent[:3]
    a = np.frombuffer(data, np.uint8)
    s0 = plan.scan_at
    ff = np.flatnonzero(a[s0:-1] == 0xFF)
    ff += s0
    code = a[ff + 1]
    keep = (code - np.uint8(1)) < 0xFE  # not a stuffed byte (FF 00) nor a fill byte (FF FF)
    ff, code = ff[keep], code[keep]
    n = plan.n_rst
    if len(code) <= n or code[n] != _EOI or not np.array_equal(code[:n], plan.codes):
        return None  # markers missing, out of order, or another marker inside the scan (DNL, a second scan)
    if len(code) > n + 1 and np.any(code[n + 1:] == _SOI):
        return None  # a second image in the same packet (interlaced fields)
    begins = [s0] + [int(ff[c]) + 2 for c in plan.cuts]
    finishes = [int(ff[c]) for c in plan.cuts] + [int(ff[n])]
    bounds = [-1] + plan.cuts
    bands = []
    view = memoryview(data)
    for j, (lo, hi) in enumerate(zip(begins, finishes)):
        header = plan.headers[j]
        hl = len(header)
        band = bytearray(hl + hi - lo + 2)
        band[:hl] = header
        band[hl:-2] = view[lo:hi]
        band[-2:] = b"\xff\xd9"
        renumber = plan.renumber[j]
        if j and len(renumber):
            first = bounds[j] + 1
            at = ff[first:first + len(renumber)] - (lo - hl - 1)
            np.frombuffer(band, np.uint8)[at] = renumber
        bands.append((band, plan.tops[j]))
    return bands


__all__ = ["restart_bands"]
