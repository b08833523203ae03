"""One MJPEG frame decoded in bands on several threads at once: cut at its restart markers
(:mod:`..jpeg_restart`), each band decoded and converted on its own thread into its rows of the
output, bit for bit the whole frame's pixels. What it gains and costs: docs/design/mjpeg-bands.md.
"""

from __future__ import annotations

import logging

import numpy as np

from ..jpeg_restart import restart_bands
from . import pools
from .pixels import _full_range_neutral, _plane

log = logging.getLogger(__name__)

#: 8-bit pictures the MJPEG decoder returns that :meth:`BandDecoding._stack` puts together
_BAND_FORMATS = {"gray", "yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "yuvj411p",
                 "yuv420p", "yuv422p", "yuv444p", "yuv440p", "yuv411p"}


class BandDecoding:
    """The part of :class:`~.reader.VideoChunkReader` that decodes one intra-only MJPEG frame in bands.
    Owns ``_bands`` (False once a chunk's frames turned out not to cut) and ``_stack_frame``."""

    def _read_intra_bands(self, p: int) -> np.ndarray | None:
        """The frame at *p* decoded in bands on several threads (a JPEG with restart markers, see
        :mod:`..jpeg_restart`), converted; None if this chunk's frames cannot be cut.

        Each band is converted on its thread, straight into its rows of the output: gray or neutral
        chroma to a gray reader as its samples, anything else as swscale converts it, which is row
        for row what it makes of the whole picture where the picture's height is even (its
        converter then works on pairs of rows; at odd heights it is not, so those pictures are
        converted once from the bands stacked back together)."""
        d = int(self._dec_of_pos[p])
        data = self._src.read(int(self._payload[d]), int(self._end[d]))
        bands = restart_bands(data, pools._decode_workers())
        if bands is None:
            self._bands = False  # the chunk's encoder wrote no usable markers: not looked for again
            return None
        w, h = int(self.index.width), int(self.index.height)
        out = np.empty((h, w, 3) if self.color else (h, w), np.uint16 if self.dtype == np.uint16 else np.uint8)
        tops = [top for _, top in bands] + [h]
        ex = pools._band_executor()
        futs = [(j, ex.submit(self._decode_band, jpeg, tops[j], tops[j + 1], out))
                for j, (jpeg, _) in enumerate(bands) if j]
        done = []
        try:
            done.append(self._decode_band(bands[0][0], 0, tops[1], out))
        finally:
            for j, f in futs:
                # a band no thread has started yet is decoded here (the pool may be busy, or slow to wake)
                done.append(self._decode_band(bands[j][0], tops[j], tops[j + 1], out) if f.cancel() else f.result())
        if any(fr is None for fr, _ in done):
            self._bands = False
            return None
        self._count_decoded(1)
        if not all(filled for _, filled in done):
            out = self._pixels(self._stack([fr for fr, _ in done], tops))
        return self._crop(out)  # not cached, see _decode_intra_here

    def _decode_band(self, jpeg: bytes, top: int, bottom: int, out: np.ndarray):
        """Decode band *jpeg* (rows *top* .. *bottom* of *out*): ``(frame, filled)``, *filled* True if
        its converted pixels are in *out*; ``(None, False)`` if it did not decode to a picture of that
        size."""
        import av

        cc = pools._thread_decoder(self, band=bottom - top)
        try:
            frames = cc.decode(av.Packet(jpeg))
        except (av.error.FFmpegError, EOFError) as e:
            log.debug("%s: band decode failed: %s", self.filename, e)
            return None, False
        if len(frames) != 1:
            return None, False
        fr = frames[0]
        if fr.width != out.shape[1] or fr.height != bottom - top or fr.format.name not in _BAND_FORMATS:
            return None, False
        if out.ndim == 2 and out.dtype == np.uint8 and (fr.format.name == "gray" or _full_range_neutral(fr)):
            out[top:bottom] = _plane(fr, 0)
        elif out.shape[0] % 2 == 0:
            out[top:bottom] = self._pixels(fr)
        else:
            return fr, False
        return fr, True

    def _stack(self, frames: list, tops: list[int]):
        """One picture of the decoded bands *frames* (top rows *tops*), in a frame this reader reuses."""
        import av

        f0 = frames[0]
        w, h, fmt = f0.width, tops[-1], f0.format.name
        asm = self._stack_frame
        if asm is None or (asm.width, asm.height, asm.format.name) != (w, h, fmt):
            asm = self._stack_frame = av.VideoFrame(w, h, fmt)
        asm.color_range = f0.color_range
        asm.colorspace = f0.colorspace
        for i, plane in enumerate(asm.planes):
            dst = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
            shift = (f0.height // f0.planes[i].height).bit_length() - 1  # band 0: whole MCU rows
            for fr, top in zip(frames, tops):
                src = _plane(fr, i)
                dst[top >> shift:(top >> shift) + src.shape[0], :src.shape[1]] = src
        return asm
