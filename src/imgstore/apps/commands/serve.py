"""``imgstore serve ...``: the browser viewer (from ``imgstore.apps.web``), when it is installed."""

from __future__ import annotations

import argparse
import importlib

from .common import CommandError

NAME = "serve"
SUMMARY = "serve stores to a web browser (the web viewer; 'imgstore serve --help' for its options)"
DESCRIPTION = "Serve stores to a web browser. Every argument goes to the web viewer."
WEB_CLI = "imgstore.apps.web.cli"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs=argparse.REMAINDER, help="the web viewer's arguments")


def run_web(argv: list[str]) -> int:
    """Run the web viewer's command line with *argv*; a one-line error if it is not installed."""
    try:
        module = importlib.import_module(WEB_CLI)
    except ModuleNotFoundError as e:
        if e.name and WEB_CLI.startswith(e.name):
            raise CommandError(f"the web viewer is not available in this installation (no module {e.name})") from None
        raise CommandError(f"the web viewer cannot start: {e}") from None
    main = getattr(module, "main", None)
    if main is None:
        raise CommandError(f"{WEB_CLI} has no main(argv) function")
    rc = main(list(argv))
    return int(rc or 0)


def run(args: argparse.Namespace) -> int:
    return run_web(args.args)
