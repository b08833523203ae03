"""What the subcommands share: their common options, opening stores, selections, progress, errors."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from typing import Any, Iterator

from ...selection import Selection, parse_range
from ..progress import Progress, busy


class CommandError(Exception):
    """A command cannot do what it was asked; the message (one line) names the file and the problem."""


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Help text as written: descriptions and examples keep their lines."""


def add_common(p: argparse.ArgumentParser, *, quiet: bool = False, json: bool = False) -> None:
    """``--debug`` on every command; ``-q/--quiet`` where there is progress; ``--json`` where output is data."""
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="on an error, print the traceback too")
    if quiet:
        p.add_argument("-q", "--quiet", action="store_true", help="no progress, no messages (errors still)")
    if json:
        p.add_argument("--json", action="store_true", help="print the result as JSON")


def open_store(path: str, quiet: bool = False):
    """The store at *path* (folder, metadata.yaml or URL) open for reading; shows that opening goes on
    if it takes more than a second (a store whose index must be built)."""
    from ...stores import new_for_filename

    with busy(f"opening {path}", quiet=quiet):
        return new_for_filename(path)


def progress(args: argparse.Namespace, total: int | None, desc: str, unit: str = "frame") -> Progress:
    return Progress(total, desc, unit=unit, quiet=getattr(args, "quiet", False))


def say(args: argparse.Namespace, text: str) -> None:
    """An informative line on stdout, unless --quiet or --json."""
    if not getattr(args, "quiet", False) and not getattr(args, "json", False):
        print(text, flush=True)


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not positive")
    return v


def _range(allow_datetime: bool):
    def parse(text: str):
        try:
            return parse_range(text, allow_datetime=allow_datetime)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


SELECTION_HELP = """\
A frame is taken if it meets every option given. A range A:B takes A up to, not including,
B; either side may be left out (--time 60: is from the second minute on)."""


def add_selection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("selecting frames", SELECTION_HELP)
    g.add_argument("--start", type=int, default=None, metavar="I",
                   help="first frame index to take (0 is the first frame; negative: from the end)")
    g.add_argument("--stop", type=int, default=None, metavar="I", help="frame index to stop before")
    g.add_argument("--frame-numbers", type=_range(False), default=None, metavar="A:B",
                   help="frames numbered A to B (the camera's frame numbers)")
    g.add_argument("--time", type=_range(True), default=None, metavar="A:B",
                   help="seconds since the first frame (--time 60:120 is the second minute), or ISO "
                        "datetimes, in the recording's time zone unless they carry an offset "
                        "(--time 2026-11-22T16:00:00/2026-11-22T16:05:00; ':' between them works too)")
    g.add_argument("--every", type=positive_int, default=1, metavar="N",
                   help="then only every Nth of those frames (the first, the N+1th, ...)")


def selection_from(args: argparse.Namespace) -> Selection:
    return Selection(start=args.start, stop=args.stop, frame_numbers=args.frame_numbers, time=args.time,
                     every=args.every)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the command stops and leaves its output valid."""


def stop_on_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (as SIGINT raises KeyboardInterrupt)."""
    def handler(signum, frame) -> None:
        raise Terminated()

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        pass


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """Within the block, Ctrl-C and SIGTERM set the event yielded instead of interrupting (a second
    Ctrl-C interrupts at once); the loop inside checks it between frames."""
    stop = threading.Event()

    def handler(signum, frame) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt()
        stop.set()

    try:
        old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        old = {}
    try:
        yield stop
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def print_json(obj: Any) -> None:
    import json

    json.dump(obj, sys.stdout, default=str, indent=1)
    sys.stdout.write("\n")
