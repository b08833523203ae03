"""The HTTP API: the served stores, their frames one at a time or in batches, gaps, extra data, alignment.

Every route names a store by its position in the list the server was started
with (``/api/stores/0/...``); nothing in a request becomes a file path. See the
README's "Browser viewer" section for the parameters and answers.
"""

from __future__ import annotations

import concurrent.futures
import json
import secrets
from typing import Sequence

import numpy as np
from aiohttp import web

from ... import __version__
from .batch import frame_headers, stream_frames
from .guard import SECURITY_HEADERS, dumps
from .imaging import FORMATS, encode_frame
from .lookup import ALIGN_MODES, Target
from .params import BadRequest, NotFound, Query, parse_int_list, parse_levels, parse_time
from .served import ServedStore

MAX_BATCH = 200
MAX_POINTS = 10_000
DEFAULT_POINTS = 2_000
MAX_ALIGN = 1_000
DEFAULT_GAPS = 10_000

FRAME_PARAMS = ("index", "number", "time", "exact", "format", "levels")
FRAMES_PARAMS = ("index", "count", "step", "indices", "format", "levels")
EXTRA_PARAMS = ("start", "stop", "max_points", "columns")
GAPS_PARAMS = ("limit",)
ALIGN_PARAMS = ("store", "index", "number", "time", "exact", "count", "step", "by")
_WHERE = ("index", "number", "time")


class Api:
    """Handlers of the ``/api`` routes over the served stores."""

    def __init__(self, stores: Sequence[ServedStore], align: str, pool: concurrent.futures.Executor) -> None:
        self.stores = list(stores)
        self.align = align
        self.pool = pool

    def routes(self) -> list[web.RouteDef]:
        sid = "{sid:[0-9]{1,6}}"
        return [
            web.get("/api/config", self.config),
            web.get("/api/stores", self.list_stores),
            web.get(f"/api/stores/{sid}", self.one_store),
            web.get(f"/api/stores/{sid}/frame", self.frame),
            web.get(f"/api/stores/{sid}/frames", self.frames),
            web.get(f"/api/stores/{sid}/extra", self.extra),
            web.get(f"/api/stores/{sid}/gaps", self.gaps),
            web.get("/api/align", self.aligned),
        ]

    # ------------------------------------------------------------------ helpers
    def _store(self, request: web.Request) -> ServedStore:
        i = int(request.match_info["sid"])
        if i >= len(self.stores):
            raise NotFound(f"no store {i} (serving {len(self.stores)})")
        return self.stores[i]

    @staticmethod
    def _target(q: Query, s: ServedStore) -> Target:
        by = q.one_of(_WHERE)
        if by == "time":
            return Target("time", parse_time(q.text("time"), "time", s.tz))
        value = q.integer(by)
        return Target(by, value, exact=q.flag("exact", True))

    @staticmethod
    def _encoding(q: Query, s: ServedStore) -> tuple[str, tuple[float, float] | None]:
        fmt = q.choice("format", FORMATS, default=s.summary["default_format"])
        return fmt, parse_levels(q.text("levels"))

    @staticmethod
    def _json(obj, status: int = 200, headers: dict | None = None) -> web.Response:
        return web.Response(text=dumps(obj), status=status, content_type="application/json",
                            headers={"Cache-Control": "no-cache", **(headers or {})})

    # ------------------------------------------------------------------ routes
    async def config(self, request: web.Request) -> web.Response:
        Query(request.query, ())
        return self._json({"version": __version__, "align": self.align, "align_modes": list(ALIGN_MODES),
                           "stores": len(self.stores), "max_batch": MAX_BATCH, "max_points": MAX_POINTS})

    async def list_stores(self, request: web.Request) -> web.Response:
        Query(request.query, ())
        return self._json([s.summary for s in self.stores])

    async def one_store(self, request: web.Request) -> web.Response:
        Query(request.query, ())
        return self._json(self._store(request).summary)

    async def frame(self, request: web.Request) -> web.Response:
        s = self._store(request)
        q = Query(request.query, FRAME_PARAMS)
        target = self._target(q, s)
        fmt, levels = self._encoding(q, s)
        fr = await s.on_frames_thread(s.read_target, target)
        if fr is None:
            raise NotFound(f"store {s.sid} has no frame with {target.by} {q.text(target.by)}")
        enc = await request.loop.run_in_executor(self.pool, encode_frame, fr.image, fmt, levels)
        headers = {**frame_headers(fr, enc), "Cache-Control": "private, max-age=600"}
        return web.Response(body=enc.data, content_type=enc.content_type, headers=headers)

    async def frames(self, request: web.Request) -> web.StreamResponse:
        s = self._store(request)
        q = Query(request.query, FRAMES_PARAMS)
        fmt, levels = self._encoding(q, s)
        indices = self._batch(q, s)
        boundary = "imgstore-" + secrets.token_hex(12)
        resp = web.StreamResponse(headers={**SECURITY_HEADERS, "Cache-Control": "no-store",
                                           "Content-Type": f"multipart/mixed; boundary={boundary}",
                                           "X-Frame-Count": str(len(indices))})
        await resp.prepare(request)
        await stream_frames(resp, s, indices, fmt, levels, self.pool, boundary)
        return resp

    def _batch(self, q: Query, s: ServedStore) -> list[int]:
        n = s.frame_count
        if q.has("indices"):
            if q.has("index") or q.has("count") or q.has("step"):
                raise BadRequest("give either indices or index (with count and step)")
            indices = parse_int_list(q.text("indices", max_len=20 * MAX_BATCH), "indices", MAX_BATCH)
            bad = [i for i in indices if not 0 <= i < n]
            if bad:
                raise NotFound(f"store {s.sid} has no frame index {bad[0]} ({n} frames)")
            return indices
        start = q.integer("index")
        if start is None:
            raise BadRequest("give index (and count, step) or indices")
        count = q.integer("count", 16, lo=1, hi=MAX_BATCH)
        step = q.integer("step", 1, lo=1, hi=100_000)
        if not 0 <= start < n:
            raise NotFound(f"store {s.sid} has no frame index {start} ({n} frames)")
        return list(range(start, min(start + count * step, n), step))

    async def extra(self, request: web.Request) -> web.Response:
        s = self._store(request)
        q = Query(request.query, EXTRA_PARAMS)
        start = parse_time(q.text("start"), "start", s.tz) if q.has("start") else None
        stop = parse_time(q.text("stop"), "stop", s.tz) if q.has("stop") else None
        if start is not None and stop is not None and stop < start:
            raise BadRequest("stop is before start")
        max_points = q.integer("max_points", DEFAULT_POINTS, lo=2, hi=MAX_POINTS)
        cols = q.text("columns", max_len=4096)
        names = [c for c in cols.split(",") if c] if cols is not None else None
        series = await s.on_meta_thread(s.series)
        try:
            data = await s.on_meta_thread(series.window, start, stop, max_points, names)
        except KeyError as e:
            raise BadRequest(f"columns: store {s.sid} has no extra-data column {e.args[0]!r}") from None
        body = json.dumps({"store": s.sid, **data}, allow_nan=False)
        return web.Response(text=body, content_type="application/json", headers={"Cache-Control": "no-cache"})

    async def gaps(self, request: web.Request) -> web.Response:
        s = self._store(request)
        q = Query(request.query, GAPS_PARAMS)
        limit = q.integer("limit", DEFAULT_GAPS, lo=0, hi=1_000_000)
        total, gaps = await s.on_meta_thread(s.gaps, limit)
        return self._json(gaps, headers={"X-Gaps-Total": str(total)})

    async def aligned(self, request: web.Request) -> web.Response:
        q = Query(request.query, ALIGN_PARAMS)
        lead_id = q.integer("store", 0, lo=0, hi=len(self.stores) - 1)
        lead = self.stores[lead_id]
        by = q.choice("by", ALIGN_MODES, default=self.align)
        target = self._target(q, lead)
        count = q.integer("count", 1, lo=1, hi=MAX_ALIGN)
        step = q.integer("step", 1, lo=1, hi=100_000)
        i0 = await lead.on_frames_thread(lead.find, target)
        if i0 < 0:
            raise NotFound(f"store {lead_id} has no frame with {target.by} {q.text(target.by)}")
        idx = np.arange(i0, min(i0 + count * step, lead.frame_count), step, dtype=np.int64)
        get_keys = lead.locator.numbers if by == "frame_number" else lead.locator.times
        keys = await lead.on_frames_thread(get_keys, idx)
        out = []
        for s in self.stores:
            if s is lead:
                out.append(idx.tolist())
                continue
            match = s.locator.align_numbers if by == "frame_number" else s.locator.align_times
            out.append(await s.on_frames_thread(match, keys))
        return self._json({"by": by, "store": lead_id, "stores": out})
