"""A static HTTP file server on 127.0.0.1 with Range support that counts requests and bytes.

A request is counted before its response is sent, so once a client has its
answer the request is in ``stats`` (counted after it, a request made before a
``stats.reset()`` could land in the next count: that made
``test_sequential_reading_fetches_large_spans`` fail now and then).

Used by the remote-store tests and benchmarks. ``faults`` lets a test make the
server fail (HTTP 500) or stall on paths matching a substring. With
``listings=False`` it is a static server that lists no directories (S3 website
hosting, nginx without autoindex, a CDN): every path ending in ``/`` or naming a
folder answers 404. ``not_found_status=200`` imitates servers (single-page-app
hosting, some CDNs) that answer a missing path with a page and status 200.
"""

from __future__ import annotations

import html
import os
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.requests = 0
            self.bytes = 0
            self.log: list[tuple[str, str, int]] = []

    def add(self, method: str, path: str, n: int) -> None:
        with self.lock:
            self.requests += 1
            self.bytes += n
            self.log.append((method, path, n))


class _HTTPServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client closing its kept-alive connection
            super().handle_error(request, client_address)


class RangeServer:
    """``with RangeServer(root) as srv: srv.url``; ``srv.stats`` counts what was served."""

    def __init__(self, root: str, *, listings: bool = True, not_found_status: int = 404) -> None:
        self.root = os.path.abspath(root)
        self.listings = listings
        self.not_found_status = not_found_status
        self.stats = Stats()
        self.faults: dict[str, str] = {}  # substring of path -> "error" | "stall"
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait between them

            def log_message(self, *a):  # quiet
                pass

            def _fs_path(self):
                rel = urllib.parse.unquote(urllib.parse.urlparse(self.path).path).lstrip("/")
                p = os.path.abspath(os.path.join(server.root, rel))
                if not (p == server.root or p.startswith(server.root + os.sep)):
                    return None
                return p

            def _names_folder(self, p: str) -> bool:
                return os.path.isdir(p) or urllib.parse.urlparse(self.path).path.endswith("/")

            def _fault(self) -> bool:
                for sub, kind in server.faults.items():
                    if sub in self.path:
                        if kind == "stall":
                            time.sleep(30)
                        server.stats.add(self.command, self.path, 0)
                        self.send_response(500)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return True
                return False

            def _send(self, body: bytes, status=200, ctype="application/octet-stream", extra=None, head=False):
                server.stats.add(self.command, self.path, 0 if head else len(body))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _serve(self, head: bool) -> None:
                if self._fault():
                    return
                p = self._fs_path()
                if p is None or not os.path.exists(p) or (not server.listings and self._names_folder(p)):
                    return self._send(b"<html><body>not found</body></html>", server.not_found_status, "text/html",
                                      head=head)
                if os.path.isdir(p):
                    base = self.path if self.path.endswith("/") else self.path + "/"
                    links = "".join(f'<a href="{html.escape(base + n + ("/" if os.path.isdir(os.path.join(p, n)) else ""))}">'
                                    f"{html.escape(n)}</a>\n" for n in sorted(os.listdir(p)))
                    return self._send(f"<html><body>{links}</body></html>".encode(), 200, "text/html", head=head)
                size = os.path.getsize(p)
                rng = self.headers.get("Range")
                if rng:
                    m = _RANGE.match(rng.strip())
                    if not m:
                        return self._send(b"", 416, head=head)
                    a, b = m.groups()
                    if a == "":
                        start, stop = max(0, size - int(b)), size
                    else:
                        start, stop = int(a), (int(b) + 1 if b else size)
                    stop = min(stop, size)
                    if start >= size:
                        return self._send(b"", 416, extra={"Content-Range": f"bytes */{size}"}, head=head)
                    with open(p, "rb") as f:
                        f.seek(start)
                        body = f.read(stop - start)
                    return self._send(body, 206, extra={"Content-Range": f"bytes {start}-{stop - 1}/{size}"},
                                      head=head)
                if head:
                    server.stats.add("HEAD", self.path, 0)
                    self.send_response(200)
                    self.send_header("Content-Length", str(size))
                    self.send_header("Accept-Ranges", "bytes")
                    self.end_headers()
                    return
                with open(p, "rb") as f:
                    return self._send(f.read())

            def do_GET(self):
                self._serve(False)

            def do_HEAD(self):
                self._serve(True)

        self.httpd = _HTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # a short poll: shutdown() at the end of a test waits for it
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> "RangeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
