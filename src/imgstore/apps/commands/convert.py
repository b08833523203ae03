"""``imgstore convert SRC DEST --format FMT``: a store, or a selection of its frames, in another format."""

from __future__ import annotations

import argparse

from .common import (CommandError, add_common, add_selection, positive_int, print_json, progress, say,
                     selection_from, stop_on_sigterm)

NAME = "convert"
SUMMARY = "a store (or a selection of its frames) in another format, in parallel, resumable"
DESCRIPTION = """\
Write the frames of store SRC (a folder, its metadata.yaml, or a URL), or a selection of them,
to a new store DEST in another format. Frame numbers, frame times, extra data (with the frames
they belong to) and user metadata are kept exactly; lossless formats keep every pixel. Chunks are
converted in parallel, one worker per core. Ctrl-C or SIGTERM stops it leaving DEST a valid store
of the chunks finished; --resume continues it.

examples:
  imgstore convert week1 week1-h264 --format h264/mkv
  imgstore convert week1 week1-ffv1 --format ffv1/mkv --chunksize 5000
  imgstore convert week1 day3 --format h264/mkv --time 2026-11-24T00:00/2026-11-25T00:00
  imgstore convert week1 preview --format h264/mkv --every 10 --option crf=28
  imgstore convert week1 week1-h264 --resume"""


def _key_value(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="the store to convert (folder, metadata.yaml or URL)")
    p.add_argument("dest", metavar="DEST", help="the new store's folder")
    p.add_argument("--format", default=None, metavar="FMT",
                   help="the new store's format, e.g. h264/mkv, ffv1/mkv (lossless), mjpeg/avi, png, npy "
                        "('imgstore demo --list-formats' lists them); required unless --resume")
    p.add_argument("--chunksize", type=positive_int, default=None, metavar="N",
                   help="frames per chunk of the new store (default: the source's)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted convert into DEST")
    p.add_argument("--overwrite", action="store_true", help="replace DEST if it is a store already")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="processes converting chunks at once (default: one per core)")
    g = p.add_argument_group("codec options (video formats)")
    g.add_argument("--fps", type=float, default=None, help="the container's nominal frame rate "
                                                           "(default: from the frame times)")
    g.add_argument("--gop", type=positive_int, default=None, metavar="N", help="keyframe interval")
    g.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="encoder threads per worker (default: 1 with several workers)")
    g.add_argument("--option", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="an FFmpeg encoder option (repeatable), e.g. --option crf=18 --option preset=slow")
    add_selection(p)
    add_common(p, quiet=True, json=True)


def codec_options(args: argparse.Namespace) -> dict:
    out: dict = {}
    for name in ("fps", "gop", "threads"):
        if getattr(args, name) is not None:
            out[name] = getattr(args, name)
    if args.option:
        out["encoder_options"] = dict(args.option)
    return out


def run(args: argparse.Namespace) -> int:
    from ...conversion import convert, convert_status
    from .common import open_store

    if not args.format and not args.resume:
        raise CommandError("--format is required (or --resume to continue an interrupted convert)")
    src = open_store(args.src, quiet=args.quiet)
    stop_on_sigterm()
    bar = progress(args, None, "convert")

    def report(done: int, total: int) -> None:
        if bar.total != total:
            bar.set_total(total)
        bar.set(done)

    try:
        result = convert(src, args.dest, args.format, chunksize=args.chunksize, selection=selection_from(args),
                         workers=args.workers, resume=args.resume, overwrite=args.overwrite, progress=report,
                         **codec_options(args))
    except KeyboardInterrupt:
        bar.close(summary=False)
        status = convert_status(args.dest)
        done = f"{status[0]} of {status[1]} chunks done, " if status else ""
        raise CommandError(f"{args.dest}: interrupted ({done}a valid store of those); "
                           f"'imgstore convert {args.src} {args.dest} --resume' continues it") from None
    except BaseException:
        bar.close(summary=False)
        raise
    bar.close()
    if args.json:
        print_json(result.to_json())
    else:
        rate = result.frames / result.seconds if result.seconds > 0 else 0.0
        again = f", {result.chunks_already_done} were done before" if result.chunks_already_done else ""
        say(args, f"{result.dest}: {result.frames} frames as {result.format} in {result.chunks} chunks{again} "
                  f"({result.workers} workers, {result.seconds:.1f} s, {rate:.0f} frames/s)")
    return 0
