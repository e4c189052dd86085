"""Write task records off the task's thread, in the process that owns the flow run.

A task record costs one small file: a create, a write and a link, 0.5-4 ms on the disks we
measured, which is as much as Prefect's own per-task work for a trivial task. In the process
that runs the flow, those writes go to one daemon thread instead, and are waited for before the
run's ``end.json``, its index entry and its Prefect artifacts are written (so a finished run
always has all its task records) and at interpreter exit.

The task records the thread takes in one batch are written in one file per run
(``runs/<id>/tasks/<batch>.jsonl``, one record per line, see ``Store.write_task_batch``): one
create, write and link per batch instead of per record, since each of those system calls hands
the GIL to the thread and back, which costs the flow's thread more than the calls themselves
(issue 16: about a tenth of ``@task``'s CPU for 100 file tasks).

What does not change: every record is still published atomically by the store, in a file created
once, and a store that cannot be reached still spools. Writes stay synchronous where waiting
cannot be guaranteed or where the caller must see the error: in other processes (Dask workers
have no end-of-run hook of their own), in strict mode, and outside Prefect.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .. import _forksafe

log = logging.getLogger("reproflow")

#: Queued writes before ``submit`` blocks (back-pressure on a store slower than the tasks).
MAX_PENDING = 1024
#: How long the thread lets submitted writes gather before it takes them, while nobody waits for
#: them (``flush``, a blocked ``submit``) and fewer than ``BATCH_MAX`` are queued. The records of
#: a flow's tasks are built and written while those tasks run, on a thread that takes the GIL
#: from Prefect's task threads: each wake-up is a hand-over, and the work itself runs among
#: threads that keep evicting its caches. Gathered for a second, a flow shorter than that has its
#: records built at its end, in one go, when the flow's thread waits for them (the flush cuts the
#: wait short, so a flow's end never waits for the second); a longer flow's in one batch a second.
#: Measured (issue 16, ``bench/ablate_file_tasks.py --modes full batch-50ms``, 100 file tasks, 10
#: rounds each, back to back): 0.39 ms of reproflow CPU a task against 0.43-0.46 ms with 50 ms batches. The price: a
#: process killed outright (SIGKILL, out of memory) loses the records of the tasks that ended in
#: its last second, at most ``BATCH_MAX``, as it lost those of its last 50 ms before; its run has
#: no end and a replay says it crashed and compares only the tasks it recorded.
BATCH_S = 1.0
#: A batch this large is taken at once (the submit that fills it wakes the thread).
BATCH_MAX = 256


def _TASK_RECORD(*_: Any) -> None:  # noqa: N802 - a marker, never called
    """Marks a queued task record (see RecordWriter.submit_task_record)."""
    raise AssertionError("a marker")


class RecordWriter:
    """One daemon thread draining a bounded queue of write calls in batches; ``flush`` waits for it."""

    def __init__(self) -> None:
        self._cond = _forksafe.condition()
        self._jobs: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._pending = 0  #: submitted and not finished (queued or running)
        self._thread: threading.Thread | None = None
        self._errors: list[BaseException] = []
        self._idle = False  #: the thread waits for work with nothing queued
        self._waiters = 0  #: flush() calls and blocked submit() calls waiting now

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the writer thread (blocks while MAX_PENDING calls are queued)."""
        with self._cond:
            if len(self._jobs) >= MAX_PENDING:
                self._waiters += 1
                try:
                    self._cond.notify_all()  # take the queue now, not after the batch wait
                    self._cond.wait_for(lambda: len(self._jobs) < MAX_PENDING)
                finally:
                    self._waiters -= 1
            self._jobs.append((fn, args))
            self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="reproflow-writer", daemon=True)
                self._thread.start()
            elif self._idle or len(self._jobs) == BATCH_MAX:
                self._idle = False
                self._cond.notify_all()  # work for an idle thread, or a full batch to take now

    def _loop(self) -> None:
        _finishing.mark_background()  # a run end's job waits for this thread: never the reverse
        while True:
            with self._cond:
                while not self._jobs:
                    self._idle = True
                    self._cond.wait()
                self._idle = False
                if not self._waiters and len(self._jobs) < BATCH_MAX:
                    self._cond.wait(BATCH_S)  # let more gather; flush() and a blocked submit() notify
                batch = list(self._jobs)
                self._jobs.clear()
                self._cond.notify_all()  # room for blocked submitters
            records: dict[tuple[int, str], tuple[Any, list[tuple[str, int, bytes]]]] = {}
            for fn, args in batch:
                if fn is _TASK_RECORD:  # built now, gathered per store and run: one file each
                    store, run_id, encode, values = args
                    items = records.setdefault((id(store), run_id), (store, []))[1]
                    self._call(lambda: items.append(encode(values)))  # noqa: B023 - called at once
                else:
                    self._call(fn, *args)
            for (_, run_id), (store, items) in records.items():
                self._call(store.write_task_batch, run_id, items)
            with self._cond:
                self._pending -= len(batch)
                if self._pending == 0:
                    self._cond.notify_all()

    def submit_task_record(self, store: Any, run_id: str, encode: Callable[[Any], tuple[str, int, bytes]],
                           values: Any) -> None:
        """Write the task record ``encode(values)`` gives (``(task_run_id, attempt, data)``, as
        ``store.write_task_bytes`` takes them) on the writer thread, in one file with the other
        records of the same run and store taken in the same batch (``store.write_task_batch``)."""
        self.submit(_TASK_RECORD, store, run_id, encode, values)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # noqa: BLE001 - reported by flush(), never lost silently
            log.error("reproflow: a record could not be written: %s: %s", type(exc).__name__, exc)
            with self._cond:
                self._errors.append(exc)

    def flush(self, timeout: float | None = None) -> list[BaseException]:
        """Wait until every submitted write is done; return (and forget) the errors they raised."""
        with self._cond:
            self._waiters += 1
            try:
                self._cond.notify_all()  # the thread takes what is queued now
                self._cond.wait_for(lambda: self._pending == 0, timeout)
            finally:
                self._waiters -= 1
            errors, self._errors = self._errors, []
        return errors

    @property
    def pending(self) -> int:
        return self._pending


_writer = RecordWriter()


class _Finishing:
    """Runs whose end this process writes after the call that ended them returned.

    A Prefect flow run's end (its last task records, ``end.json``, the index entry, the UI
    artifacts) is written on a background thread once the flow has returned: the flow's caller
    does not wait for it (issue 16: 15 ms of a 100-task flow on a local disk, the uploads' round
    trips on an object store). What reads the store in this process waits for it first
    (:func:`settle`, called by every read of :class:`~reproflow.store.Store`), and so does a
    subprocess this process starts (the audit hook), and the interpreter's exit: whoever looks
    finds the run complete, as if the flow had waited.
    """

    def __init__(self) -> None:
        self._cond = _forksafe.condition()
        self._n = 0
        self._local = threading.local()
        #: set while someone waits for the pending ends (a read of the store, a subprocess, the
        #: exit, ``wait_for_artifacts``): the background thread holds them back no longer
        self.wanted = threading.Event()

    def begin(self) -> None:
        """One more run's end is on its way (call :meth:`end` when it is written)."""
        with self._cond:
            self._n += 1

    def end(self) -> None:
        with self._cond:
            self._n -= 1
            if not self._n:
                self.wanted.clear()
                self._cond.notify_all()

    @property
    def pending(self) -> int:
        return self._n

    def mark_background(self) -> None:
        """The calling thread is one that writes those ends (its own reads never wait for them)."""
        self._local.background = True

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Wait until every pending run end is written (at once on a thread that writes them).
        Returns False if ``timeout`` passed first."""
        if not self._n or getattr(self._local, "background", False):
            return True
        self.wanted.set()
        with self._cond:
            return self._cond.wait_for(lambda: self._n == 0, timeout)

    def hold(self, until: Callable[[], bool], limit: float | None = None) -> None:
        """On the thread that writes a run's end: wait until ``until()`` is true (asked every
        :data:`HOLD_POLL_S`), someone waits for the pending ends, or ``limit`` seconds passed
        (:data:`HOLD_LIMIT_S` by default).

        A flow run's end hook runs inside the flow call, before Prefect's own teardown (its
        state set, its task runner shut down, its contexts left): the end's work (a second of
        task records, ``end.json``, the artifacts' report) started right away takes the GIL from
        that teardown, and a 100-task flow returned 6% later for it (issue 16). Held until the
        flow call is over, it costs the flow's caller nothing; whoever reads the store meanwhile
        releases it at once."""
        deadline = time.monotonic() + (HOLD_LIMIT_S if limit is None else limit)
        while not until() and not self.wanted.wait(HOLD_POLL_S):
            if time.monotonic() >= deadline:
                return


#: how often :meth:`_Finishing.hold` asks whether the flow call is over, and how long it waits
#: at most (a user's own end hooks, after reproflow's, still run inside the flow call)
HOLD_POLL_S = 0.002
HOLD_LIMIT_S = 10.0

_finishing = _Finishing()


def finishing() -> _Finishing:
    """The process's runs whose end is still being written after their flow returned."""
    return _finishing


def settle(timeout: float | None = 60.0) -> bool:
    """Before reading a store: wait for the run ends this process still writes (a no-op, one
    attribute read, when there are none)."""
    return _finishing.wait(timeout)


def writer() -> RecordWriter:
    """The process's writer."""
    return _writer


def _reset_after_fork() -> None:
    global _writer, _finishing
    _writer = RecordWriter()  # the parent's thread does not exist in the child
    _finishing = _Finishing()  # nor do the threads writing its runs' ends


def _flush_at_exit() -> None:
    _writer.flush(timeout=60)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(_flush_at_exit)


__all__ = ["MAX_PENDING", "RecordWriter", "finishing", "settle", "writer"]
