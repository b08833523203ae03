"""``imgstore view PATH``: play a store back with its frame number and time."""

from __future__ import annotations

import argparse

from ...errors import OptionalDependencyError
from .common import CommandError, add_common, open_store

NAME = "view"
SUMMARY = "play a store back in a window, with frame number and time"
DESCRIPTION = """\
Play a store back in a window, with each frame's number and local time below it.
Keys: Space pause/play, Left/Right step (paused), Home/End, +/- speed, Esc or q quit; the slider
seeks. The window is Tk (no OpenCV needed); --backend cv2 uses OpenCV's highgui instead.
--export writes one frame (with its status bar) as a PNG and needs no display; --web serves the
store to a browser instead (as 'imgstore serve').

examples:
  imgstore view mystore
  imgstore view mystore --export frame.png --frame-index 100
  imgstore view --web mystore"""


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="store folder, its metadata.yaml, or a URL")
    p.add_argument("--fps", default=30.0, type=float, help="playback speed (0 = as fast as possible; default 30)")
    p.add_argument("--hide-statusbar", action="store_true", help="no frame number and time below the frame")
    p.add_argument("--backend", choices=("tk", "cv2"), default="tk",
                   help="window toolkit: tk (default, no OpenCV needed) or cv2 (OpenCV's highgui)")
    p.add_argument("--export", metavar="PNG", help="instead of a window, write the frame at --frame-index "
                                                     "(with its status bar) as a PNG and exit")
    p.add_argument("--frame-index", type=int, default=0, help="the frame --export writes (default 0)")
    p.add_argument("--web", action="store_true", help="view in a browser ('imgstore serve PATH')")
    web = p.add_argument_group("with --web (as in 'imgstore serve')")
    web.add_argument("--port", type=int, default=None, help="TCP port (0: a free one)")
    web.add_argument("--host", default=None, help="address to bind (default 127.0.0.1; others need the token)")
    web.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)  # for tests: close after S s
    add_common(p)


def web_argv(args: argparse.Namespace) -> list[str]:
    """The 'imgstore serve' arguments that 'view --web' stands for."""
    argv = [args.path]
    if args.port is not None:
        argv += ["--port", str(args.port)]
    if args.host is not None:
        argv += ["--host", args.host]
    if args.open:
        argv.append("--open")
    return argv


def run(args: argparse.Namespace) -> int:
    if args.web:
        from .serve import run_web

        return run_web(web_argv(args))
    from ...util import motif_get_recording_timezone
    from ..viewer import Player

    store = open_store(args.path)
    if not store.frame_count:
        raise CommandError(f"{args.path}: the store holds no frames")
    if args.export and not 0 <= args.frame_index < store.frame_count:
        raise CommandError(f"{args.path}: no frame index {args.frame_index} (the store has {store.frame_count})")
    player = Player(store, fps=args.fps, tz=motif_get_recording_timezone(store), statusbar=not args.hide_statusbar)
    if args.export:
        from ..render import save_png

        player.playing = False
        player.seek(args.frame_index)
        save_png(args.export, player.frame())
        print(args.export)
        return 0
    if args.backend == "cv2":
        _view_cv2(player)
        return 0
    try:
        from ..viewer import TkViewer

        TkViewer(player, title=f"imgstore: {args.path}").run(max_seconds=args.seconds)
    except ImportError as e:
        raise OptionalDependencyError(f"the Tk viewer needs tkinter ({e}); try --backend cv2 or --export") from None
    return 0


def _view_cv2(player) -> None:
    try:
        import cv2  # type: ignore
    except ImportError:
        raise OptionalDependencyError("--backend cv2 needs OpenCV: pip install 'imgstore[opencv]'") from None
    player.seek(0)
    while True:
        cv2.imshow("imgstore", player.frame())
        delay = max(1, int(1000.0 / player.fps)) if player.fps > 0 else 1
        k = cv2.waitKey(delay) & 0xFF
        if k in (27, ord("q")):
            break
        if k == ord(" "):
            player.toggle()
        if player.playing and not player.step(1):
            break
    cv2.destroyAllWindows()
