"""``imgstore recover PATH``: the store of a writer that died, made a normal store again."""

from __future__ import annotations

import argparse

from .. import recover as _recover

NAME = "recover"
SUMMARY = "make the store of a writer that died a normal store again (--dry-run to see)"
DESCRIPTION = _recover.DESCRIPTION


def configure(p: argparse.ArgumentParser) -> None:
    _recover.configure(p)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="on an error, print the traceback too")


def run(args: argparse.Namespace) -> int:
    return _recover.run(args, prog="imgstore recover")
