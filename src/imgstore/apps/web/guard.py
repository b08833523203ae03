"""What stands between a request and the stores: the access token, the Host check, errors as JSON.

* Bound to anything but the loopback interface, the server wants a token on every
  request: ``?token=...``, a ``Authorization: Bearer ...`` header, or the cookie the
  page gets when it is opened with the token; compared in constant time; 401 without.
* Bound to loopback, it answers only requests whose Host header names the loopback
  interface, so that a web page elsewhere cannot reach it by DNS rebinding.
* Every error is a one-line JSON object ``{"error": "..."}``, never a traceback.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
import sys

from aiohttp import web

from .params import BadRequest, NotFound

log = logging.getLogger("imgstore.web")

LOOPBACK_NAMES = ("localhost", "localhost.")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
                                "connect-src 'self'; frame-ancestors 'none'"),
}


def is_loopback(host: str) -> bool:
    """True if *host* (a name or an address) is the loopback interface."""
    h = host.strip("[]")
    if h.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def json_error(status: int, message: str) -> web.Response:
    message = " ".join(str(message).split())  # one line
    return web.json_response({"error": message}, status=status, headers=SECURITY_HEADERS)


def cookie_name(port: int) -> str:
    """The token cookie of the server on *port* (cookies do not tell ports apart)."""
    return f"imgstore_token_{port}"


def guard_middleware(token: str | None, loopback: bool):
    """A middleware that checks the token (when there is one) or the Host header (on loopback)."""
    expected = token.encode() if token else None

    @web.middleware
    async def guard(request: web.Request, handler):
        if expected is not None:
            if not _token_ok(request, expected):
                return json_error(401, "missing or wrong token (open the URL the server printed)")
        elif loopback and not _host_ok(request):
            return json_error(403, "this server answers requests for localhost only")
        return await handler(request)

    return guard


def _token_ok(request: web.Request, expected: bytes) -> bool:
    given = []
    if "token" in request.query:
        given.append(request.query.getone("token"))
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        given.append(auth[7:].strip())
    port = request.app["port_box"].get("port")
    if port is not None and cookie_name(port) in request.cookies:
        given.append(request.cookies[cookie_name(port)])
    ok = False
    for g in given:  # every candidate is compared, in constant time
        ok |= hmac.compare_digest(g.encode("utf-8", "replace"), expected)
    return ok


def _host_ok(request: web.Request) -> bool:
    host = request.headers.get("Host")
    if not host:
        return True  # HTTP/1.0 without Host: not a browser
    if host.startswith("["):  # [v6 address]:port
        name = host[: host.find("]") + 1] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0]
    return is_loopback(name)


@web.middleware
async def errors_middleware(request: web.Request, handler):
    """Errors as one-line JSON; security headers on every answer."""
    try:
        resp = await handler(request)
    except BadRequest as e:
        return json_error(400, str(e))
    except NotFound as e:
        return json_error(404, str(e))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return json_error(e.status, e.reason if e.status != 404 else "not found")
    except (ConnectionResetError, BrokenPipeError):
        raise  # the client went away: nobody to answer
    except Exception as e:  # noqa: BLE001 - a request must never crash the server or show a traceback
        return _internal(request, e)
    if not resp.prepared:
        for k, v in SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
    return resp


def _internal(request: web.Request, e: BaseException) -> web.Response:
    msg = f"{type(e).__name__}: {e}"
    print(f"imgstore serve: {request.method} {request.path}: {' '.join(msg.split())}", file=sys.stderr)
    return json_error(500, msg)


def dumps(obj) -> str:
    """JSON of *obj*; values JSON lacks (datetimes, numpy scalars, NaN) as text or null."""
    return json.dumps(_clean(obj), default=str, allow_nan=False)


def _clean(obj):
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):
        return _clean(obj.tolist())
    return obj
