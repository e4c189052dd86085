"""Hand-made records for replay's unit tests (no decorator, no Prefect): built with the real
schema and written into a real store, so the planner, verifier and builder read what a recorded
run would hold."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import platform
import sys
import tarfile
import uuid
from pathlib import Path
from typing import Any

from reproflow.records import (
    DataRef,
    DirectUrl,
    Distribution,
    Environment,
    GitState,
    Hardware,
    PlatformInfo,
    ProcessContext,
    PythonInfo,
    RunEnd,
    RunRecord,
    SourceSnapshot,
    TaskRecord,
)
from reproflow.store import Store

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A deterministic tar.gz of relative names -> contents."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mtime = 0
            tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


def environment(*dists: Distribution, version: str | None = None) -> Environment:
    return Environment(
        python=PythonInfo(
            implementation=platform.python_implementation(),
            version=version or platform.python_version(),
            executable=sys.executable,
            prefix=sys.prefix,
            base_prefix=sys.base_prefix,
        ),
        platform=PlatformInfo(system=platform.system(), release=platform.release(), machine=platform.machine()),
        distributions=list(dists),
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_run(
    store: Store,
    *,
    env: Environment | None = None,
    tasks: list[dict[str, Any]] | None = None,
    parameters: dict[str, Any] | None = None,
    source_files: dict[str, bytes] | None = None,
    source_root: str = "/nonexistent/src",
    entrypoint: str | None = "flow.py:pipeline",
    status: str = "COMPLETED",
    engine: str = "prefect",
) -> str:
    """Write a complete run (context, environment, source snapshot, tasks, end) and return its id."""
    env = env or environment()
    env_digest = store.put_model_blob(env)
    source = SourceSnapshot(kind="none", absent_reason="not recorded")
    if source_files is not None:
        blob = store.put_blob(tar_gz(source_files))
        source = SourceSnapshot(kind="files", root=source_root, blob=blob, files=len(source_files),
                                bytes=sum(map(len, source_files.values())))
    ctx = ProcessContext(
        environment_blob=env_digest,
        environment_hash="sha256:" + sha(env_digest.encode()),
        python_version=env.python.version,
        hardware=Hardware(),
        git=GitState(available=False, absent_reason="not a git repository"),
        source=source,
    )
    ctx_digest = store.put_model_blob(ctx)
    run_id = str(uuid.uuid4())
    store.write_run(RunRecord(
        run_id=run_id, flow_name="pipeline", entrypoint=entrypoint, parameters=parameters or {},
        context=ctx_digest, started_at=T0, cwd=source_root, engine=engine,  # type: ignore[arg-type]
    ))
    for i, spec in enumerate(tasks or []):
        store.write_task(task(run_id, i, ctx_digest, **spec))
    store.write_run_end(RunEnd(run_id=run_id, status=status, n_tasks=len(tasks or [])))  # type: ignore[arg-type]
    return run_id


def task(run_id: str, i: int, ctx: str, *, name: str, tid: str | None = None, inputs: list[DataRef] | None = None,
         outputs: list[DataRef] | None = None, upstream: dict[str, list[str]] | None = None,
         parameters: dict[str, Any] | None = None, parameter_hashes: dict[str, str] | None = None,
         result_hash: str | None = None, result_blob: str | None = None, map_index: int | None = None,
         state: str = "COMPLETED", function: str | None = None, findings: list[Any] | None = None,
         params_hash: str | None = None, engine_info: dict[str, Any] | None = None,
         no_function: bool = False) -> TaskRecord:
    start = T0 + dt.timedelta(seconds=i)
    return TaskRecord(
        run_id=run_id,
        task_run_id=tid or f"t{i}-{uuid.uuid4().hex[:6]}",
        task_name=name,
        task_key=f"{name}-abc",
        function=None if no_function else (function or f"__main__:{name}"),
        state=state,  # type: ignore[arg-type]
        started_at=start,
        ended_at=start + dt.timedelta(milliseconds=10),
        duration_s=0.01,
        parameters=parameters or {},
        parameter_hashes=parameter_hashes or {},
        parameters_hash=params_hash or f"sha256:{name}{i}",
        result_hash=result_hash,
        result_blob=result_blob,
        inputs=inputs or [],
        outputs=outputs or [],
        upstream=upstream or {},
        context=ctx,
        map_index=map_index,
        findings=findings or [],
        engine_info=engine_info or {},
    )


def local_dist(store: Store, name: str, version: str, files: dict[str, bytes]) -> Distribution:
    """A local editable distribution with a stored source snapshot."""
    blob = store.put_blob(tar_gz(files))
    return Distribution(
        name=name,
        version=version,
        direct_url=DirectUrl(url=f"file:///nonexistent/{name}", editable=True),
        source_blob=blob,
    )


def file_ref(path: Path, param: str = "path", stored_blob: str | None = None) -> DataRef:
    data = path.read_bytes()
    return DataRef(uri=str(path), kind="file", sha256=sha(data), size=len(data), param=param, stored_blob=stored_blob)


def store_files(store: Store) -> dict[str, bytes]:
    """Every file under a local store, by relative path (to prove nothing was written)."""
    root = Path(store.root)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
