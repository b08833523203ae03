"""Video chunk codecs: one video file per chunk, written and read with FFmpeg through PyAV.

Writing: :mod:`.formats` (what each format writes), :mod:`.writer` (the encoder thread, durability),
:mod:`.remux`. Reading: :mod:`.reader` (``VideoChunkReader``), which decodes packet-direct
(:mod:`.direct`, :mod:`.walker`, :mod:`.bands`) or through the demuxer (:mod:`.demuxed`), reads
ahead (:mod:`.readahead`) and converts pixels (:mod:`.pixels`); the chunk's packet index is
:mod:`.packet_index`. Map of the package: docs/ARCHITECTURE.md; measurements and trade-offs:
docs/design/.

PyAV is imported only when a chunk is written or read, not by importing this package.
"""

from ...color import bgr_to_gray
from .formats import (DEFAULT_FPS, DEFAULT_GOP, FORMAT_ALIASES, FRAGMENT_SECONDS, VIDEO_FORMATS,
                      X265_SMALL_CTU_BELOW, VideoFormat, available_video_formats, format_is_writable,
                      get_video_format, resolve_video_format)
from .mp4_progress import mp4_is_fragmented
from .packet_index import PacketIndex, build_packet_index, load_packet_index, packet_index_key
from .packet_source import PacketSource
from .rates import MAX_CONTAINER_FPS, MIN_CONTAINER_FPS, container_rate, nominal_fps
from .readahead import READ_AHEAD, SEQUENTIAL_CACHE
from .reader import VideoChunkReader
from .remux import remux_video_chunk
from .writer import DEFAULT_QUEUE_SIZE, VideoChunkWriter

__all__ = [
    "VideoFormat",
    "VIDEO_FORMATS",
    "FORMAT_ALIASES",
    "DEFAULT_GOP",
    "DEFAULT_FPS",
    "available_video_formats",
    "get_video_format",
    "resolve_video_format",
    "VideoChunkWriter",
    "VideoChunkReader",
    "bgr_to_gray",
    "remux_video_chunk",
    "mp4_is_fragmented",
    "PacketIndex",
    "PacketSource",
    "build_packet_index",
    "load_packet_index",
    "packet_index_key",
]
