"""Run lifecycle: the run record once per flow run, the end record once, per-process caches.

A Prefect flow run is recorded by the process that runs the flow: the first ``@repro_task``
called, submitted or mapped inside it writes ``run.json`` (with the flow's typed parameters and
the process context), and adds reproflow's end hook to the flow so ``end.json``, the index entry
and the Prefect UI artifacts are written when the flow run ends. Workers (threads, processes, Dask)
only write their own task records.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from . import _liveness
from ._scrub import scrub_argv, scrub_mapping, scrub_text
from ._values import hash_mapping, to_typed_json
from .records import ErrorInfo, RunEnd, RunRecord, RunStatus, RunSummary, utcnow
from .store import DEFAULT_STORE, STORE_ENV, Store, resolve_store_url

log = logging.getLogger("reproflow")

_lock = threading.RLock()
_stores: dict[tuple[int, str], Store] = {}
_started: dict[str, str] = {}  #: run_id -> store url, runs this process started
_pid = os.getpid()

REPLAY_OF_ENV = "REPROFLOW_REPLAY_OF"
STRICT_ENV = "REPROFLOW_STRICT"
STORE_INPUTS_ENV = "REPROFLOW_STORE_INPUTS"


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def env_seed() -> int | None:
    """The run-level seed from ``$REPROFLOW_SEED`` (validated), or None."""
    from ._seeds import seed_from_env

    return seed_from_env()


def get_store(url: str | os.PathLike[str] | None = None) -> Store:
    """The Store for a URL, one instance per process (its blob-existence cache is shared)."""
    raw = os.fspath(url) if url is not None else os.environ.get(STORE_ENV) or DEFAULT_STORE
    pid = os.getpid()
    store = _stores.get((pid, raw))  # an absolute path or URL is its own key: no resolving per task
    if store is not None:
        return store
    resolved = resolve_store_url(raw)
    key = (pid, resolved)
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = Store(resolved)
        return store


def _forked() -> None:
    global _pid
    if os.getpid() != _pid:
        _pid = os.getpid()
        _started.clear()


@dataclass
class FlowInfo:
    name: str
    run_name: str | None
    fn: Any
    parameters: dict[str, Any]


def entry_of(fn: Any, root: str | None) -> tuple[str | None, str | None]:
    """("relative/file.py:function", "package.module:function") for a flow or task function."""
    fn = inspect.unwrap(fn)
    entry = module = None
    try:
        path = inspect.getsourcefile(fn)
    except TypeError:
        path = None
    if path:
        path = os.path.abspath(path)
        rel = os.path.relpath(path, root) if root else os.path.basename(path)
        if rel.startswith(".."):
            rel = path
        entry = f"{rel.replace(os.sep, '/')}:{fn.__qualname__}"
    mod = getattr(fn, "__module__", None)
    if mod and mod != "__main__" and "<locals>" not in fn.__qualname__:
        module = f"{mod}:{fn.__qualname__}"
    return entry, module


def start_run(
    store: Store,
    *,
    run_id: str,
    flow_name: str,
    flow_run_name: str | None,
    fn: Any,
    parameters: dict[str, Any],
    engine: str,
    seed: int | None,
    entry_file: str | None = None,
) -> str:
    """Capture the process context and write ``run.json`` once. Returns the context digest.

    ``fn`` is the flow (or task) function; without one (``reproflow.record()`` in a script),
    ``entry_file`` names the script and the entrypoint is that file alone.
    """
    from .capture import get_context

    entry_file = source_file(fn) if fn is not None else entry_file
    digest, context = get_context(store, entry_file=entry_file)
    if fn is not None:
        entry, module = entry_of(fn, context.source.root)
    else:
        entry, module = _script_entry(entry_file, context.source.root), None
    typed = scrub_mapping({k: to_typed_json(v) for k, v in parameters.items()}, store.fingerprint)
    _, phash = hash_mapping(parameters)
    record = RunRecord(
        run_id=run_id,
        flow_name=flow_name,
        flow_run_name=flow_run_name,
        entrypoint=entry,
        module=module,
        parameters=typed,
        parameters_hash=phash,
        context=digest,
        cwd=os.getcwd(),
        argv=scrub_argv(list(sys.argv)),
        engine=engine,  # type: ignore[arg-type]
        replay_of=os.environ.get(REPLAY_OF_ENV) or None,
        seed=seed,
        pythonhashseed=_pythonhashseed(),
        reproflow_version=_version(),
        liveness=_liveness.current(),
    )
    store.write_run(record)
    with _lock:
        _started[run_id] = store.url
    _liveness.hold(store, run_id)  # renewed by its own thread, never on a task's path
    return digest


def _script_entry(path: str | None, root: str | None) -> str | None:
    if not path:
        return None
    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    return (path if rel.startswith("..") else rel).replace(os.sep, "/")


_source_files: dict[Any, str | None] = {}


def source_file(fn: Any) -> str | None:
    """The absolute path of ``fn``'s source file (None for builtins), once per function: the
    lookup stats the file, and a task asks for it twice per run."""
    fn = inspect.unwrap(fn)
    key = getattr(fn, "__code__", None) or fn
    try:
        return _source_files[key]
    except (KeyError, TypeError):
        pass
    try:
        path = inspect.getsourcefile(fn)
    except TypeError:
        path = None
    found = os.path.abspath(path) if path else None
    try:
        _source_files[key] = found
    except TypeError:  # an unhashable callable: not cached
        pass
    return found


def _pythonhashseed() -> str | None:
    from ._seeds import pythonhashseed

    return pythonhashseed()


def _version() -> str:
    from . import __version__

    return __version__


def ensure_prefect_run(store: Store, seed: int | None) -> str | None:
    """In the process running a Prefect flow, record the run once. Returns the run id."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return None
    run_id = str(ctx.flow_run.id)
    _forked()
    with _lock:
        if run_id in _started:
            return run_id
        _started[run_id] = store.url  # claim before the slow part: other threads skip
    flow = ctx.flow
    try:
        start_run(
            store,
            run_id=run_id,
            flow_name=flow.name,
            flow_run_name=ctx.flow_run.name,
            fn=flow.fn,
            parameters=dict(ctx.parameters or {}),
            engine="prefect",
            seed=seed,
        )
    except BaseException:
        with _lock:
            _started.pop(run_id, None)
        raise
    _attach_end_hooks(flow)
    return run_id


def owns_run(run_id: str) -> bool:
    """Whether this process started recording ``run_id`` and will close it (its flow end hook)."""
    return run_id in _started


class _HookChatter(logging.Filter):
    """Prefect logs "Running hook '…'" and "Hook '…' finished running successfully" at INFO for
    every flow hook, into the console and the flow run's logs in the UI; for reproflow's own end
    hook (bookkeeping the user never wrote) those two lines become DEBUG. Its errors stay."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self._quoted = tuple(f"ook {n!r}" for n in names)  # "Running hook '_flow_end_hook' ..."

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not isinstance(record.msg, str):
            return True
        msg = record.msg
        if not any(q in msg for q in self._quoted) or not (msg.startswith("Running hook") or msg.endswith("finished running successfully")):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_hook_filter: _HookChatter | None = None


def _quiet_hook_logs() -> None:
    global _hook_filter
    if _hook_filter is None:
        _hook_filter = _HookChatter((_flow_end_hook.__name__,))
        logging.getLogger("prefect.flow_runs").addFilter(_hook_filter)


def _attach_end_hooks(flow: Any) -> None:
    _quiet_hook_logs()
    for attr in ("on_completion_hooks", "on_failure_hooks", "on_crashed_hooks", "on_cancellation_hooks"):
        hooks = getattr(flow, attr, None)
        if isinstance(hooks, list) and _flow_end_hook not in hooks:
            hooks.append(_flow_end_hook)


def _status_of(state: Any) -> RunStatus:
    if state.is_completed():
        return "COMPLETED"
    if state.is_crashed():
        return "CRASHED"
    if state.is_cancelled() or state.is_cancelling():
        return "CANCELLED"
    return "FAILED"


def _flow_end_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect flow hook: write end.json, the index entry and the UI artifacts."""
    run_id = str(flow_run.id)
    with _lock:
        url = _started.get(run_id)
    if url is None:
        return  # this flow run recorded nothing through reproflow (or another process did)
    from ._writer import writer

    for exc in writer().flush():  # every task record of the run lands before its end record
        log.error("reproflow: run %s may be missing a record: %s", run_id, exc)
    with _lock:
        _started.pop(run_id, None)
    store = get_store(url)
    error = None
    if not state.is_completed():
        error = ErrorInfo(type=f"prefect.{state.type.value}", message=scrub_text(state.message or state.name or ""))
    finish_run(store, run_id, _status_of(state), error)
    from ._artifacts import publish_in_background, publish_mode, publish_or_warn

    mode = publish_mode()
    if mode == "background":
        publish_in_background(store, run_id)
    elif mode == "sync":
        publish_or_warn(store, run_id)  # the engine's client, still open in this hook


def finish_run(store: Store, run_id: str, status: RunStatus, error: ErrorInfo | None = None) -> RunEnd:
    """Write ``end.json`` and the run's index entry (both once)."""
    _liveness.release(run_id)
    n_tasks = len({name.split(".")[0] for name in store.ls(store.path("runs", run_id, "tasks")) if name.endswith(".json")})
    end = RunEnd(run_id=run_id, status=status, ended_at=utcnow(), error=error, n_tasks=n_tasks)
    store.write_run_end(end, _summary(store, run_id, end))
    return end


def _summary(store: Store, run_id: str, end: RunEnd) -> RunSummary:
    from .records import ProcessContext

    record = store.load_run_record(run_id)
    ctx = store.get_model_blob(record.context, ProcessContext)
    return RunSummary(
        run_id=run_id,
        flow_name=record.flow_name,
        started_at=record.started_at,
        ended_at=end.ended_at,
        status=end.status,
        dirty=ctx.git.dirty if ctx.git.available else None,
        commit=ctx.git.commit,
        n_tasks=end.n_tasks,
        replay_of=record.replay_of,
    )


def new_run_id() -> str:
    return str(uuid.uuid4())


__all__ = ["ensure_prefect_run", "finish_run", "get_store", "start_run"]
