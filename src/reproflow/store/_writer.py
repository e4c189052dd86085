"""Write task records off the task's thread, in the process that owns the flow run.

A task record costs one small file: a create, a write and a link, 0.5-4 ms on the disks we
measured, which is as much as Prefect's own per-task work for a trivial task. In the process
that runs the flow, those writes go to one daemon thread instead, and are waited for before the
run's ``end.json``, its index entry and its Prefect artifacts are written (so a finished run
always has all its task records) and at interpreter exit.

What does not change: each record is still published atomically by the store, in one file of
its own, and a store that cannot be reached still spools. Writes stay synchronous where waiting
cannot be guaranteed or where the caller must see the error: in other processes (Dask workers
have no end-of-run hook of their own), in strict mode, and outside Prefect.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("reproflow")

#: Pending writes before ``submit`` blocks (back-pressure on a store slower than the tasks).
MAX_PENDING = 1024


class RecordWriter:
    """One daemon thread draining a bounded queue of write calls; ``flush`` waits for it."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.Queue(MAX_PENDING)
        self._cond = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._errors: list[BaseException] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the writer thread (blocks while MAX_PENDING calls are queued)."""
        with self._cond:
            self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="reproflow-writer", daemon=True)
                self._thread.start()
        self._queue.put((fn, args))

    def _loop(self) -> None:
        while True:
            fn, args = self._queue.get()
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - reported by flush(), never lost silently
                log.error("reproflow: a record could not be written: %s: %s", type(exc).__name__, exc)
                with self._cond:
                    self._errors.append(exc)
            finally:
                with self._cond:
                    self._pending -= 1
                    if self._pending == 0:
                        self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> list[BaseException]:
        """Wait until every submitted write is done; return (and forget) the errors they raised."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending == 0, timeout)
            errors, self._errors = self._errors, []
        return errors

    @property
    def pending(self) -> int:
        return self._pending


_writer = RecordWriter()


def writer() -> RecordWriter:
    """The process's writer."""
    return _writer


def _reset_after_fork() -> None:
    global _writer
    _writer = RecordWriter()  # the parent's thread does not exist in the child


def _flush_at_exit() -> None:
    _writer.flush(timeout=60)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(_flush_at_exit)


__all__ = ["MAX_PENDING", "RecordWriter", "writer"]
