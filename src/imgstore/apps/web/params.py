"""Query parameters of the HTTP API, checked strictly: a bad one raises :class:`BadRequest` naming it.

Nothing a client sends is ever used as a file path: parameters are numbers, times,
or one of a fixed set of words.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Any, Iterable, Mapping, Sequence

_INT = re.compile(r"-?[0-9]{1,18}\Z")
_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?\Z")
_MAX_TEXT = 100  # no parameter of the API is longer than this

#: parameters any request may carry besides its own
COMMON_PARAMS = ("token",)


class BadRequest(ValueError):
    """A request whose parameters are missing, malformed or out of range (HTTP 400)."""


class NotFound(LookupError):
    """A frame or store that is not there (HTTP 404)."""


class Query:
    """The parameters of one request: only the expected names, each at most once."""

    def __init__(self, params: Mapping[str, str], allowed: Sequence[str]) -> None:
        names = list(params.keys())
        ok = set(allowed) | set(COMMON_PARAMS)
        for name in names:
            if name not in ok:
                raise BadRequest(f"unknown parameter {_show(name)} (expected: {', '.join(allowed)})")
            getall = getattr(params, "getall", None)
            if names.count(name) > 1 or (getall is not None and len(getall(name)) > 1):
                raise BadRequest(f"parameter {name!r} given more than once")
        self._p = {k: params[k] for k in names}

    def has(self, name: str) -> bool:
        return name in self._p

    def text(self, name: str, default: str | None = None, max_len: int = _MAX_TEXT) -> str | None:
        v = self._p.get(name)
        if v is None:
            return default
        if len(v) > max_len:
            raise BadRequest(f"{name}: value too long")
        return v

    def integer(self, name: str, default: int | None = None, lo: int | None = None,
                hi: int | None = None) -> int | None:
        """An integer parameter within [lo, hi]."""
        v = self.text(name)
        if v is None:
            return default
        if not _INT.match(v):
            raise BadRequest(f"{name}: {_show(v)} is not an integer")
        n = int(v)
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise BadRequest(f"{name}: {n} is out of range ({_range(lo, hi)})")
        return n

    def number(self, name: str, default: float | None = None) -> float | None:
        """A finite decimal number."""
        v = self.text(name)
        if v is None:
            return default
        return parse_number(v, name)

    def choice(self, name: str, choices: Iterable[str], default: str | None = None) -> str | None:
        v = self.text(name)
        if v is None:
            return default
        choices = tuple(choices)
        if v not in choices:
            raise BadRequest(f"{name}: {_show(v)} is not one of {', '.join(choices)}")
        return v

    def flag(self, name: str, default: bool) -> bool:
        v = self.choice(name, ("0", "1", "true", "false"))
        return default if v is None else v in ("1", "true")

    def one_of(self, names: Sequence[str], required: bool = True) -> str | None:
        """The single one of *names* given (BadRequest if several, or none when *required*)."""
        given = [n for n in names if n in self._p]
        if len(given) > 1:
            raise BadRequest(f"give only one of {', '.join(names)} (got {', '.join(given)})")
        if not given:
            if required:
                raise BadRequest(f"give one of {', '.join(names)}")
            return None
        return given[0]


def parse_number(v: str, name: str) -> float:
    """A finite float from decimal text (no NaN, no infinities, no hex)."""
    if not _FLOAT.match(v):
        raise BadRequest(f"{name}: {_show(v)} is not a number")
    x = float(v)
    if not math.isfinite(x):
        raise BadRequest(f"{name}: {_show(v)} is not a finite number")
    return x


def parse_time(v: str, name: str, tz: Any) -> float:
    """Seconds since the epoch from a number or an ISO 8601 datetime (naive: in the time zone *tz*)."""
    if _FLOAT.match(v):
        return parse_number(v, name)
    if len(v) > _MAX_TEXT:
        raise BadRequest(f"{name}: value too long")
    text = v.strip().replace(" ", "T", 1) if "T" not in v else v.strip()
    try:
        dt = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name}: {_show(v)} is neither seconds since the epoch nor an ISO 8601 datetime") from None
    if dt.tzinfo is None:
        localize = getattr(tz, "localize", None)  # pytz zones need localize, others take replace
        dt = localize(dt) if localize is not None else dt.replace(tzinfo=tz)
    try:
        return dt.timestamp()
    except (OverflowError, OSError, ValueError):
        raise BadRequest(f"{name}: {_show(v)} is out of range") from None


def parse_levels(v: str | None, name: str = "levels") -> tuple[float, float] | None:
    """``LO,HI`` gray levels (LO < HI) or None."""
    if v is None:
        return None
    parts = v.split(",")
    if len(parts) != 2:
        raise BadRequest(f"{name}: expected LO,HI (two numbers), got {_show(v)}")
    lo, hi = (parse_number(p.strip(), name) for p in parts)
    if not lo < hi:
        raise BadRequest(f"{name}: LO must be below HI (got {lo:g},{hi:g})")
    return lo, hi


def parse_int_list(v: str, name: str, max_items: int) -> list[int]:
    """Comma-separated integers, at most *max_items*."""
    parts = [p for p in v.split(",") if p != ""]
    if not parts:
        raise BadRequest(f"{name}: expected comma-separated integers")
    if len(parts) > max_items:
        raise BadRequest(f"{name}: at most {max_items} values")
    out = []
    for p in parts:
        if not _INT.match(p):
            raise BadRequest(f"{name}: {_show(p)} is not an integer")
        out.append(int(p))
    return out


def _range(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"{lo}..{hi}"
    return f">= {lo}" if lo is not None else f"<= {hi}"


def _show(v: str) -> str:
    """*v* quoted for an error message, cut short and without control characters."""
    v = "".join(c if c.isprintable() else "?" for c in v[:40])
    return repr(v)
