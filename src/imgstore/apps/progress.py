"""Progress of long work on stderr: a bar on a terminal, a plain line every few seconds when not one,
nothing when quiet.

The bar (tqdm) shows frames done, the rate and the time left; the plain lines say the same in
words, and a last line sums up. ``IMGSTORE_PROGRESS_INTERVAL`` (seconds, default 5) sets how
often a plain line is written.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Iterator, TextIO

DEFAULT_INTERVAL_S = 5.0


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("IMGSTORE_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def _duration(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """How much of a job of *total* units (None: unknown) is done, shown on *stream* (stderr).

    ``mode``: ``'bar'`` (a tqdm bar), ``'lines'`` (a line every few seconds and one at the end),
    ``'off'``; by default a bar when the stream is a terminal, lines otherwise, off when *quiet*.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "frame", *, quiet: bool = False,
                 stream: TextIO | None = None, mode: str | None = None, initial: int = 0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if mode is None:
            mode = "off" if quiet else ("bar" if _isatty(self.stream) else "lines")
        self.mode = mode
        self.total = total
        self.desc = desc
        self.unit = unit
        self.done = int(initial)
        self._initial = int(initial)
        self._t0 = time.monotonic()
        self._last_line = self._t0
        self._interval = _interval()
        self._lock = threading.Lock()
        self._closed = False
        self._lines = 0  # plain lines printed
        self._bar = None
        if mode == "bar":
            from tqdm import tqdm

            known = _terminal_size(self.stream) is not None  # a new pseudo-terminal has no size yet
            self._bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, file=self.stream,
                             dynamic_ncols=known, ncols=None if known else 80, nrows=None if known else 20,
                             smoothing=0.1)

    def update(self, n: int = 1) -> None:
        """*n* more units done."""
        self.set(self.done + n)

    def set(self, done: int) -> None:
        """*done* units done in all."""
        with self._lock:
            if self._closed:
                return
            step = int(done) - self.done
            self.done = int(done)
            if self._bar is not None:
                if step:
                    self._bar.update(step)
                return
            if self.mode == "lines":
                now = time.monotonic()
                if now - self._last_line >= self._interval:
                    self._last_line = now
                    self._print(self._status(now))

    def set_total(self, total: int | None) -> None:
        with self._lock:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.refresh()

    def refresh(self) -> None:
        """Show the elapsed time even when nothing moved (for work of unknown length)."""
        with self._lock:
            if self._closed:
                return
            if self._bar is not None:
                self._bar.refresh()
            elif self.mode == "lines":
                now = time.monotonic()
                if now - self._last_line >= self._interval:
                    self._last_line = now
                    self._print(self._status(now))

    def write(self, line: str, file: TextIO | None = None) -> None:
        """Print a line (on stdout by default) without breaking the bar."""
        file = file or sys.stdout
        if self._bar is not None:
            self._bar.write(line, file=file)
        else:
            print(line, file=file, flush=True)

    def _rate(self, now: float) -> float:
        dt = now - self._t0
        return (self.done - self._initial) / dt if dt > 0 else 0.0

    def _status(self, now: float) -> str:
        rate = self._rate(now)
        units = f"{self.unit}s"
        if self.total:
            pct = 100.0 * self.done / self.total
            left = f", {_duration((self.total - self.done) / rate)} left" if rate > 0 else ""
            return f"{self.desc}: {self.done}/{self.total} {units} ({pct:.0f}%), {rate:.1f} {units}/s{left}"
        return f"{self.desc}: {self.done} {units}, {rate:.1f} {units}/s, {_duration(now - self._t0)} so far"

    def _print(self, text: str) -> None:
        self._lines += 1
        try:
            print(text, file=self.stream, flush=True)
        except (OSError, ValueError):
            pass

    def close(self, summary: bool = True) -> None:
        """Finish the bar; in line mode, print a last line saying what was done (unless not *summary*, or
        the work took less than a second and printed nothing)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._bar is not None:
                self._bar.close()
            elif self.mode == "lines" and summary and (self._lines or time.monotonic() - self._t0 >= 1.0):
                now = time.monotonic()
                self._print(f"{self.desc}: {self.done} {self.unit}s in {_duration(now - self._t0)} "
                            f"({self._rate(now):.1f} {self.unit}s/s)")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(summary=exc_type is None)


def _terminal_size(stream) -> os.terminal_size | None:
    """The size of the terminal *stream* is (None when it does not say, as a new pseudo-terminal)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return None
    return size if size.columns > 0 and size.lines > 0 else None


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def busy(desc: str, *, quiet: bool = False, delay: float = 1.0, stream: TextIO | None = None) -> Iterator[None]:
    """Show that work of unknown length is going on (*desc* and the time so far) once it has taken
    *delay* seconds; shows nothing for work that ends sooner."""
    if quiet:
        yield
        return
    stop = threading.Event()
    shown: list[Progress] = []

    def tick() -> None:
        if stop.wait(delay):
            return
        p = Progress(None, desc, unit="second", stream=stream)
        shown.append(p)
        while not stop.wait(0.25):
            p.set(int(time.monotonic() - p._t0))
            p.refresh()

    t = threading.Thread(target=tick, name="imgstore-busy", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        for p in shown:
            p.close(summary=False)
