"""The names this module had before the video codec became a package: bare decoders are
:mod:`imgstore.codecs.video.decoders`, H.264 bitstream facts :mod:`imgstore.codecs.video.h264`, byte
ranges of a chunk :mod:`imgstore.codecs.video.packet_source`."""

from .video.decoders import (DIRECT_CODECS, IDLE_DECODERS, INTRA_CODECS, decoder_config, direct_decodable,
                             give_back_decoder, make_decoder, orphan_decoder, take_decoder)
from .video.h264 import h264_chroma_format, h264_slice_count
from .video.packet_source import DEFAULT_SPAN_CACHE, MERGE_GAP, PacketSource, merge_spans

__all__ = [
    "DIRECT_CODECS",
    "INTRA_CODECS",
    "PacketSource",
    "direct_decodable",
    "h264_chroma_format",
    "h264_slice_count",
    "give_back_decoder",
    "make_decoder",
    "orphan_decoder",
    "take_decoder",
    "merge_spans",
    "decoder_config",
    "DEFAULT_SPAN_CACHE",
    "MERGE_GAP",
    "IDLE_DECODERS",
]
