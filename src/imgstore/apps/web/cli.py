"""``imgstore serve``: show stores in a web browser, from a small server in the package.

The first line printed on standard output is the page's URL. Exit status: 0 after
Ctrl-C or SIGTERM, 2 for a bad argument or a store that cannot be opened, 1 when
the server cannot listen where asked.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import sys
import webbrowser

from .guard import is_loopback, new_token
from .lookup import ALIGN_MODES

PROG = "imgstore serve"
DEFAULT_PORT = 8080


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Serve imgstores to a web browser: frames, timeline, gaps, extra data.",
        epilog="On any host but the loopback interface every request needs the random token printed in the URL.")
    p.add_argument("stores", nargs="+", metavar="PATH_OR_URL",
                   help="store folder, its metadata.yaml, or an fsspec URL (several: shown side by side)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0: a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1; any other needs the token)")
    p.add_argument("--align", choices=ALIGN_MODES, default="frame_time",
                   help="how the other stores follow the first one (default frame_time)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the server until Ctrl-C or SIGTERM; the exit status."""
    p = build_parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed
        return int(e.code or 0)
    if not 0 <= args.port <= 65535:
        return _fail(f"--port {args.port}: not a TCP port (0..65535)", 2)
    host = "127.0.0.1" if args.host.lower() == "localhost" else args.host
    stores = _open_all(args.stores)
    if stores is None:
        return 2
    token = None if is_loopback(host) else new_token()

    def ready(url: str) -> None:
        print(url, flush=True)
        names = ", ".join(s.summary["name"] for s in stores)
        print(f"{PROG}: serving {len(stores)} store(s): {names} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        if args.open:
            webbrowser.open(url)

    from .server import serve

    try:
        asyncio.run(serve(stores, host, args.port, args.align, token, ready))
    except OSError as e:
        why = "address already in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        return _fail(f"cannot listen on {host}:{args.port}: {why}", 1)
    except KeyboardInterrupt:
        pass
    finally:
        for s in stores:
            s.close()
    return 0


def _open_all(locations: list[str]):
    """The stores, opened; None (after saying why) if one cannot be."""
    from ...stores import new_for_filename
    from .served import ServedStore

    stores = []
    for i, loc in enumerate(locations):
        try:
            stores.append(ServedStore(i, loc, new_for_filename))
        except Exception as e:  # noqa: BLE001 - any failure to open is reported as one line
            msg = " ".join(str(e).split()) or type(e).__name__
            _fail(msg if loc in msg else f"{loc}: {msg}", 2)
            for s in stores:
                s.close()
            return None
    return stores


def _fail(msg: str, code: int) -> int:
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    return code
