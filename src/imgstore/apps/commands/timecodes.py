"""``imgstore timecodes STORE``: the frame times as a 'timecode format v2' file."""

from __future__ import annotations

import argparse
import sys

from .common import CommandError, add_common, open_store

NAME = "timecodes"
SUMMARY = "frame times as an mkvmerge 'timecode format v2' file (as the original wrote)"
DESCRIPTION = """\
Print each frame's time in milliseconds since the first frame, one line per frame in store order,
after the header '# timecode format v2' (byte for byte what the original's
imgstore.apps.generate_timecodes writes). mkvmerge --timestamps 0:FILE or mp4fpsmod re-time a
video of the store's frames with it.

examples:
  imgstore timecodes mystore > mystore.tc.txt
  imgstore timecodes mystore -o mystore.tc.txt"""


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="STORE", help="store folder, its metadata.yaml, or a URL")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    add_common(p)


def run(args: argparse.Namespace) -> int:
    from ..timecodes import generate_timecodes

    with open_store(args.path) as store:
        if args.output is None:
            generate_timecodes(store, sys.stdout)
            return 0
        try:
            with open(args.output, "w") as f:
                generate_timecodes(store, f)
        except OSError as e:
            raise CommandError(f"{args.output}: cannot write ({e.strerror})") from None
    return 0
