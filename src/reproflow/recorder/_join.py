"""One run shared by many processes: the engine-neutral way to join a run.

An orchestrator that runs each task in its own process (a Makefile, Snakemake, Airflow) makes
one reproflow run out of them like this:

* one process opens the run (:func:`open_shared_run`), or every process does: ``run.json`` is
  written create-only, so the first writer wins and the others join the same run;
* processes that never talk agree on the run id by deriving it from the engine's identity of the
  run (:func:`shared_run_id`, a UUID5 of, e.g., Airflow's dag_id and run_id), or inherit it
  through the environment: in a process where ``$REPROFLOW_RUN_ID`` is set, every plain
  ``@repro_task`` call and every ``reproflow.record()`` block records into that run;
* a task that is not a Python function (a shell command) is recorded with :func:`record_task`,
  naming its input and output paths: inputs are hashed before the body, outputs after;
* one process closes the run (:func:`close_shared_run`), with the command's exit status.

DAG edges between processes come from data lineage (``reproflow.recorder._dag``): an input whose SHA-256
equals an earlier task's output in the same run consumed it. Nothing here imports an engine.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from ..capture._files import hash_path, is_local, local_path
from ._runs import finish_run, get_store, new_run_id, open_run_record
from ..values._text import exception_text
from ..values._scrub import scrub_mapping, scrub_text
from ..values._urls import strip_credentials
from ..values._typed import hash_mapping, to_typed_json
from ..records import DataRef, EngineInfoValue, ErrorInfo, RunStatus, TaskRecord, utcnow
from ..store import STORE_ENV, Store
from .. import _forksafe

#: The run every recorded task of this process (and its children) joins.
RUN_ID_ENV = "REPROFLOW_RUN_ID"

#: UUID5 namespace of run ids derived from an engine's identity of a run (fixed forever: a
#: change would split the runs of processes on two reproflow versions).
_NAMESPACE = uuid.UUID("6f1d2a7e-3c51-5b8e-9a40-2f0e5d7c1b93")

_opened: set[tuple[str, str]] = set()  #: (store url, run id) known to have run.json here
_opened_lock = _forksafe.lock()


def joined_run_id(env: dict[str, str] | None = None) -> str | None:
    """The run id from ``$REPROFLOW_RUN_ID`` (None when unset or blank)."""
    value = (os.environ if env is None else env).get(RUN_ID_ENV, "").strip()
    return value or None


def shared_run_id(engine: str, *identity_parts: Any) -> str:
    """A run id every process derives alike from the engine's identity of the run.

    Args:
        engine: the engine's name (``"airflow"``), so two engines' identities never collide.
        *identity_parts: the engine's identity of the run, e.g. Airflow's ``dag_id, run_id``.

    Returns:
        A UUID5 string: the same parts give the same id in every process and on every machine.
    """
    if not identity_parts:
        raise ValueError("shared_run_id needs the engine's identity of the run (e.g. dag_id, run_id)")
    key = "\x1f".join([engine, *(str(p) for p in identity_parts)])
    return str(uuid.uuid5(_NAMESPACE, key))


def open_shared_run(
    run_id: str | None = None,
    *,
    name: str,
    engine: str,
    store: str | os.PathLike[str] | Store | None = None,
    engine_info: dict[str, EngineInfoValue] | None = None,
    parameters: dict[str, Any] | None = None,
    entry_file: str | None = None,
    lease: bool = True,
) -> str:
    """Write the run's ``run.json`` unless it exists, and return the run id.

    Safe when several processes race: the record is written create-only, the first writer wins
    and every other caller joins that run (its own name and engine info are then ignored).

    Args:
        run_id: the run's id (default: ``$REPROFLOW_RUN_ID``, else a fresh UUID).
        name: the run's flow name (a pipeline's or command's name).
        engine: ``"command"``, ``"snakemake"``, ``"airflow"``, ``"plain"``.
        store: the store URL (default ``$REPROFLOW_STORE`` or ``./.reproflow``).
        engine_info: the engine's own identity of the run (JSON scalars, lists, flat mappings).
        parameters: the run's parameters, recorded typed.
        entry_file: the script or workflow file that defines the run, if any.
        lease: keep the run's lease from this process until it is closed here. Pass False when
            this process may end before the run does (an Airflow task opening its DAG run): the
            run then stays RUNNING until :func:`close_shared_run`.

    Returns:
        The run id.
    """
    the_store = store if isinstance(store, Store) else get_store(store)
    run_id = run_id or joined_run_id() or new_run_id()
    key = (the_store.url, run_id)
    if key in _opened:
        return run_id
    if not the_store.fs.exists(the_store.path("runs", run_id, "run.json")):
        open_run_record(the_store, run_id=run_id, flow_name=name, flow_run_name=None, fn=None,
                        parameters=dict(parameters or {}), engine=engine, seed=None, entry_file=entry_file,
                        engine_info=dict(engine_info or {}), lease=lease, join=True)
    with _opened_lock:
        _opened.add(key)
    return run_id


def close_shared_run(
    run_id: str,
    status: RunStatus,
    exit_code: int | None = None,
    *,
    store: str | os.PathLike[str] | Store | None = None,
    error: ErrorInfo | None = None,
) -> None:
    """Write the run's end record (once: a second close is a no-op), with the exit status."""
    the_store = store if isinstance(store, Store) else get_store(store)
    if error is None and status != "COMPLETED" and exit_code is not None:
        error = ErrorInfo(type="exit", message=f"the command exited with status {exit_code}")
    finish_run(the_store, run_id, status, error, exit_code=exit_code, in_process=False)


def child_env(run_id: str, store: Store, base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for child processes that join ``run_id`` in ``store``."""
    env = dict(os.environ if base is None else base)
    env[RUN_ID_ENV] = run_id
    env[STORE_ENV] = store.url
    return env


# ----------------------------------------------------------------------------- one task attempt


class TaskAttempt:
    """One attempt of a task that is not a Python function, as :func:`record_task` records it.

    ``outputs`` may be extended inside the block (paths found only while running); every path
    in it is hashed when the block ends.
    """

    def __init__(self, run_id: str, task_run_id: str, outputs: list[str]) -> None:
        self.run_id = run_id
        self.task_run_id = task_run_id
        self.outputs = outputs
        self.exit_code: int | None = None  #: set it for a command that failed without raising


def _uri(value: str | os.PathLike[str]) -> str:
    text = os.fspath(value)
    if is_local(text):
        return os.path.abspath(local_path(text))
    return text


def _hash_ref(value: str | os.PathLike[str], param: str) -> DataRef:
    uri = _uri(value)
    try:
        ref = hash_path(uri)
    except Exception as exc:  # noqa: BLE001 - recording never breaks the user's task
        ref = DataRef(uri=strip_credentials(uri), kind="unhashed", reason=scrub_text(f"{type(exc).__name__}: {exc}")[:500])
    if "://" in ref.uri:
        ref.uri = strip_credentials(ref.uri)
    ref.param, ref.declared = param, True
    return ref


def _named(paths: Iterable[Any] | dict[str, Any], default: str) -> list[tuple[str, str]]:
    """(param, path) pairs: a mapping names its paths; a list's paths share ``default``; a
    mapping's value may itself be a list of paths."""
    items: Iterable[tuple[str, Any]] = paths.items() if isinstance(paths, dict) else ((default, p) for p in paths)
    out: list[tuple[str, str]] = []
    for name, value in items:
        if isinstance(value, (str, os.PathLike)):
            out.append((str(name), os.fspath(value)))
        else:
            out.extend((str(name), os.fspath(v)) for v in value)
    return out


@contextlib.contextmanager
def record_task(
    name: str,
    *,
    run_id: str | None = None,
    inputs: Iterable[str | os.PathLike[str]] | dict[str, Any] = (),
    outputs: Iterable[str | os.PathLike[str]] | dict[str, Any] = (),
    parameters: dict[str, Any] | None = None,
    engine_info: dict[str, EngineInfoValue] | None = None,
    engine: str = "command",
    store: str | os.PathLike[str] | Store | None = None,
    task_key: str | None = None,
    attempt: int = 1,
    map_index: int | None = None,
) -> Iterator[TaskAttempt]:
    """Record one attempt of a task that is not a Python function (a shell command, a rule).

    Inputs are hashed before the block, outputs after it (also when it raises: the record then
    says FAILED with the error, and the exception goes on). Without a run (no ``run_id`` and no
    ``$REPROFLOW_RUN_ID``) the task gets a one-task run of its own, closed with it.

    Args:
        name: the task's name (a rule's or step's name).
        run_id: the run to record into (default ``$REPROFLOW_RUN_ID``).
        inputs: paths or fsspec URLs the task reads; a mapping names them (``{"raw": path}``).
        outputs: paths the task writes, likewise.
        parameters: the task's parameters, recorded typed and hashed.
        engine_info: the engine's own identity of this attempt (rule, wildcards, try number).
        engine: the engine's name written on the record.
        store: store URL (default ``$REPROFLOW_STORE`` or ``./.reproflow``).
        task_key: a stable key for the task (default: its name).
        attempt: the attempt number (an engine's try number).
        map_index: the index of a mapped (fanned-out) task run.

    Yields:
        The :class:`TaskAttempt`; append to its ``outputs`` paths found only while running.
    """
    from ..capture import get_context

    the_store = store if isinstance(store, Store) else get_store(store)
    run_id = run_id or joined_run_id()
    owned = run_id is None
    if owned:
        run_id = open_shared_run(name=name, engine=engine, store=the_store, engine_info=engine_info)
    else:  # joining: open it if no process has yet (no lease: this process may end first)
        run_id = open_shared_run(run_id, name=name, engine=engine, store=the_store, lease=False)
    params = dict(parameters or {})
    out_pairs = _named(outputs, "outputs")
    attempt_obj = TaskAttempt(run_id, str(uuid.uuid4()), [p for _, p in out_pairs])
    out_names = {p: n for n, p in out_pairs}
    digest, _ = get_context(the_store, entry_file=None)  # once per process: not the task's time
    started, t0 = utcnow(), time.perf_counter()
    in_refs = [_hash_ref(path, param) for param, path in _named(inputs, "inputs")]
    error: ErrorInfo | None = None
    try:
        yield attempt_obj
    except BaseException as exc:
        error = ErrorInfo(type=f"{type(exc).__module__}.{type(exc).__qualname__}", message=scrub_text(exception_text(exc))[:2000])
        raise
    finally:
        if error is None and attempt_obj.exit_code not in (None, 0):
            error = ErrorInfo(type="exit", message=f"the command exited with status {attempt_obj.exit_code}")
        info = dict(engine_info or {})
        if attempt_obj.exit_code is not None:
            info.setdefault("exit_code", attempt_obj.exit_code)
        out_refs = [_hash_ref(p, out_names.get(p, "outputs")) for p in attempt_obj.outputs]
        per, combined = hash_mapping(params)
        typed = scrub_mapping({k: to_typed_json(v) for k, v in params.items()}, the_store.fingerprint)
        record = TaskRecord(
            run_id=run_id,
            task_run_id=attempt_obj.task_run_id,
            attempt=attempt,
            task_name=name,
            task_key=task_key or name,
            state="FAILED" if error is not None else "COMPLETED",
            error=error,
            started_at=started,
            ended_at=utcnow(),
            duration_s=time.perf_counter() - t0,
            parameters=typed,
            parameter_hashes=per,
            parameters_hash=combined,
            inputs=in_refs,
            outputs=out_refs,
            context=digest,
            engine=engine,  # type: ignore[arg-type]
            engine_info=info,
            map_index=map_index,
        )
        try:
            the_store.write_task(record)
        finally:
            if owned:
                close_shared_run(run_id, "FAILED" if error is not None else "COMPLETED", attempt_obj.exit_code,
                                 store=the_store, error=error)


__all__ = [
    "RUN_ID_ENV",
    "TaskAttempt",
    "child_env",
    "close_shared_run",
    "joined_run_id",
    "open_shared_run",
    "record_task",
    "shared_run_id",
]
