"""Single video files, local or remote: frame tables and exact frames without downloading the file.

pycamhd's job, for any MP4/MOV (and, through the demuxer, MKV/AVI and the
rest of what FFmpeg reads)::

    v = imgstore.open_video('https://example.org/cam/CAMHDA301-20161113T000000Z.mov')
    v.frame_count, v.frame_sizes, v.frame_offsets, v.keyframes
    rgb = v.get_frame(7200, 'rgb24')

For MP4/MOV only the ``moov`` box is read (at either end of the file), then a
frame costs one range read of the packets from its keyframe to itself, fed to
a bare decoder. Other containers are demuxed (once) to build the same table.
"""

from __future__ import annotations

import os
import posixpath
from fractions import Fraction

import numpy as np

from .errors import CorruptChunkError, FrameNotFoundError, UnsupportedFormatError
from .format.mp4 import find_moov, parse_moov
from .storage import open_storage
from .storage.remote import is_url

#: output formats of :meth:`VideoFile.get_frame` (pycamhd's, plus a few)
PIX_FMTS = ("rgb24", "bgr24", "rgb48le", "rgb48be", "bgr48le", "bgr48be", "gray", "gray16le", "gray16be",
            "rgba", "bgra")
_MP4_EXTS = (".mp4", ".mov", ".m4v", ".3gp", ".qt")


class VideoFile:
    """Frame-accurate, read-only access to one video file (see the module docstring)."""

    def __init__(self, location: str, storage_options: dict | None = None) -> None:
        location = os.fspath(location)
        if is_url(location):
            parent, name = location.rstrip("/").rsplit("/", 1)
        else:
            parent, name = os.path.split(os.path.abspath(location))
        self.location = location
        self._storage = open_storage(parent, storage_options=storage_options)
        self._key = name
        self._where = self._storage.describe(name)
        try:
            self.file_size = self._storage.stat(name).size
        except FileNotFoundError:
            raise FrameNotFoundError(f"{self._where}: no such file") from None
        if posixpath.splitext(name)[1].lower() in _MP4_EXTS:
            self._from_moov()
        else:
            self._from_demuxer()
        self._order = np.argsort(self._pts, kind="stable")  # presentation position -> decode index
        self._keys_decode = np.flatnonzero(self._is_key)

    # --- building the frame table --------------------------------------------------
    def _from_moov(self) -> None:
        read = lambda a, b: self._storage.read_range(self._key, a, b)  # noqa: E731
        st = parse_moov(find_moov(read, self.file_size, self._where), self.file_size, self._where)
        if not st.codec:
            raise UnsupportedFormatError(f"{self._where}: video codec {st.fourcc!r} is not supported")
        self.codec = st.codec
        self.width, self.height = st.width, st.height
        self.time_base = Fraction(1, st.timescale)
        self._extradata = st.extradata
        self._pts, self._is_key = st.pts, st.is_key
        self._offsets, self._sizes = st.offset, st.size
        self._direct = True

    def _from_demuxer(self) -> None:
        import av

        path = self._storage.local_path(self._key)
        try:
            c = av.open(path if path is not None else self._storage.open_read(self._key))
            s = c.streams.video[0]
            pts, key, pos, size = [], [], [], []
            for pkt in c.demux(s):
                if not pkt.size:
                    continue
                pts.append(pkt.pts if pkt.pts is not None else (pts[-1] + 1 if pts else 0))
                key.append(bool(pkt.is_keyframe))
                pos.append(pkt.pos if pkt.pos is not None else -1)
                size.append(pkt.size)
            self.codec = s.codec_context.name
            self.width, self.height = s.codec_context.width, s.codec_context.height
            self.time_base = s.time_base
            c.close()
        except (av.error.FFmpegError, IndexError) as e:
            raise CorruptChunkError(f"{self._where}: cannot be read as video ({e})") from None
        self._pts = np.array(pts, np.int64)
        self._is_key = np.array(key, bool)
        self._offsets = np.array(pos, np.int64)
        self._sizes = np.array(size, np.int64)
        self._extradata = b""
        self._direct = False

    # --- the frame table (presentation order) ---------------------------------------------
    @property
    def frame_count(self) -> int:
        return len(self._pts)

    def __len__(self) -> int:
        return self.frame_count

    @property
    def frame_sizes(self) -> np.ndarray:
        """Compressed size in bytes of each frame."""
        return self._sizes[self._order]

    @property
    def frame_offsets(self) -> np.ndarray:
        """Byte offset of each frame's data in the file (-1 where the container does not say)."""
        return self._offsets[self._order]

    @property
    def keyframes(self) -> np.ndarray:
        """True for frames decoding can start at."""
        return self._is_key[self._order]

    @property
    def frame_times(self) -> np.ndarray:
        """Presentation time of each frame in seconds."""
        return self._pts[self._order] * float(self.time_base)

    def get_frame_data(self, n: int) -> bytes:
        """The compressed bytes of frame *n* (MP4/MOV)."""
        d = int(self._order[self._check(n)])
        if self._offsets[d] < 0:
            raise UnsupportedFormatError(f"{self._where}: the container does not give frame offsets")
        return self._storage.read_range(self._key, int(self._offsets[d]), int(self._offsets[d] + self._sizes[d]))

    def _check(self, n) -> int:
        n = int(n)
        if not 0 <= n < self.frame_count:
            raise FrameNotFoundError(f"{self._where}: no frame {n} (the file has {self.frame_count})")
        return n

    # --- decoding -------------------------------------------------------------------------------
    def get_frame(self, n: int, pix_fmt: str = "rgb24") -> np.ndarray:
        """Frame *n* (presentation order) as a numpy array in *pix_fmt* (e.g. ``rgb24``, ``gray16le``)."""
        if pix_fmt not in PIX_FMTS:
            raise ValueError(f"pix_fmt {pix_fmt!r} is not one of {', '.join(PIX_FMTS)}")
        n = self._check(n)
        frame = self._decode_direct(n) if self._direct else self._decode_demuxer(n)
        return frame.to_ndarray(format=pix_fmt)

    def _start_for(self, d: int, target_pts: int) -> int:
        """Decode index of the keyframe to start from for the frame at decode index *d*."""
        i = int(np.searchsorted(self._keys_decode, d, side="right")) - 1
        if i < 0:
            raise CorruptChunkError(f"{self._where}: no keyframe before frame at decode index {d}")
        # a leading frame of an open GOP shows before its keyframe: start one keyframe earlier
        while i > 0 and target_pts < self._pts[self._keys_decode[i]]:
            i -= 1
        return int(self._keys_decode[i])

    def _decode_direct(self, n: int):
        import av

        d = int(self._order[n])
        target = int(self._pts[d])
        k = self._start_for(d, target)
        a = int(self._offsets[k:d + 1].min())
        b = int((self._offsets[k:d + 1] + self._sizes[k:d + 1]).max())
        data = self._storage.read_range(self._key, a, b)  # one request: keyframe .. target
        cc = av.CodecContext.create(self.codec, "r")
        if self._extradata:
            cc.extradata = self._extradata
        cc.width, cc.height = self.width, self.height
        found = None
        try:
            for j in range(k, d + 1):
                o = int(self._offsets[j]) - a
                pkt = av.Packet(data[o: o + int(self._sizes[j])])
                pkt.pts = int(self._pts[j])
                pkt.dts = j
                for fr in cc.decode(pkt):
                    if fr.pts == target:
                        found = fr
            for fr in cc.decode(None):
                if fr.pts == target:
                    found = fr
        except av.error.FFmpegError as e:
            raise CorruptChunkError(f"{self._where}: frame {n} could not be decoded ({e})") from None
        if found is None:
            raise CorruptChunkError(f"{self._where}: frame {n} could not be decoded")
        return found

    def _decode_demuxer(self, n: int):
        import av

        d = int(self._order[n])
        target = int(self._pts[d])
        k = self._start_for(d, target)
        path = self._storage.local_path(self._key)
        with av.open(path if path is not None else self._storage.open_read(self._key)) as c:
            s = c.streams.video[0]
            c.seek(int(self._pts[k]), stream=s, backward=True, any_frame=False)
            for fr in c.decode(s):
                if fr.pts == target:
                    return fr
                if fr.pts is not None and fr.pts > target and fr.key_frame:
                    break
        raise CorruptChunkError(f"{self._where}: frame {n} could not be decoded")

    def __repr__(self) -> str:
        return f"<VideoFile {self.location!r} {self.codec} {self.width}x{self.height} frames={self.frame_count}>"


def open_video(location, storage_options: dict | None = None) -> VideoFile:
    """Open one video file (a local path or an fsspec URL) for frame-accurate reading."""
    return VideoFile(location, storage_options=storage_options)
