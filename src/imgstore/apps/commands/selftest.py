"""``imgstore test``: write and read back every supported format on this installation, pixel-checked."""

from __future__ import annotations

import argparse

from .common import add_common, print_json, progress

NAME = "test"
SUMMARY = "check that every supported format writes and reads back correctly here"
DESCRIPTION = """\
Write a small store in every format this installation supports (gray and colour), read it back
sequentially and at random, and check every frame by the frame number drawn into it. One line
per case; the exit status is 1 if any case failed.

examples:
  imgstore test
  imgstore test --format h264/mkv --format png"""


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", action="append", metavar="FMT", help="only this format (repeatable)")
    add_common(p, quiet=True, json=True)


def run(args: argparse.Namespace) -> int:
    from ..selftest import run_case, selftest_cases

    cases = selftest_cases(args.format)
    results = []
    with progress(args, len(cases), "self-test", unit="case") as bar:
        for fmt, color in cases:
            label, err, seconds = run_case(fmt, color, show_traceback=getattr(args, "debug", False))
            results.append({"format": fmt, "color": color, "ok": err is None, "error": err, "seconds": seconds})
            if not args.json and (err is not None or not args.quiet):
                bar.write(f"PASS {label} ({seconds:.2f} s)" if err is None else f"FAIL {label}: {err}")
            bar.update()
    failed = sum(not r["ok"] for r in results)
    if args.json:
        print_json(results)
    else:
        print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0
