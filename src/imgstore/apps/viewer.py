"""``imgstore-view``: play back a store with frame number and time, in a Tk window (no OpenCV needed).

Keys: Space pause/play, Right/Left step one frame (when paused), Home/End
first/last frame, '+'/'-' faster/slower, Esc or q quit. The slider seeks.
"""

from __future__ import annotations

import time

import numpy as np

from ..color import swap_rb
from .render import render_with_statusbar


class Player:
    """Playback state over a store: which frame, playing or paused, at what speed."""

    def __init__(self, store, fps: float = 30.0, tz=None, statusbar: bool = True, min_width: int = 0) -> None:
        self.store = store
        self.min_width = min_width
        self.fps = fps
        self.tz = tz
        self.statusbar = statusbar
        self.index = 0
        self.playing = True
        self._img = None
        self._md = None

    @property
    def frame_count(self) -> int:
        return self.store.frame_count

    def status(self) -> str:
        fn, ft = self._md
        when = self.store.convert_frame_time_to_datetime(ft, tz=self.tz).isoformat() if np.isfinite(ft) else "?"
        state = "" if self.playing else "  [paused]"
        return f"#{fn}  {when}  ({self.index + 1}/{self.frame_count}){state}"

    def seek(self, index: int) -> None:
        self.index = int(min(max(index, 0), self.frame_count - 1))
        self._img, self._md = self.store.get_image(None, frame_index=self.index)

    def step(self, n: int = 1) -> bool:
        """Move *n* frames; False at either end of the store."""
        target = self.index + n
        if not 0 <= target < self.frame_count:
            return False
        if n == 1 and self._img is not None:
            self._img, self._md = self.store.get_next_image()  # sequential: never seeks
            self.index = target
        else:
            self.seek(target)
        return True

    def toggle(self) -> None:
        self.playing = not self.playing

    def frame(self) -> np.ndarray:
        """The current frame as BGR uint8 with the status bar drawn below it."""
        if self._img is None:
            self.seek(self.index)
        return render_with_statusbar(self._img, self.status() if self.statusbar else None, min_width=self.min_width)


class TkViewer:
    """A Tk window showing a :class:`Player`."""

    def __init__(self, player: Player, title: str = "imgstore") -> None:
        import tkinter as tk

        from PIL import Image, ImageTk

        self._Image, self._ImageTk = Image, ImageTk
        self.player = player
        player.min_width = max(player.min_width, 400)  # room for the status line
        self.root = tk.Tk()
        self.root.title(title)
        self.label = tk.Label(self.root)
        self.label.pack()
        self.slider = tk.Scale(self.root, from_=0, to=max(player.frame_count - 1, 0), orient="horizontal",
                               showvalue=False, command=self._on_slider)
        self.slider.pack(fill="x")
        for key, fn in (("<space>", lambda e: self._toggle()), ("<Escape>", lambda e: self.close()),
                        ("q", lambda e: self.close()), ("<Right>", lambda e: self._step(1)),
                        ("<Left>", lambda e: self._step(-1)), ("<Home>", lambda e: self._seek(0)),
                        ("<End>", lambda e: self._seek(player.frame_count - 1)),
                        ("+", lambda e: self._speed(2.0)), ("-", lambda e: self._speed(0.5))):
            self.root.bind(key, fn)
        self._photo = None
        self._slider_busy = False
        self._closed = False

    def _show(self) -> None:
        rgb = swap_rb(self.player.frame())
        self._photo = self._ImageTk.PhotoImage(self._Image.fromarray(rgb))
        self.label.configure(image=self._photo)
        self._slider_busy = True
        self.slider.set(self.player.index)
        self._slider_busy = False

    def _on_slider(self, value) -> None:
        if not self._slider_busy:
            self._seek(int(float(value)))

    def _seek(self, i: int) -> None:
        self.player.seek(i)
        self._show()

    def _step(self, n: int) -> None:
        if not self.player.playing and self.player.step(n):
            self._show()

    def _toggle(self) -> None:
        self.player.toggle()
        self._show()

    def _speed(self, f: float) -> None:
        self.player.fps = min(max(self.player.fps * f, 0.5), 1000.0)

    def _tick(self) -> None:
        if self._closed:
            return
        t0 = time.perf_counter()
        if self.player.playing:
            if self.player.step(1):
                self._show()
            else:
                self.player.playing = False
                self._show()
        spent = (time.perf_counter() - t0) * 1000
        delay = 1 if self.player.fps <= 0 else max(1, int(1000.0 / self.player.fps - spent))
        self.root.after(delay, self._tick)

    def close(self) -> None:
        self._closed = True
        self.root.destroy()

    def run(self, max_seconds: float | None = None) -> None:
        self.player.seek(0)
        self._show()
        self.root.after(1, self._tick)
        if max_seconds is not None:
            self.root.after(int(max_seconds * 1000), self.close)
        self.root.mainloop()
