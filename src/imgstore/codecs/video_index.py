"""The names this module had before the video codec became a package: the packet index is
:mod:`imgstore.codecs.video.packet_index`; progress of files being written,
:mod:`imgstore.codecs.video.mkv_progress` and :mod:`imgstore.codecs.video.mp4_progress`."""

from .video.container import open_container, packet_ts
from .video.mkv_progress import MatroskaProgress
from .video.mp4_progress import Mp4FragmentProgress, mp4_is_fragmented
from .video.packet_index import (INDEX_SUFFIX, INDEX_VERSION, PacketIndex, build_packet_index, load_packet_index,
                                 packet_index_key, save_packet_index)

__all__ = [
    "MatroskaProgress",
    "Mp4FragmentProgress",
    "mp4_is_fragmented",
    "PacketIndex",
    "packet_index_key",
    "build_packet_index",
    "load_packet_index",
    "save_packet_index",
    "open_container",
    "packet_ts",
    "INDEX_SUFFIX",
    "INDEX_VERSION",
]
