"""Small, valid records for the storage tests, written through the public Store methods."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from reproflow.records import (
    DataRef,
    Distribution,
    Environment,
    GitState,
    Hardware,
    PlatformInfo,
    ProcessContext,
    PythonInfo,
    RunEnd,
    RunRecord,
    RunSummary,
    SourceSnapshot,
    TaskRecord,
)
from reproflow.store import Store

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def put_context(store: Store, *, source_blob: str | None = None, diff_blob: str | None = None) -> str:
    """Write an Environment and a ProcessContext blob; return the context's digest."""
    env = Environment(
        python=PythonInfo(implementation="CPython", version="3.11.7", executable="/py", prefix="/p", base_prefix="/p"),
        platform=PlatformInfo(system="Linux", release="6", machine="x86_64"),
        distributions=[Distribution(name="localpkg", version="0.1", source_blob=source_blob)],
    )
    env_digest = store.put_model_blob(env)
    ctx = ProcessContext(
        environment_blob=env_digest,
        environment_hash="e" * 16,
        python_version="3.11.7",
        hardware=Hardware(),
        git=GitState(available=diff_blob is not None, dirty=diff_blob is not None, diff_blob=diff_blob),
        source=SourceSnapshot(),
    )
    return store.put_model_blob(ctx)


def run_record(run_id: str, context: str, *, minutes: int = 0, flow: str = "etl") -> RunRecord:
    return RunRecord(
        run_id=run_id,
        flow_name=flow,
        context=context,
        started_at=T0 + dt.timedelta(minutes=minutes),
        parameters={"n": 3},
    )


def task_record(run_id: str, context: str, i: int, **extra: Any) -> TaskRecord:
    fields: dict[str, Any] = {
        "run_id": run_id,
        "task_run_id": extra.pop("task_run_id", str(uuid.UUID(int=i + 1))),
        "task_name": f"step-{i}",
        "task_key": f"step-{i}",
        "state": "COMPLETED",
        "started_at": T0 + dt.timedelta(seconds=i),
        "ended_at": T0 + dt.timedelta(seconds=i, milliseconds=5),
        "duration_s": 0.005,
        "parameters_hash": f"{i:064x}",
        "context": context,
    }
    fields.update(extra)
    return TaskRecord(**fields)


def write_run(store: Store, *, n_tasks: int = 3, minutes: int = 0, end: bool = True, **ctx: Any) -> str:
    """A complete run: context blobs, run.json, ``n_tasks`` task records, end.json + index."""
    run_id = str(uuid.uuid4())
    context = put_context(store, **ctx)
    store.write_run(run_record(run_id, context, minutes=minutes))
    for i in range(n_tasks):
        store.write_task(task_record(run_id, context, i))
    if end:
        rend = RunEnd(run_id=run_id, status="COMPLETED", ended_at=T0 + dt.timedelta(minutes=minutes, seconds=30), n_tasks=n_tasks)
        summary = RunSummary(
            run_id=run_id,
            flow_name="etl",
            started_at=T0 + dt.timedelta(minutes=minutes),
            ended_at=rend.ended_at,
            status="COMPLETED",
            n_tasks=n_tasks,
        )
        store.write_run_end(rend, summary)
    return run_id


def data_ref(uri: str, blob: str) -> DataRef:
    return DataRef(uri=uri, kind="file", sha256=blob, size=1, stored_blob=blob)


__all__ = ["T0", "data_ref", "put_context", "run_record", "task_record", "write_run"]
