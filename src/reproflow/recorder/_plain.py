"""Recording without Prefect's engine: ``with reproflow.record(): ...`` and plain calls.

A ``@repro_task`` called outside any flow runs as plain Python (no API server): it records
under the run opened by :func:`record`, else under the run named by ``$REPROFLOW_RUN_ID`` (a
shared run: see ``reproflow.recorder._join``), else under a fresh one-task run of its own. Retries are
honoured. DAG edges between plain task runs are found by content: a parameter whose stable hash
equals an earlier task's return-value hash in the same run consumed that task's result.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..values._text import exception_text
from ..values._scrub import scrub_text
from ._runs import env_seed, finish_run, get_store, new_run_id, start_run
from ..values._typed import stable_hash
from ..records import ErrorInfo
from ..store import Store

# Small values (ints, bools, short strings) say nothing about where they came from.
_TRIVIAL = (type(None), bool, int, float)


@dataclass
class PlainRun:
    """A run recorded without Prefect's engine."""

    run_id: str
    store: Store
    name: str
    results: dict[str, str] = field(default_factory=dict)  #: result hash -> task_run_id
    lock: threading.Lock = field(default_factory=threading.Lock)

    def remember(self, result: Any, task_run_id: str) -> None:
        if isinstance(result, _TRIVIAL) or (isinstance(result, str) and len(result) < 8):
            return
        digest = stable_hash(result)
        if digest:
            with self.lock:
                self.results.setdefault(digest, task_run_id)

    def upstream_of(self, params: dict[str, Any]) -> dict[str, list[str]]:
        edges: dict[str, list[str]] = {}
        for name, value in params.items():
            if isinstance(value, _TRIVIAL):
                continue
            digest = stable_hash(value)
            src = self.results.get(digest) if digest else None
            if src:
                edges[name] = [src]
        return edges


_current: contextvars.ContextVar[PlainRun | None] = contextvars.ContextVar("reproflow_plain_run", default=None)


@contextlib.contextmanager
def record(
    name: str | None = None,
    *,
    store: str | os.PathLike[str] | None = None,
    parameters: dict[str, Any] | None = None,
    seed: int | None = None,
) -> Iterator[PlainRun]:
    """Record every ``@repro_task`` called inside the block as one run, without Prefect's engine.

    Args:
        name: the run's flow name (default: the calling script's file name).
        store: store URL (default ``$REPROFLOW_STORE`` or ``./.reproflow``).
        parameters: the run's parameters, recorded typed for replay.
        seed: a run-level seed applied before every task (also ``$REPROFLOW_SEED``).

    Yields:
        The :class:`PlainRun`; ``run.run_id`` is the id to give ``reproflow runs show``.

    In a process where ``$REPROFLOW_RUN_ID`` is set (a child of ``reproflow record -- CMD``, a
    Snakemake job), the block records into that run instead: it neither opens nor closes one,
    and ``parameters`` and ``seed`` stay the shared run's business.
    """
    entry_file = _caller_file()
    joined = _joined(store, name or _default_name(entry_file), entry_file)
    if joined is not None:
        token = _current.set(joined)
        try:
            yield joined
        finally:
            _current.reset(token)
        return
    the_store = get_store(store)
    run = PlainRun(run_id=new_run_id(), store=the_store, name=name or _default_name(entry_file))
    seed = seed if seed is not None else env_seed()
    start_run(
        the_store,
        run_id=run.run_id,
        flow_name=run.name,
        flow_run_name=None,
        fn=None,
        entry_file=entry_file,
        parameters=dict(parameters or {}),
        engine="plain",
        seed=seed,
    )
    token = _current.set(run)
    try:
        yield run
    except BaseException as exc:
        finish_run(the_store, run.run_id, "FAILED", ErrorInfo(type=type(exc).__qualname__, message=scrub_text(exception_text(exc))[:2000]))
        raise
    else:
        finish_run(the_store, run.run_id, "COMPLETED")
    finally:
        _current.reset(token)


def _caller_file() -> str | None:
    """The file holding the ``with record():`` block (replay runs it again), or None at an
    interactive prompt or in ``python -c`` (no file to run)."""
    try:
        frame = sys._getframe(3)  # this function, record()'s generator, contextlib's __enter__, the caller
    except ValueError:
        return None
    path = frame.f_code.co_filename
    return os.path.abspath(path) if os.path.isfile(path) else None


def _default_name(entry_file: str | None) -> str:
    if not entry_file:
        return "plain-run"
    return os.path.splitext(os.path.basename(entry_file))[0]


def current_run() -> PlainRun | None:
    return _current.get()


def _delays(task: Any) -> list[float]:
    retries = int(task.retries or 0)
    raw = task.retry_delay_seconds
    if callable(raw):
        raw = raw(retries)
    if isinstance(raw, (list, tuple)):
        seq = [float(x) for x in raw] or [0.0]
        return [seq[min(i, len(seq) - 1)] for i in range(retries)]
    return [float(raw or 0)] * retries


def call_plain(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run a ReproTask outside Prefect's engine, recording each attempt."""
    spec = task._rf_spec
    if inspect.iscoroutinefunction(spec.fn):
        return _call_plain_async(task, args, kwargs)
    if inspect.isgeneratorfunction(spec.fn) or inspect.isasyncgenfunction(spec.fn):
        raise TypeError(
            f"{task.name}: generator tasks need Prefect's engine; call it inside a @flow"
        )
    run, owned = _open(task, args, kwargs)
    task_run_id = str(uuid.uuid4())
    delays = _delays(task)
    attempt = 0
    try:
        while True:
            attempt += 1
            rec = _attempt(task, run, task_run_id, attempt, args, kwargs)
            try:
                rec.begin()
                result = spec.fn(*args, **kwargs)
            except BaseException as exc:  # sys.exit() or Ctrl-C in a task: its attempt is recorded, not retried
                rec.failure(exc)
                if isinstance(exc, Exception) and attempt <= len(delays) and not _is_strict_violation(exc):
                    time.sleep(delays[attempt - 1])
                    continue
                raise
            rec.success(result)
            run.remember(result, task_run_id)
            return result
    except BaseException as exc:
        if owned:
            finish_run(run.store, run.run_id, "FAILED", ErrorInfo(type=type(exc).__qualname__, message=scrub_text(exception_text(exc))[:2000]))
        raise
    finally:
        if owned:
            _close_owned(run)


async def _call_plain_async(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    import asyncio

    spec = task._rf_spec
    run, owned = _open(task, args, kwargs)
    task_run_id = str(uuid.uuid4())
    delays = _delays(task)
    attempt = 0
    try:
        while True:
            attempt += 1
            rec = _attempt(task, run, task_run_id, attempt, args, kwargs)
            try:
                await asyncio.to_thread(rec.begin, watch=False)
                rec.watch()  # in this asyncio task's context, where the body runs
                result = await spec.fn(*args, **kwargs)
            except BaseException as exc:
                rec.unwatch()
                await rec.failure_async(exc)
                if isinstance(exc, Exception) and attempt <= len(delays) and not _is_strict_violation(exc):
                    await asyncio.sleep(delays[attempt - 1])
                    continue
                raise
            rec.unwatch()
            await asyncio.to_thread(rec.success, result)
            run.remember(result, task_run_id)
            return result
    except BaseException as exc:
        if owned:
            finish_run(run.store, run.run_id, "FAILED", ErrorInfo(type=type(exc).__qualname__, message=scrub_text(exception_text(exc))[:2000]))
        raise
    finally:
        if owned:
            _close_owned(run)


def _is_strict_violation(exc: BaseException) -> bool:
    from ..errors import StrictModeViolation

    return isinstance(exc, StrictModeViolation)


_owned_done: set[str] = set()


def _close_owned(run: PlainRun) -> None:
    """Finish a one-task run that completed (failures were finished where they were raised)."""
    if run.run_id in _owned_done:
        return
    _owned_done.add(run.run_id)
    try:
        run.store.load_run_record(run.run_id)
    except Exception:  # noqa: BLE001 - nothing to finish if the run never started
        return
    if not run.store.fs.exists(run.store.path("runs", run.run_id, "end.json")):
        finish_run(run.store, run.run_id, "COMPLETED")


_joined_runs: dict[tuple[str, str], PlainRun] = {}


def _joined(store: str | os.PathLike[str] | None, name: str, entry_file: str | None) -> PlainRun | None:
    """The shared run named by ``$REPROFLOW_RUN_ID`` (opened here if no process has yet), one
    :class:`PlainRun` per process so value edges between its tasks hold; None when unset."""
    from ._join import joined_run_id, open_shared_run

    run_id = joined_run_id()
    if run_id is None:
        return None
    the_store = get_store(store)
    key = (the_store.url, run_id)
    run = _joined_runs.get(key)
    if run is None:
        open_shared_run(run_id, name=name, engine="plain", store=the_store, entry_file=entry_file, lease=False)
        run = _joined_runs.setdefault(key, PlainRun(run_id=run_id, store=the_store, name=name))
    return run


def _open(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[PlainRun, bool]:
    from ._callee import bind_arguments

    run = _current.get()
    if run is not None:
        return run, False
    spec = task._rf_spec
    joined = _joined(spec.opts.store, task.name, None)
    if joined is not None:
        return joined, False
    store = get_store(spec.opts.store)
    run = PlainRun(run_id=new_run_id(), store=store, name=task.name)
    start_run(
        store,
        run_id=run.run_id,
        flow_name=task.name,
        flow_run_name=None,
        fn=spec.code,
        parameters=bind_arguments(spec, args, kwargs),
        engine="plain",
        seed=spec.opts.seed if spec.opts.seed is not None else env_seed(),
    )
    return run, True


def _attempt(task: Any, run: PlainRun, task_run_id: str, attempt: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from ._attempt import _Attempt
    from ._callee import bind_arguments

    spec = task._rf_spec
    return _Attempt(
        spec,
        args,
        kwargs,
        run_id=run.run_id,
        task_run_id=task_run_id,
        attempt=attempt,
        task_name=task.name,
        task_key=task.task_key,
        upstream=run.upstream_of(bind_arguments(spec, args, kwargs)),
        engine="plain",
        tags=sorted(task.tags or []),
        store=run.store,
    )


__all__ = ["PlainRun", "call_plain", "current_run", "record"]
