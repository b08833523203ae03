"""Several frames in one answer, for playback: a ``multipart/mixed`` stream, one part per frame.

Each part has the headers of a single frame (``Content-Type``, ``Content-Length``,
``X-Frame-Index``, ``X-Frame-Number``, ``X-Frame-Time``, ``X-Frame-Datetime``,
``X-Frame-Min``, ``X-Frame-Max``) and the encoded image. Parts are sent as soon
as they are ready: the frames are read one after the other on the store's
thread (decoding on from the previous one) while earlier ones are being encoded
on the encoding pool, so reading and encoding overlap.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import sys
from typing import Sequence

from aiohttp import web

from .imaging import Encoded, encode_frame
from .served import Frame, ServedStore

_IN_FLIGHT = 3  # frames being encoded while the next one is read


def frame_headers(fr: Frame, enc: Encoded) -> dict[str, str]:
    """The ``X-Frame-*`` headers describing *fr*."""
    return {
        "X-Frame-Index": str(fr.index),
        "X-Frame-Number": str(fr.number),
        "X-Frame-Time": repr(fr.time),
        "X-Frame-Datetime": fr.datetime,
        "X-Frame-Min": _num(enc.value_min),
        "X-Frame-Max": _num(enc.value_max),
    }


def part_bytes(boundary: str, fr: Frame, enc: Encoded) -> bytes:
    """One multipart part: its delimiter line, headers, blank line, image and line end."""
    head = {"Content-Type": enc.content_type, "Content-Length": str(len(enc.data)), **frame_headers(fr, enc)}
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
    return f"--{boundary}\r\n{lines}\r\n".encode("ascii", "replace") + enc.data + b"\r\n"


async def stream_frames(resp: web.StreamResponse, s: ServedStore, indices: Sequence[int], fmt: str,
                        levels: tuple[float, float] | None, pool: concurrent.futures.Executor,
                        boundary: str) -> None:
    """Write frames *indices* of *s* to the prepared *resp*, then the closing delimiter.

    A frame that cannot be read ends the answer early (the status is already sent):
    the frames before it are complete parts.
    """
    pending: collections.deque = collections.deque()
    try:
        try:
            await _read_and_write(resp, s, indices, fmt, levels, pool, boundary, pending)
        except (ConnectionResetError, BrokenPipeError, asyncio.CancelledError):
            raise
        except Exception as e:  # noqa: BLE001 - reported on the server, the answer ends cleanly
            print(f"imgstore serve: store {s.sid}: frames cut short: {type(e).__name__}: {e}", file=sys.stderr)
        await resp.write(f"--{boundary}--\r\n".encode())
    except (ConnectionResetError, BrokenPipeError):
        pass  # the page moved on and dropped the request
    finally:
        for _, fut in pending:
            fut.cancel()


async def _read_and_write(resp, s: ServedStore, indices, fmt, levels, pool, boundary, pending) -> None:
    """Read, encode and write every frame; a read error is raised after the frames before it are written."""
    loop = asyncio.get_running_loop()
    error = None
    for i in indices:
        try:
            fr = await s.on_frames_thread(s.read, int(i))
        except Exception as e:  # noqa: BLE001 - raised once the frames read so far are out
            error = e
            break
        pending.append((fr, loop.run_in_executor(pool, encode_frame, fr.image, fmt, levels)))
        fr.image = None
        if len(pending) >= _IN_FLIGHT:
            await _write_next(resp, boundary, pending)
    while pending:
        await _write_next(resp, boundary, pending)
    if error is not None:
        raise error


async def _write_next(resp: web.StreamResponse, boundary: str, pending: collections.deque) -> None:
    fr, fut = pending.popleft()
    enc = await fut
    await resp.write(part_bytes(boundary, fr, enc))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))
