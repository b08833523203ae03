"""The ``.lock`` file: which process is writing a store.

The original creates an empty ``.lock`` and never checks it. We write the
writer's pid, host and start time, refuse a second writer while that process
lives, and recognise a lock left by a dead process (or an empty one left by the
original) as stale.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass

from ..constants import STORE_LOCK_FILENAME
from ..storage import Storage


@dataclass(frozen=True)
class LockInfo:
    pid: int | None
    host: str | None
    started: float | None

    @property
    def is_local(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        """True if the holder may still be running (unknown holders on other hosts count as alive)."""
        if self.pid is None:
            return False  # empty lock: written by the original, holder unknown
        if not self.is_local:
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _not_zombie(self.pid)

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started)) if self.started else "?"
        return f"pid {self.pid} on host {self.host} since {when}"


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def read_lock(storage: Storage) -> LockInfo | None:
    """The current lock holder, None if the store is not locked."""
    try:
        data = storage.read_bytes(STORE_LOCK_FILENAME)
    except (FileNotFoundError, OSError):
        return None
    try:
        doc = json.loads(data.decode("utf-8") or "{}")
        if not isinstance(doc, dict):
            doc = {}
    except (ValueError, UnicodeDecodeError):
        doc = {}
    pid = doc.get("pid")
    return LockInfo(pid if isinstance(pid, int) else None, doc.get("host"), doc.get("started"))


def lock_payload() -> bytes:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode()


def is_live_writer(storage: Storage) -> bool:
    """True while a live process holds the store's lock."""
    info = read_lock(storage)
    return info is not None and info.alive()
