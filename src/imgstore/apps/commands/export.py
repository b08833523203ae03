"""``imgstore export STORE [STORE ...] OUT.mp4|OUT.mkv``: a clip to share, one H.264 file."""

from __future__ import annotations

import argparse

from .common import (CommandError, add_common, add_selection, positive_int, print_json, progress, say,
                     selection_from, stop_on_sigterm)

NAME = "export"
SUMMARY = "a clip to share: one H.264 MP4/MKV of a store, or of several tiled side by side"
DESCRIPTION = """\
Write the frames of a store, or a selection of them, as one H.264 (yuv420p) video that plays in
browsers, VLC and QuickTime, at the recorded timing: an .mkv keeps every frame's own timestamp;
an .mp4 plays at the median frame rate of the frames exported (--vfr: every frame's own
timestamp too). Several stores are aligned (by frame number, or by time: see --align-by) and
tiled side by side; the selection then picks rows of the alignment (frame index = row; frame
numbers and times of the first store, or the aligned key).

examples:
  imgstore export mystore clip.mp4 --time 60:90 --overlay
  imgstore export mystore clip.mkv --every 10 --scale 0.5
  imgstore export cam1 cam2 cam3 both.mp4 --align-by frame_time --missing black --overlay"""


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("stores", nargs="+", metavar="STORE", help="a store (folder, metadata.yaml or URL); several: "
                                                             "tiled side by side")
    p.add_argument("out", metavar="OUT", help="the file to write: .mp4 or .mkv")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--vfr", action="store_true", help="MP4: every frame at its own timestamp (not a constant rate)")
    p.add_argument("--scale", default=None, metavar="S",
                   help="size of each store's frames: a factor (0.5) or WxH (640x480; 640x or x480 keep the aspect)")
    p.add_argument("--overlay", action="store_true", help="draw each frame's number and local time into it")
    p.add_argument("--crf", type=int, default=20, help="x264 quality: lower is better and bigger (default 20)")
    p.add_argument("--preset", default="veryfast", help="x264 speed preset (default veryfast)")
    g = p.add_argument_group("several stores")
    g.add_argument("--align-by", choices=("frame_number", "frame_time"), default="frame_number",
                   help="frame_number (default): frames with the same number side by side; frame_time: each "
                        "frame of the first store with the others' frames nearest in time")
    g.add_argument("--tolerance", type=float, default=None, metavar="S",
                   help="frame_time: the farthest (seconds) a frame may be from the first store's (default: "
                        "half that store's frame interval)")
    g.add_argument("--missing", choices=("drop", "hold", "black"), default="drop",
                   help="where a store has no frame: drop the row (default), hold its previous frame, or black")
    g.add_argument("--columns", type=positive_int, default=None, metavar="N",
                   help="tiles per row (default: all side by side)")
    add_selection(p)
    add_common(p, quiet=True, json=True)


def run(args: argparse.Namespace) -> int:
    from ..export import export_video
    from ..tiles import parse_scale
    from .common import open_store

    paths, out = args.stores, args.out
    try:
        scale = parse_scale(args.scale)
    except ValueError as e:
        raise CommandError(f"--scale: {e}") from None
    stores = [open_store(p, quiet=args.quiet) for p in paths]
    stop_on_sigterm()
    with progress(args, None, "export") as bar:
        def report(done: int, total: int) -> None:
            if bar.total != total:
                bar.set_total(total)
            bar.set(done)

        try:
            result = export_video(stores, out, selection=selection_from(args), by=args.align_by,
                                  tolerance=args.tolerance, missing=args.missing, scale=scale,
                                  columns=args.columns, overlay=args.overlay, vfr=args.vfr, crf=args.crf,
                                  preset=args.preset, overwrite=args.overwrite, progress=report)
        except KeyboardInterrupt:
            raise CommandError(f"{out}: interrupted (the unfinished file was removed)") from None
    if args.json:
        print_json(result.to_json())
    else:
        timing = f"{result.frame_rate:.3f} fps" if result.frame_rate else "each frame's own timestamp"
        say(args, f"{out}: {result.frames} frames, {result.width}x{result.height}, {result.duration_s:.1f} s "
                  f"({timing})")
    return 0
