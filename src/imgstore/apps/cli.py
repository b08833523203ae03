"""The ``imgstore`` command (``imgstore SUBCOMMAND ...``) and the older one-tool commands.

Exit status: 0 success, 1 failure (one line on stderr naming the file and the problem; the
traceback too with ``--debug``), 2 bad usage. ``imgstore-view``, ``imgstore-save``,
``imgstore-test``, ``imgstore-info``, ``imgstore-recover`` and ``imgstore-demo`` are the
subcommands of the same names under their old names.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from .. import __version__
from ..errors import ImgStoreError
from ..process_pool import TaskFailed, WorkerDied
from .commands.common import CommandError, Formatter

#: subcommand -> module in imgstore.apps.commands, in the order --help lists them
COMMANDS = {
    "info": "info",
    "view": "view",
    "save": "save",
    "convert": "convert",
    "export": "export",
    "timecodes": "timecodes",
    "recover": "recover",
    "test": "selftest",
    "demo": "demo",
    "serve": "serve",
}

EPILOG = """\
'imgstore COMMAND --help' tells more about each. Exit status: 0 done, 1 failed (one line
naming the file and the problem; --debug shows the traceback), 2 bad usage.

examples:
  imgstore info mystore
  imgstore convert mystore mystore-h264 --format h264/mkv
  imgstore export mystore clip.mp4 --time 60:90 --overlay
  imgstore export cam1 cam2 side-by-side.mp4"""


def _module(name: str):
    return importlib.import_module(f".commands.{COMMANDS[name]}", __package__)


def _add_command(sub, name: str):
    mod = _module(name)
    p = sub.add_parser(name, help=mod.SUMMARY, description=mod.DESCRIPTION, formatter_class=Formatter,
                       add_help=name != "serve")
    mod.configure(p)
    p.set_defaults(_run=mod.run, _name=name)
    return p


def build_parser(prog: str = "imgstore") -> argparse.ArgumentParser:
    """The ``imgstore`` parser with every subcommand."""
    p = argparse.ArgumentParser(prog=prog, description="Houses long scientific video recordings: look into, "
                                "record, convert, export and check imgstores.", epilog=EPILOG,
                                formatter_class=Formatter)
    p.add_argument("--version", action="version", version=f"imgstore {__version__}")
    p.add_argument("--debug", action="store_true", help="on an error, print the traceback too")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        _add_command(sub, name)
    return p


def build_command_parser(name: str, prog: str) -> argparse.ArgumentParser:
    """A parser for one subcommand alone (the older commands, e.g. ``imgstore-info``)."""
    mod = _module(name)
    p = argparse.ArgumentParser(prog=prog, description=mod.DESCRIPTION, formatter_class=Formatter)
    mod.configure(p)
    p.set_defaults(_run=mod.run, _name=name)
    return p


#: failures whose message says it all (the others get their class name in front)
_PLAIN = (CommandError, ImgStoreError, OSError, ValueError, ImportError, TaskFailed, WorkerDied)


def _error_line(e: BaseException) -> str:
    if isinstance(e, _PLAIN):
        text = str(e) or e.__class__.__name__
    else:
        text = f"{e.__class__.__name__}: {e}"
    return " ".join(text.split()) or e.__class__.__name__


def _execute(args: argparse.Namespace, prog: str) -> int:
    """Run a parsed command; failures become one line on stderr and exit status 1."""
    try:
        return int(args._run(args) or 0)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader of our output went away (| head): nothing more to say
        sys.stdout = open(os.devnull, "w")
        return 1
    except Exception as e:  # noqa: BLE001 - every failure is reported the same way
        if getattr(args, "debug", False):
            traceback.print_exc()
            if isinstance(e, TaskFailed):
                print(e.remote_traceback, file=sys.stderr)
        hint = "" if getattr(args, "debug", False) or isinstance(e, _PLAIN) else " (--debug shows where)"
        print(f"{prog}: error: {_error_line(e)}{hint}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    """``imgstore ...``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    lead = [a for a in argv[:2] if a == "--debug"]
    rest = argv[len(lead):]
    if rest and rest[0] == "serve":  # every argument goes to the web viewer, --help included
        from .commands import serve

        args = argparse.Namespace(args=rest[1:], debug=bool(lead), _run=serve.run)
        return _execute(args, "imgstore serve")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help(sys.stderr)
        return 2
    return _execute(args, f"imgstore {args._name}")


def console_main() -> None:
    sys.exit(main())


def run_legacy(name: str, prog: str, argv: list[str] | None = None) -> int:
    """An older one-tool command: subcommand *name* under the name *prog*; returns the exit status."""
    args = build_command_parser(name, prog).parse_args(sys.argv[1:] if argv is None else argv)
    return _execute(args, prog)


def _exit_on_failure(rc: int) -> None:
    if rc:
        raise SystemExit(rc)


def main_viewer(argv: list[str] | None = None) -> None:
    """``imgstore-view`` (= ``imgstore view``)."""
    _exit_on_failure(run_legacy("view", "imgstore-view", argv))


def main_saver(argv: list[str] | None = None) -> None:
    """``imgstore-save`` (= ``imgstore save``)."""
    _exit_on_failure(run_legacy("save", "imgstore-save", argv))


def main_test(argv: list[str] | None = None) -> None:
    """``imgstore-test`` (= ``imgstore test``); always exits with its status, as before."""
    raise SystemExit(run_legacy("test", "imgstore-test", argv))


def main_demo(argv: list[str] | None = None) -> None:
    """``imgstore-demo`` (= ``imgstore demo``)."""
    _exit_on_failure(run_legacy("demo", "imgstore-demo", argv))


def main_info(argv: list[str] | None = None) -> None:
    """``imgstore-info`` (= ``imgstore info``)."""
    _exit_on_failure(run_legacy("info", "imgstore-info", argv))


if __name__ == "__main__":
    console_main()
