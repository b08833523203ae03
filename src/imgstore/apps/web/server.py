"""The web server: the page and its static files, the API, and running until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.resources
import logging
import os
import signal
import socket
from typing import Callable, Sequence

from aiohttp import web

from .api import Api
from .guard import SECURITY_HEADERS, cookie_name, errors_middleware, guard_middleware, is_loopback, json_error
from .served import ServedStore

_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
          ".txt": "text/plain", ".png": "image/png"}


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every file of the package's ``static`` folder: relative path -> (content, content type)."""
    out: dict[str, tuple[bytes, str]] = {}

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            name = prefix + child.name
            if child.is_dir():
                walk(child, name + "/")
            elif os.path.splitext(name)[1] in _TYPES:
                out[name] = (child.read_bytes(), _TYPES[os.path.splitext(name)[1]])

    walk(importlib.resources.files(__package__).joinpath("static"), "")
    return out


def make_app(stores: Sequence[ServedStore], align: str, token: str | None, loopback: bool,
             pool: concurrent.futures.Executor) -> web.Application:
    """The aiohttp application serving *stores*."""
    app = web.Application(middlewares=[errors_middleware, guard_middleware(token, loopback)],
                          client_max_size=64 * 1024)
    app["port_box"] = {}
    files = static_files()
    api = Api(stores, align, pool)

    async def page(request: web.Request) -> web.Response:
        resp = _file_response(files["index.html"])
        port = request.app["port_box"].get("port")
        if token and "token" in request.query and port is not None:
            resp.set_cookie(cookie_name(port), request.query["token"], httponly=True, samesite="Strict", path="/")
        return resp

    async def static(request: web.Request) -> web.Response:
        f = files.get(request.match_info["name"])
        if f is None:
            return json_error(404, "not found")
        return _file_response(f)

    app.add_routes([web.get("/", page), web.get("/static/{name:[A-Za-z0-9_./-]{1,100}}", static), *api.routes()])
    return app


def _file_response(f: tuple[bytes, str]) -> web.Response:
    body, ctype = f
    return web.Response(body=body, content_type=ctype, charset="utf-8" if ctype.startswith("text") else None,
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


def display_url(host: str, port: int, token: str | None) -> str:
    """The URL to print: the machine's name when listening on every interface."""
    shown = host
    if host in ("", "0.0.0.0", "::"):
        shown = socket.gethostname()
        try:
            socket.getaddrinfo(shown, port)
        except OSError:
            shown = "127.0.0.1" if host != "::" else "::1"
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


class _OneLine(logging.Filter):
    """aiohttp's own reports (a request it could not parse, say) as one line, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            e = record.exc_info[1]
            record.msg = f"imgstore serve: {record.getMessage()}: {type(e).__name__}: {' '.join(str(e).split())[:200]}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def _quiet_aiohttp_logs() -> None:
    for name in ("aiohttp.server", "aiohttp.web", "aiohttp.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _OneLine) for f in logger.filters):
            logger.addFilter(_OneLine())


async def serve(stores: Sequence[ServedStore], host: str, port: int, align: str, token: str | None,
                on_ready: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM; *on_ready* gets the URL once the port is bound."""
    pool = concurrent.futures.ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)),
                                                 thread_name_prefix="imgstore-web-encode")
    _quiet_aiohttp_logs()
    app = make_app(stores, align, token, is_loopback(host), pool)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        real_port = int(runner.addresses[0][1])
        app["port_box"]["port"] = real_port
        on_ready(display_url(host, real_port, token))
        for s in stores:
            s.warm_up()
        await _until_stopped()
    finally:
        await runner.cleanup()
        pool.shutdown(wait=False, cancel_futures=True)


async def _until_stopped() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # an event loop without signal support
            try:
                signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
            except ValueError:  # not the main thread: the caller stops the loop
                pass
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass
