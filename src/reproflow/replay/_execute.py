"""Start the runner in the rebuilt environment and follow the new run's task records."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ReplayExecutionError
from ..records import RunRecord, TaskRecord
from ..store import Store, parse_record
from ._plan import Prepared
from ._guard import split_entrypoint
from ._relocate import Relocation, recorded_source_root
from ._warm import PREFECT_FLOW_MODULES, claim, runner_environ

Progress = Callable[[str, str, int, int], None]  # (phase, description, completed, total)
RUNNER_NAME = "reproflow_replay_runner.py"


def _entry_paths(prepared: Prepared, source_root: Path, relocation: Relocation | None = None) -> dict[str, Any]:
    """Where the flow's file is in the restored source and what goes on sys.path."""
    rec = prepared.run.record
    move = relocation.path if relocation is not None else (lambda p: p)
    out: dict[str, Any] = {"sys_path": [], "entry_file": None, "callable": None, "module_name": None,
                           "main_module": rec.main_module}
    module_name = rec.module.partition(":")[0] if rec.module else rec.main_module
    out["module_name"] = module_name
    if rec.entrypoint:
        rel, qual = split_entrypoint(rec.entrypoint)
        out["callable"] = qual
        path = Path(move(rel)) if os.path.isabs(rel) else source_root / rel
        out["entry_file"] = str(path)
        if not rec.main_module:  # a script's folder is first on its sys.path; a module's is not
            out["sys_path"].append(str(path.parent))
        if module_name and not os.path.isabs(rel):
            suffix = module_name.replace(".", "/") + ".py"
            rel_posix = rel.replace(os.sep, "/")
            if rel_posix.endswith(suffix):
                out["sys_path"].append(str(source_root / rel_posix[: -len(suffix)]))
    elif rec.module:
        out["callable"] = rec.module.partition(":")[2]
    out["sys_path"].append(str(source_root))
    if (source_root / "src").is_dir():
        # A src-layout project's packages, from the restored code: ahead of an editable install
        # of the same project, which would import them from the user's checkout (--in-place).
        out["sys_path"].append(str(source_root / "src"))
    out["sys_path"] = list(dict.fromkeys(os.path.normpath(p) for p in out["sys_path"]))
    return out


def write_spec(prepared: Prepared, store: Store, source_root: Path, work_dir: Path) -> tuple[Path, Path]:
    """Write the runner's spec (and stored upstream values for a partial replay).

    Paths inside the recorded source root (the working folder, path parameters, absolute path
    strings, script arguments) are moved into the restored code at ``source_root``, so the replay
    reads and writes there and never in the user's own tree.
    """
    rec = prepared.run.record
    ctx = prepared.run.context
    assert ctx is not None
    relocation = Relocation(recorded_source_root(ctx), str(source_root))
    spec: dict[str, Any] = _entry_paths(prepared, source_root, relocation)
    result_file = work_dir / "result.json"
    cwd, _ = relocation.cwd(rec.cwd)
    os.makedirs(cwd, exist_ok=True)  # inside the restored code: a folder the snapshot had no file in
    spec.update(
        result_file=str(result_file),
        parameters={k: relocation.typed(v) for k, v in rec.parameters.items()},
        flow_name=rec.flow_name,
        argv=[relocation.typed(a) for a in rec.argv],
        cwd=cwd,
        load_as="__reproflow_replay__",
    )
    if prepared.partial is not None:
        spec["mode"] = "tasks"
        blobs = work_dir / "blobs"
        tasks = []
        for item in prepared.partial:
            params: dict[str, Any] = {}
            for name, source in item.params.items():
                if source["kind"] == "blob":
                    blobs.mkdir(exist_ok=True)
                    digest = str(source["digest"])
                    target = blobs / f"{digest}.pkl"
                    if not target.exists():
                        store.get_blob_to_file(digest, target)
                    params[name] = {"kind": "blob", "path": str(target)}
                elif source["kind"] == "typed":
                    params[name] = {**source, "value": relocation.typed(source["value"])}
                else:
                    params[name] = dict(source)
            t = item.task
            tasks.append({
                "task_run_id": t.task_run_id,
                "task_name": t.task_name,
                "task_key": t.task_key,
                "function": t.function,
                "function_file": _moved_file(t.function_file, source_root, relocation),
                "map_index": t.map_index,
                "subflow": t.subflow,
                "tags": list(t.tags),
                # what the recorded attempt declared: a function recorded by an engine adapter
                # (no @repro_task on it) is hashed as it was, by parameter name
                "inputs": sorted({r.param for r in t.inputs if r.declared and r.param}),
                "outputs": sorted({r.param for r in t.outputs if r.declared and r.param}),
                "command": item.command,
                "command_io": _command_io(t, relocation) if item.command is not None else None,
                "params": params,
            })
        spec["tasks"] = tasks
        _output_parents(prepared, relocation)
        # Stored results are pickles: their paths are moved when the runner loads them.
        spec["relocation"] = [relocation.recorded_root, relocation.restored_root]
    elif rec.engine == "plain":
        # A task called outside any flow is a run of its own: call that function again with
        # its recorded arguments. A `reproflow.record()` block: run its script again.
        spec["mode"] = "call" if spec["callable"] else "script"
    else:
        spec["mode"] = "flow"
    path = work_dir / "spec.json"
    path.write_text(json.dumps(spec, indent=2))
    return path, result_file


def _moved_file(path: str | None, source_root: Path, relocation: Relocation) -> str | None:
    """A recorded source file's place in the restored code (None when it is not there)."""
    if not path:
        return None
    moved = Path(relocation.path(path)) if os.path.isabs(path) else source_root / path
    # the runner executes this file: only ever one of the restored code (a record is untrusted)
    real, root = os.path.realpath(moved), os.path.realpath(source_root)
    if not real.startswith(root + os.sep):
        return None
    try:
        return str(moved) if moved.is_file() else None
    except (OSError, ValueError):  # a name the file system cannot hold
        return None


def _command_io(task: TaskRecord, relocation: Relocation) -> dict[str, dict[str, list[str]]]:
    """A recorded command's input and output files by parameter name, moved into the restored
    code: the replay hashes them around the command as the record did."""
    out: dict[str, dict[str, list[str]]] = {"inputs": {}, "outputs": {}}
    for which, refs in (("inputs", task.inputs), ("outputs", task.outputs)):
        for ref in refs:
            if ref.kind == "missing" and which == "inputs":
                continue
            out[which].setdefault(ref.param or which[:-1], []).append(_local(relocation.path(ref.uri)))
    return out


def _local(uri: str) -> str:
    for scheme in ("file://", "local://"):
        if uri.startswith(scheme):
            return uri[len(scheme):]
    return uri


def _output_parents(prepared: Prepared, relocation: Relocation) -> None:
    """Make the folder of every output the chosen tasks recorded (moved into the restored code
    when it was inside the source root): a partial replay skips the flow body, which may be what
    made them (``out_dir.mkdir()`` before the first task), and they all existed when the task ran."""
    for t in prepared.selected:
        for ref in t.outputs:
            if ref.kind == "unhashed" or "://" in ref.uri and not ref.uri.startswith(("file://", "local://")):
                continue
            path = relocation.path(ref.uri)
            for scheme in ("file://", "local://"):
                path = path[len(scheme):] if path.startswith(scheme) else path
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def runner_env(prepared: Prepared, store: Store, python: str, in_place: bool, *,
               work_dir: Path | None = None) -> dict[str, str]:
    """The runner's environment (see :func:`reproflow.replay._warm.runner_environ`)."""
    rec = prepared.run.record
    return runner_environ(python, in_place=in_place, store_url=store.url, replay_of=rec.run_id, seed=rec.seed,
                          pythonhashseed=rec.pythonhashseed, make_dirs=prepared.deferred_dirs,
                          results_dir=work_dir / "prefect-results" if work_dir is not None else None)


def early_modules(prepared: Prepared) -> tuple[str, ...] | None:
    """What a runner started before the checks may import while it waits (Prefect and the
    recorder, for a recorded Prefect flow run again), or None: not started early."""
    rec = prepared.run.record
    if prepared.partial is None and rec.engine == "prefect" and (rec.entrypoint or rec.module):
        return PREFECT_FLOW_MODULES
    return None


def run_runner(
    prepared: Prepared,
    store: Store,
    *,
    python: str,
    source_root: Path,
    work_dir: Path,
    in_place: bool,
    progress: Progress | None = None,
    poll_s: float = 0.5,
) -> dict[str, Any]:
    """Run the flow (or the chosen tasks) in a subprocess; return the runner's result file.

    Raises:
        ReplayExecutionError: the runner could not import or call the flow.
    """
    spec_path, result_file = write_spec(prepared, store, source_root, work_dir)
    runner = work_dir / RUNNER_NAME
    shutil.copyfile(Path(__file__).with_name("_runner.py"), runner)
    log_path = work_dir / "runner.log"
    total = len(prepared.selected)
    report = progress or (lambda *_: None)
    before = set(store.run_ids()) if store.exists() else set()
    t0 = time.time()
    report("tasks", "starting the flow", 0, total)
    env = runner_env(prepared, store, python, in_place, work_dir=work_dir)
    modules = early_modules(prepared)
    # a runner started early (it has imported Prefect meanwhile) is handed the spec only now,
    # every check passed; else one is started now
    warm = claim(python, modules) if modules else None
    if warm is not None and not warm.go(spec_path, env):
        warm = None
    with open(log_path, "wb") as log:
        proc = warm.proc if warm is not None else subprocess.Popen(
            [python, str(runner), str(spec_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(work_dir),
        )
        _follow(proc, store, before, prepared.run.run_id, total, progress, poll_s)
    if warm is not None:  # its log and Prefect's results, written in its own folder, join the work folder
        warm.close()
        shutil.move(str(warm.log_path), log_path)
        if warm.results_dir.exists():
            shutil.move(str(warm.results_dir), work_dir / "prefect-results")
        shutil.rmtree(warm.folder, ignore_errors=True)
    result: dict[str, Any] = {}
    try:
        result = json.loads(result_file.read_text())
    except (OSError, ValueError):
        result = {}
    result["returncode"] = proc.returncode
    result["log"] = str(log_path)
    result["wall_s"] = time.time() - t0
    if not result.get("run_id"):
        result["run_id"] = _find_new_run(store, before, prepared.run.run_id, newest=True)
    if proc.returncode != 0 or result.get("error"):
        if not result.get("run_id") or result.get("error"):
            detail = result.get("error") or _tail(log_path)
            raise ReplayExecutionError.from_runner(f"{detail} (log: {log_path})", proc.returncode)
    if not result.get("run_id"):
        raise ReplayExecutionError.from_runner(
            f"the flow ran but recorded nothing in {store.display_url}: are its tasks decorated with "
            f"@repro_task? (log: {log_path}) {_tail(log_path)}",
            proc.returncode,
        )
    report("tasks", "flow finished", total, total)
    return result


def _follow(proc: subprocess.Popen[bytes], store: Store, before: set[str], original: str, total: int,
            progress: Progress | None, poll_s: float) -> None:
    """Wait for the runner to end. With a progress callback, count the new run's task records
    every ``poll_s`` meanwhile; without one (``--json``, the library), only wait: each count
    lists the store (a request per poll on an object store, served while the runner competes for
    the CPU), and a poll's sleep kept the replay waiting up to ``poll_s`` after the runner ended."""
    if progress is None:
        proc.wait()
        return
    new_id: str | None = None
    while True:
        try:
            proc.wait(timeout=poll_s)
            return
        except subprocess.TimeoutExpired:
            pass
        new_id = new_id or _find_new_run(store, before, original)
        if new_id:
            done = len(store.task_run_ids(new_id))
            progress("tasks", "running tasks", min(done, total), total)


def _find_new_run(store: Store, before: set[str], original: str, newest: bool = False) -> str | None:
    """A run that appeared since the replay started and says it replays ``original``.

    Candidates are read in sorted id order and ranked by (start time, run id), so the choice
    does not depend on set or listing order: the earliest by default (the run this runner
    started, while it is still running), the newest with ``newest=True``. The runner's result
    file, when it has the run id, always takes precedence over this guess.
    """
    found: list[RunRecord] = []
    for run_id in sorted(set(store.run_ids()) - before):
        path = store.path("runs", run_id, "run.json")
        try:
            rec = parse_record(store.read_bytes(path), RunRecord, path)
        except (FileNotFoundError, ValueError):
            continue
        if rec.replay_of == original:
            found.append(rec)
    if not found:
        return None
    pick = max if newest else min
    return pick(found, key=lambda r: (r.started_at, r.run_id)).run_id


def _tail(path: Path, n: int = 1500) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-6:])[-n:]


def current_python() -> str:
    return sys.executable


__all__ = ["early_modules", "run_runner", "runner_env", "write_spec"]
