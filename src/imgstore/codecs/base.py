"""What every chunk codec provides.

A *chunk reader* hands out the frames of one chunk by their position in the
chunk (0-based, write order). A *chunk writer* appends frames to one chunk.
Frames are numpy arrays ``(h, w)`` or ``(h, w, 3)``; colour is BGR.
"""

from __future__ import annotations

import abc
from typing import Sequence

import numpy as np


class ChunkReader(abc.ABC):
    """Random access to the frames of one chunk."""

    @abc.abstractmethod
    def read(self, position: int) -> np.ndarray:
        """The frame at *position* in the chunk."""

    def read_many(self, positions: Sequence[int]) -> list[np.ndarray]:
        """Frames at *positions* (in the order given)."""
        return [self.read(int(p)) for p in positions]

    def entry_positions(self) -> np.ndarray | None:
        """Positions from which a fresh reader reading on in order decodes no frame shown before it (a
        chunk can be cut there and its parts decoded at the same time); None: every position."""
        return None

    def close(self) -> None:
        """Release files and decoders."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ChunkWriter(abc.ABC):
    """Appends frames to one chunk."""

    @abc.abstractmethod
    def write(self, img: np.ndarray) -> None:
        """Append one frame."""

    def flush(self) -> None:
        """Make what was written so far durable where the codec can."""

    @abc.abstractmethod
    def durable_count(self) -> int:
        """How many of the frames written so far are complete on disk, counted in write order."""

    @abc.abstractmethod
    def close(self) -> None:
        """Finish the chunk; after this the chunk is complete on disk."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
