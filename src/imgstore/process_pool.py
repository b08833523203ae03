"""Worker processes for long jobs that can be stopped at once and that notice a worker dying.

``ProcessPool(fn, n)`` runs ``fn(task, counter)`` in *n* spawned processes; ``counter`` is a shared
integer the workers add to (e.g. frames done) and the parent reads for its progress display.
Workers ignore SIGINT (the parent decides what an interrupt means), and exit when their parent
is gone. A worker that dies (killed, crashed) makes :meth:`ProcessPool.results` raise
:class:`WorkerDied` instead of waiting for its result forever.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import traceback
from typing import Any, Callable, Iterator


class WorkerDied(RuntimeError):
    """A worker process ended without returning its task's result."""


class TaskFailed(RuntimeError):
    """A task raised an exception in a worker; the message is that exception's, in one line."""

    def __init__(self, message: str, remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(1)


def _worker_main(fn: Callable, tasks, results, counter, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    while True:
        item = tasks.get()
        if item is None:
            return
        task_id, task = item
        try:
            results.put((task_id, True, fn(task, counter)))
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            text = str(e).splitlines()[0] if str(e) else ""
            msg = text if isinstance(e, (OSError, ValueError)) and text else f"{e.__class__.__name__}: {text}"
            results.put((task_id, False, (f"in a worker: {msg}", traceback.format_exc())))


class ProcessPool:
    """*n* worker processes running one module-level function on the tasks given them."""

    def __init__(self, fn: Callable[[Any, Any], Any], n: int) -> None:
        ctx = mp.get_context("spawn")
        self.counter = ctx.Value("q", 0)
        self._tasks = ctx.Queue()
        self._results = ctx.Queue()
        self._outstanding = 0
        self._procs = [ctx.Process(target=_worker_main, name=f"imgstore-worker-{i}", daemon=True,
                                   args=(fn, self._tasks, self._results, self.counter, os.getpid()))
                       for i in range(max(1, int(n)))]
        for p in self._procs:
            p.start()

    @property
    def size(self) -> int:
        return len(self._procs)

    @property
    def outstanding(self) -> int:
        """Tasks given and not yet returned."""
        return self._outstanding

    def submit(self, task_id: Any, task: Any) -> None:
        self._tasks.put((task_id, task))
        self._outstanding += 1

    def results(self, timeout: float = 0.25) -> Iterator[tuple[Any, Any]]:
        """``(task_id, result)`` of the tasks that finished within *timeout* seconds (maybe none).

        Raises :class:`TaskFailed` for a task that raised, :class:`WorkerDied` if a worker is gone.
        """
        deadline = time.monotonic() + timeout
        while self._outstanding:
            try:
                task_id, ok, value = self._results.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._check_alive()
                return
            self._outstanding -= 1
            if not ok:
                raise TaskFailed(*value)
            yield task_id, value
            if time.monotonic() >= deadline:
                return

    def _check_alive(self) -> None:
        for p in self._procs:
            if p.exitcode is not None:
                how = f"signal {-p.exitcode}" if p.exitcode < 0 else f"exit code {p.exitcode}"
                raise WorkerDied(f"worker process {p.pid} died ({how})")

    def close(self) -> None:
        """Let the workers finish and end (after the results were taken)."""
        for _ in self._procs:
            self._tasks.put(None)
        for p in self._procs:
            p.join(timeout=30)
        self.terminate()

    def terminate(self) -> None:
        """Stop the workers now (their tasks are abandoned)."""
        for p in self._procs:
            if p.is_alive():
                p.terminate()
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        for q in (self._tasks, self._results):
            q.close()
            q.cancel_join_thread()

    def __enter__(self) -> "ProcessPool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()
