"""Run lifecycle, engine-neutral: the run record once per run, the end record once, per-process
caches (stores, the runs this process started).

Engine adapters decide *when* a run starts and ends (``reproflow.engines.prefect._flowrun`` for a
Prefect flow run, ``recorder._plain`` for plain Python); this module writes what they decide.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..store import _liveness
from ..values._scrub import scrub_argv, scrub_mapping
from ..values._typed import hash_mapping, to_typed_json
from ..records import ErrorInfo, RunEnd, RunRecord, RunStatus, RunSummary, utcnow
from ._seeds import seed_from_env
from ..errors import InvalidSeed
from ..store import DEFAULT_STORE, STORE_ENV, Store, resolve_store_url
from .. import _forksafe

log = logging.getLogger("reproflow")

_lock = _forksafe.rlock()
_stores: dict[tuple[int, str], Store] = {}
_started: dict[str, str] = {}  #: run_id -> store url, runs this process started
#: run_id -> when the run began (time.time_ns(); for a Prefect flow run, when its context was
#: entered, before the flow body): a task's input last written after that, before the task, was
#: written by the run itself (DataRef.written_in_run)
_began_ns: dict[str, int] = {}
_pid = os.getpid()

REPLAY_OF_ENV = "REPROFLOW_REPLAY_OF"
#: set by replay: a JSON list of empty folders the recorded run read that do not exist yet; each is
#: made when the first task that reads it starts, not before the flow (whose body may make it with
#: a plain ``mkdir()``, which fails on a folder that exists)
REPLAY_MAKE_DIRS_ENV = "REPROFLOW_REPLAY_MAKE_DIRS"
STRICT_ENV = "REPROFLOW_STRICT"
STORE_INPUTS_ENV = "REPROFLOW_STORE_INPUTS"


_replay_dirs: tuple[str, frozenset[str]] | None = None


def replay_dirs() -> frozenset[str]:
    """The folders of ``$REPROFLOW_REPLAY_MAKE_DIRS`` (real paths), parsed once per value."""
    global _replay_dirs
    raw = os.environ.get(REPLAY_MAKE_DIRS_ENV, "")
    if not raw:
        return frozenset()
    if _replay_dirs is None or _replay_dirs[0] != raw:
        try:
            paths = [p for p in json.loads(raw) if isinstance(p, str) and os.path.isabs(p)]
        except ValueError:
            paths = []
        _replay_dirs = (raw, frozenset(os.path.realpath(p) for p in paths))
    return _replay_dirs[1]


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def env_seed() -> int | None:
    """The run-level seed from ``$REPROFLOW_SEED`` (validated), or None."""
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
        _began_ns.clear()
        _settings.clear()


@dataclass(frozen=True)
class TaskSettings:
    """What the environment tells a task attempt: ``$REPROFLOW_STRICT``,
    ``$REPROFLOW_STORE_INPUTS``, ``$REPROFLOW_SEED``, the replay's folders to make
    (``$REPROFLOW_REPLAY_MAKE_DIRS``) and the store (``$REPROFLOW_STORE``)."""

    strict: bool
    store_inputs: bool
    seed: int | None
    #: False: ``$REPROFLOW_SEED`` is not a seed (raised where the seed is used: a task with its
    #: own ``seed=`` runs)
    seed_ok: bool
    make_dirs: frozenset[str]
    store: Store | None  #: None: ``$REPROFLOW_STORE`` names no store (the error is raised where it is used)


#: run_id -> its tasks' settings, for the runs this process started (see :func:`task_settings`)
_settings: dict[str, TaskSettings] = {}


def task_settings(run_id: str) -> TaskSettings:
    """The settings the environment gives a task of ``run_id``. A run this process started
    reads them when its first task starts, and its later tasks see the same (one run, one
    store, one seed; five environment lookups fewer per task run: issue 16); for any other
    run (or while a variable names no seed or store) they are read at each call."""
    if os.getpid() != _pid:
        _forked()  # a forked child resolves its own store
    hit = _settings.get(run_id)
    if hit is not None:
        return hit
    try:
        store: Store | None = get_store()
    except Exception:  # noqa: BLE001 - raised where the store is used (a task may name its own)
        store = None
    try:
        seed, seed_ok = env_seed(), True
    except InvalidSeed:
        seed, seed_ok = None, False
    settings = TaskSettings(strict=env_flag(STRICT_ENV), store_inputs=env_flag(STORE_INPUTS_ENV), seed=seed,
                            seed_ok=seed_ok, make_dirs=replay_dirs(), store=store)
    if run_id in _started and seed_ok and store is not None:
        _settings[run_id] = settings
    return settings


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
    if mod == "__main__":
        mod = main_module_of(path)
    if mod and mod != "__main__" and "<locals>" not in fn.__qualname__:
        module = f"{mod}:{fn.__qualname__}"
    return entry, module


def main_module_of(path: str | None) -> str | None:
    """The module name ``__main__`` was run as (``python -m pkg.main``: ``pkg.main``) when
    ``path`` is its file; None for a script run as ``python flow.py``, or another file."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    main_file = getattr(main, "__file__", None)
    if not name or name == "__main__" or not path or not main_file:
        return None
    try:
        return name if os.path.samefile(main_file, path) else None
    except OSError:
        return None


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
    engine_info: dict[str, Any] | None = None,
    lease: bool = True,
) -> str:
    """Capture the process context and write ``run.json`` once. Returns the context digest.

    ``fn`` is the flow (or task) function; without one (``reproflow.record()`` in a script),
    ``entry_file`` names the script and the entrypoint is that file alone. ``lease=False``
    records no liveness: a run opened by a process that exits before the run ends (a shared
    run joined by other processes) stays RUNNING until it is closed.
    """
    return open_run_record(store, run_id=run_id, flow_name=flow_name, flow_run_name=flow_run_name, fn=fn,
                           parameters=parameters, engine=engine, seed=seed, entry_file=entry_file,
                           engine_info=engine_info, lease=lease)[0]


def open_run_record(
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
    engine_info: dict[str, Any] | None = None,
    lease: bool = True,
    join: bool = False,
) -> tuple[str, bool]:
    """:func:`start_run`, also saying whether this call wrote ``run.json``. With ``join``, a run
    another process wrote first is joined: this process neither holds its lease nor owns it."""
    from ..capture import get_context

    began_ns = time.time_ns()
    entry_file = source_file(fn) if fn is not None else entry_file
    digest, context = get_context(store, entry_file=entry_file)
    if fn is not None:
        entry, module = entry_of(fn, context.source.root)
        fn_module = getattr(inspect.unwrap(fn), "__module__", None)
        main_module = main_module_of(source_file(fn)) if fn_module == "__main__" else None
    else:
        entry, module = _script_entry(entry_file, context.source.root), None
        main_module = main_module_of(entry_file)
    typed = scrub_mapping({k: to_typed_json(v) for k, v in parameters.items()}, store.fingerprint)
    per, phash = hash_mapping(parameters)
    record = RunRecord(
        run_id=run_id,
        flow_name=flow_name,
        flow_run_name=flow_run_name,
        entrypoint=entry,
        module=module,
        main_module=main_module,
        parameters=typed,
        parameter_hashes=per,
        parameters_hash=phash,
        context=digest,
        cwd=os.getcwd(),
        argv=scrub_argv(list(sys.argv)),
        engine=engine,  # type: ignore[arg-type]
        replay_of=os.environ.get(REPLAY_OF_ENV) or None,
        seed=seed,
        pythonhashseed=_pythonhashseed(),
        reproflow_version=_version(),
        liveness=_liveness.current() if lease else None,
        engine_info=dict(engine_info or {}),
    )
    created = store.write_run(record)
    if not created and join:
        return digest, False  # a shared run another process opened first: join it
    with _lock:
        _started[run_id] = store.url
        _began_ns.setdefault(run_id, began_ns)
    if lease:
        _liveness.hold(store, run_id)  # renewed by its own thread, never on a task's path
    return digest, created


def _script_entry(path: str | None, root: str | None) -> str | None:
    if not path:
        return None
    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    return (path if rel.startswith("..") else rel).replace(os.sep, "/")


_source_files: dict[Any, str | None] = {}


def source_file(fn: Any) -> str | None:
    """The absolute path of ``fn``'s source file (None for builtins), once per function: the
    lookup stats the file, and every task run asks. Remembered under the function itself (the
    lookup each task run makes) and under its unwrapped code (shared by its wrappers)."""
    try:
        return _source_files[fn]
    except (KeyError, TypeError):
        pass
    unwrapped = inspect.unwrap(fn)
    key = getattr(unwrapped, "__code__", None) or unwrapped
    try:
        found = _source_files[key]
    except (KeyError, TypeError):
        try:
            path = inspect.getsourcefile(unwrapped)
        except TypeError:
            path = None
        found = os.path.abspath(path) if path else None
    for k in (key, fn):
        try:
            _source_files[k] = found
        except TypeError:  # an unhashable callable: not cached
            pass
    return found


def _pythonhashseed() -> str | None:
    from ._seeds import pythonhashseed

    return pythonhashseed()


def _version() -> str:
    from .._version import __version__

    return __version__


def note_run_began(run_id: str, ns: int) -> None:
    """When the run began, if known before its record is opened (a Prefect flow run's context is
    entered before its body runs; the run is recorded when its first task starts)."""
    with _lock:
        _began_ns.setdefault(run_id, ns)


def run_began_ns(run_id: str) -> int | None:
    """When this process saw the run begin (time.time_ns()); None for a run it did not see begin."""
    return _began_ns.get(run_id)


def owns_run(run_id: str) -> bool:
    """Whether this process started recording ``run_id`` and will close it (its flow end hook)."""
    return run_id in _started


def finish_run(store: Store, run_id: str, status: RunStatus, error: ErrorInfo | None = None,
               exit_code: int | None = None, in_process: bool = True,
               modules: list[str] | None = None) -> RunEnd:
    """Write ``end.json`` and the run's index entry (both once).

    ``in_process``: the run's tasks ran in this process, so the distributions it imported are
    recorded (False for runs joined from other processes, whose imports this one cannot see).
    ``modules``: ``sys.modules``' names when the run ended, for an end written later (by
    default, those imported now).
    """
    _liveness.release(run_id)
    _settings.pop(run_id, None)
    imported = _imported(modules) if in_process else None
    n_tasks = len(store.task_run_ids(run_id))
    end = RunEnd(run_id=run_id, status=status, ended_at=utcnow(), error=error, n_tasks=n_tasks, exit_code=exit_code,
                 imported_distributions=imported)
    store.write_run_end(end, _summary(store, run_id, end))
    return end


def _imported(modules: list[str] | None = None) -> list[str] | None:
    """The imported distributions (of ``modules``, default ``sys.modules``), or None: recording
    never breaks the run."""
    try:
        from ..capture.environment import imported_distributions

        return imported_distributions(modules)
    except Exception:  # noqa: BLE001 - a broken metadata folder must not fail the run's end
        return None


def _summary(store: Store, run_id: str, end: RunEnd) -> RunSummary:
    from ..records import ProcessContext

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


__all__ = ["finish_run", "get_store", "owns_run", "start_run"]
