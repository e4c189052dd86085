"""``replay(run_id)``: plan, verify inputs, rebuild, restore, re-execute, compare.

Order matters for the promises in docs/replay.md: the code is restored into the work folder
(never the user's tree) and every input is verified before anything is built or run (a changed byte refuses in a second, not after an environment build), and nothing
is written to the store except by the replayed run itself, through the recording decorator.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..records import Environment, Run
from ..store import Store
from ._compare import (compare_task, environment_causes, environment_drift, explain, library_drift, match_tasks,
                       order_dependent_outputs, run_renames)
from ._envbuild import build_environment, env_cache_root
from ._execute import early_modules, run_runner, runner_env
from ._inputs import verify_inputs
from ._models import EnvironmentInfo, InputCheck, ReplayResult, TaskVerdict
from ._plan import Prepared, dag_order, prepare
from ._relocate import Relocation, recorded_source_root
from ._source import restore_source
from ._uv import IndexConfig, find_uv, index_config
from ._warm import ensure, save_hint, stop_all

Progress = Callable[[str, str, int, int], None]  # (phase, description, completed, total)


def plan(
    run_id: str,
    store: str | os.PathLike[str] | Store | None = None,
    *,
    in_place: bool = False,
    python: str | None = None,
    task: str | None = None,
    from_task: str | None = None,
    env_cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    params: Mapping[str, str] | None = None,
    index: IndexConfig | None = None,
    engine: str | None = None,
) -> Prepared:
    """Load, validate and plan a replay without running or writing anything.

    ``params`` gives the secrets redacted when recorded (path -> value; the rest come from
    ``$REPROFLOW_PARAM_<PATH>``); ``index`` replaces this machine's index configuration (a
    pack's own distribution files); ``engine`` is ``"prefect"`` or ``"tasks"`` (None: the run's
    default, see :func:`reproflow.replay._plan.choose_engine`)."""
    st = store if isinstance(store, Store) else Store(store)
    uv_bin = None if in_place else find_uv()
    idx = (index or index_config()) if not in_place else None
    root = None if (in_place or not env_cache) else (Path(cache_dir) / "envs" if cache_dir else env_cache_root())
    return prepare(
        st, run_id, in_place=in_place, python=python, task=task, from_task=from_task,
        cache_root=root, uv_bin=uv_bin, index_source=idx.source if idx else "", params=params, engine=engine,
    )


def replay(
    run_id: str,
    store: str | os.PathLike[str] | Store | None = None,
    *,
    dry_run: bool = False,
    in_place: bool = False,
    python: str | None = None,
    task: str | None = None,
    from_task: str | None = None,
    allow_changed_inputs: bool = False,
    keep: bool = False,
    work_dir: str | os.PathLike[str] | None = None,
    env_cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    on_plan: Callable[[Prepared], None] | None = None,
    params: Mapping[str, str] | None = None,
    index: IndexConfig | None = None,
    engine: str | None = None,
) -> ReplayResult:
    """Replay a recorded run and compare it, task by task, with the original.

    Args:
        run_id: the run to replay (a unique prefix is enough).
        store: the store URL (default ``$REPROFLOW_STORE``, else ``./.reproflow``) or a Store.
        dry_run: stop after the plan.
        in_place: run in the current environment (no rebuild); the drift is reported.
        python: an interpreter to build the environment with, instead of searching.
        task: replay only the runs of this task, from their recorded inputs.
        from_task: replay this task and everything downstream of it.
        allow_changed_inputs: go on when an input changed; the verdict says so.
        keep: keep the work folder (restored code, runner log) and print where it is.
        work_dir: use this folder as the work folder (implies ``keep``).
        env_cache: reuse/keep rebuilt environments in the env cache (False: build in the work folder).
        cache_dir: the cache folder (default ``$REPROFLOW_CACHE_DIR`` or ``~/.cache/reproflow``).
        progress: called with (phase, description, completed, total); phases "env" and "tasks".
        on_plan: called with the plan before anything runs (the CLI prints it).
        params: the secrets redacted when recorded, path -> value (``--param``); the others
            are read from ``$REPROFLOW_PARAM_<PATH>``, and a missing one stops the replay.
        index: where uv finds the pins, instead of this machine's index configuration (a
            pack's distribution files: ``--no-index --find-links DIR``).
        engine: ``"tasks"``: call the recorded tasks one by one in DAG order, each fed the
            replayed outputs of its upstream tasks and the recorded values of the rest, with no
            orchestrator; ``"prefect"``: run the recorded Prefect flow again. None: Prefect runs
            re-run their flow, plain runs their script, Airflow, Snakemake and command runs
            replay task by task.

    Returns:
        A :class:`ReplayResult`; ``result.reproduced`` is True only if every task reproduced.

    Raises:
        ReproflowError: the run cannot be replayed (unknown id, newer schema, Python not
            available, a pin that no longer resolves, a changed input, ...), one line each.
    """
    try:
        return _replay(run_id, store, dry_run=dry_run, in_place=in_place, python=python, task=task,
                       from_task=from_task, allow_changed_inputs=allow_changed_inputs, keep=keep, work_dir=work_dir,
                       env_cache=env_cache, cache_dir=cache_dir, progress=progress, on_plan=on_plan, params=params,
                       index=index, engine=engine)
    finally:
        stop_all()  # a runner started early and not handed its spec (a check failed) ends here


def _replay(run_id: str, store: str | os.PathLike[str] | Store | None, *, dry_run: bool, in_place: bool,
            python: str | None, task: str | None, from_task: str | None, allow_changed_inputs: bool, keep: bool,
            work_dir: str | os.PathLike[str] | None, env_cache: bool, cache_dir: str | os.PathLike[str] | None,
            progress: Progress | None, on_plan: Callable[[Prepared], None] | None, params: Mapping[str, str] | None,
            index: IndexConfig | None, engine: str | None) -> ReplayResult:
    timings: dict[str, float] = {}
    t0, wall0 = time.perf_counter(), time.time()
    st = store if isinstance(store, Store) else Store(store)
    prepared = plan(run_id, st, in_place=in_place, python=python, task=task, from_task=from_task,
                    env_cache=env_cache, cache_dir=cache_dir, params=params, index=index, engine=engine)
    timings["plan"] = time.perf_counter() - t0
    if on_plan is not None:
        on_plan(prepared)
    result = ReplayResult(run_id=prepared.run.run_id, verdict="dry-run", plan=prepared.plan,
                          changed_inputs_allowed=allow_changed_inputs)
    if dry_run:
        result.timings = timings
        return result
    if prepared.fatal:
        raise prepared.fatal[0]
    _start_early(prepared, st, run_id, store, in_place=in_place, cache_dir=cache_dir)
    return _replay_planned(prepared, st, result, timings, t0, wall0, in_place=in_place, env_cache=env_cache,
                           cache_dir=cache_dir, allow_changed_inputs=allow_changed_inputs, keep=keep,
                           work_dir=work_dir, progress=progress, index=index)


def _start_early(prepared: Prepared, st: Store, run_id: str, store: object, *, in_place: bool,
                 cache_dir: str | os.PathLike[str] | None) -> None:
    """When the environment is there already, start its runner now: it imports Prefect while
    the code is restored and the inputs are hashed, and waits for them (see ``_warm``). Leave a
    hint for the next replay of the same run to start it even before the plan."""
    python = sys.executable if in_place else prepared.cached_python
    modules = early_modules(prepared)
    if python is None or modules is None:
        return
    env = runner_env(prepared, st, python, in_place)
    ensure(python, env, modules)
    if isinstance(store, (str, type(None))):
        rec = prepared.run.record
        save_hint(run_id, store, python=python, in_place=in_place, store_url=st.url, replay_of=rec.run_id,
                  seed=rec.seed, pythonhashseed=rec.pythonhashseed, modules=modules,
                  cache_dir=str(cache_dir) if cache_dir else None)


def _replay_planned(prepared: Prepared, st: Store, result: ReplayResult, timings: dict[str, float], t0: float,
                    wall0: float, *, in_place: bool, env_cache: bool, cache_dir: str | os.PathLike[str] | None,
                    allow_changed_inputs: bool, keep: bool, work_dir: str | os.PathLike[str] | None,
                    progress: Progress | None, index: IndexConfig | None) -> ReplayResult:
    with workspace(work_dir, keep) as (wd, kept):
        # 1. the code, and 2. the inputs (checked there when inside the source root), before
        # anything is built or run
        source_root, relocation = restore_code(prepared, st, wd, timings)
        result.inputs = check_inputs(prepared, st, allow_changed_inputs, timings, relocation)
        # 3. environment
        stage = stage_replay(prepared, st, wd, in_place=in_place, env_cache=env_cache, cache_dir=cache_dir,
                             progress=progress, timings=timings, source_root=source_root, index=index)
        result.environment = stage.environment
        result.cwd = relocation.cwd(prepared.run.record.cwd)[0]
        result.warnings += stage.warnings

        # 4. run
        outcome = execute_once(prepared, st, stage, wd, in_place=in_place, progress=progress, timings=timings,
                               wall0=wall0)
        result.replay_run_id = outcome["run_id"]
        result.flow_state = outcome.get("state")
        result.flow_message = outcome.get("message")
        if prepared.partial is None:  # the recorded run's end stands for the whole flow only
            result.recorded_state = prepared.run.status

        # 5. compare
        t = time.perf_counter()
        new_run = _replayed_run(st, prepared, outcome)
        _compare(result, prepared, new_run, st, relocation, calls=outcome.get("calls"))
        timings["compare"] = time.perf_counter() - t
        result.work_dir = str(wd) if kept else None
    timings["total"] = time.perf_counter() - t0
    result.timings = {k: round(v, 3) for k, v in timings.items()}
    return result


@dataclass
class Stage:
    """A ready replay: the environment to run in and the restored code."""

    environment: EnvironmentInfo
    source_root: Path
    warnings: list[str] = field(default_factory=list)


def restore_code(prepared: Prepared, st: Store, wd: Path, timings: dict[str, float]) -> tuple[Path, Relocation]:
    """Restore the recorded code into ``wd/source``; the mapping from the recorded source root
    to it (paths inside the root are read and written there, never in the user's tree)."""
    t = time.perf_counter()
    assert prepared.run.context is not None
    restored = restore_source(prepared.run.context, st, wd / "source")
    timings["restore_source"] = time.perf_counter() - t
    root = Path(os.path.realpath(restored.root))  # the flow's os.getcwd() gives the resolved path
    return root, Relocation(recorded_source_root(prepared.run.context), str(root))


def check_inputs(prepared: Prepared, st: Store, allow_changed: bool, timings: dict[str, float],
                 relocation: Relocation | None = None) -> list[InputCheck]:
    """Verify (or restore) every external input of the selected tasks; raises on a change.

    With ``relocation``, inputs inside the recorded source root are checked (and restored) in
    the restored code.
    """
    t = time.perf_counter()
    checks = verify_inputs(prepared.plan.inputs, prepared.selected, st, allow_changed=allow_changed,
                           relocation=relocation, run_tasks=prepared.run.tasks)
    prepared.deferred_dirs = [c.location for c in checks if c.deferred and c.location]
    timings["verify_inputs"] = time.perf_counter() - t
    return checks


@contextmanager
def workspace(work_dir: str | os.PathLike[str] | None, keep: bool) -> Iterator[tuple[Path, bool]]:
    """The replay's work folder: a fresh temporary one (removed on exit unless ``keep``), or
    ``work_dir`` (always kept). Yields (folder, kept)."""
    own = work_dir is None
    wd = Path(tempfile.mkdtemp(prefix="reproflow-replay-")) if own else Path(work_dir)  # type: ignore[arg-type]
    wd.mkdir(parents=True, exist_ok=True)
    kept = keep or not own
    try:
        yield wd, kept
    finally:
        if not kept:
            shutil.rmtree(wd, ignore_errors=True)


def stage_replay(
    prepared: Prepared,
    st: Store,
    wd: Path,
    *,
    in_place: bool,
    env_cache: bool,
    cache_dir: str | os.PathLike[str] | None,
    progress: Progress | None,
    timings: dict[str, float],
    source_root: Path | None = None,
    index: IndexConfig | None = None,
) -> Stage:
    """Build (or reuse, or skip with ``in_place``) the environment and restore the code into
    ``wd`` (unless ``source_root`` says where it already is)."""
    t = time.perf_counter()
    env_info = _environment(prepared, st, wd, in_place=in_place, env_cache=env_cache, cache_dir=cache_dir,
                            progress=progress, index=index)
    timings["environment"] = time.perf_counter() - t
    warnings = [prepared.choice.warning] if prepared.choice is not None and prepared.choice.warning else []
    if source_root is None:
        source_root, _ = restore_code(prepared, st, wd, timings)
    return Stage(env_info, source_root, warnings)


def execute_once(
    prepared: Prepared,
    st: Store,
    stage: Stage,
    run_dir: Path,
    *,
    in_place: bool,
    progress: Progress | None,
    timings: dict[str, float],
    wall0: float,
    label: str = "",
) -> dict[str, Any]:
    """Run the flow (or the chosen tasks) once in the staged environment; the runner's outcome."""
    t = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    outcome = run_runner(prepared, st, python=stage.environment.python, source_root=stage.source_root,
                         work_dir=run_dir, in_place=in_place, progress=progress)
    timings["run" + label] = time.perf_counter() - t
    if outcome.get("started_at") and "to_flow_call" not in timings:
        timings["to_flow_call"] = float(outcome["started_at"]) - wall0
    return outcome


def _environment(
    prepared: Prepared,
    st: Store,
    wd: Path,
    *,
    in_place: bool,
    env_cache: bool,
    cache_dir: str | os.PathLike[str] | None,
    progress: Progress | None,
    index: IndexConfig | None = None,
) -> EnvironmentInfo:
    import platform

    if in_place:
        return EnvironmentInfo(mode="in-place", python=sys.executable, python_version=platform.python_version())
    ctx = prepared.run.context
    assert ctx is not None
    if prepared.cached_python is not None:
        assert prepared.plan.env_cache is not None
        if progress:
            progress("env", "reusing cached environment", 1, 1)
        return EnvironmentInfo(mode="rebuild", path=prepared.plan.env_cache, python=prepared.cached_python,
                               python_version=prepared.environment.python.version, reused=True,
                               n_pins=prepared.plan.n_pins)
    assert prepared.choice is not None
    root = None if not env_cache else (Path(cache_dir) / "envs" if cache_dir else env_cache_root())
    report = (lambda desc, done, total: progress("env", desc, done, total)) if progress else None
    built = build_environment(
        prepared.environment,
        choice=prepared.choice,
        store=st,
        uv_bin=find_uv(),
        index=index or index_config(),
        cache_root=root,
        work_dir=wd,
        progress=report,
        plan=prepared.env_plan,
    )
    return EnvironmentInfo(mode="rebuild", path=str(built.path), python=built.python,
                           python_version=built.python_version, reused=built.reused,
                           build_seconds=round(built.seconds, 3), n_pins=built.n_pins)


def _replayed_run(st: Store, prepared: Prepared, outcome: Mapping[str, Any]) -> Run:
    """The replay's run as recorded; an empty one when nothing was recorded: a flow run is
    recorded when its first task starts, so a replayed flow that failed in its body before any
    task (a data file it reads is gone) left none, and every recorded task is then missing."""
    from ..errors import RunNotFound
    from ..records import RunRecord

    run_id = str(outcome.get("run_id") or "")
    try:
        if run_id:
            return st.load_run(run_id)
    except RunNotFound:
        pass
    return Run(record=RunRecord(run_id=run_id or "-", flow_name=prepared.run.record.flow_name, context=""))


def _compare(result: ReplayResult, prepared: Prepared, new_run: Run, st: Store,
             relocation: Relocation | None = None, calls: dict[str, str] | None = None) -> None:
    original = prepared.run
    new_tasks = new_run.final_tasks()
    partial = prepared.partial is not None
    pairs, extra = match_tasks(prepared.selected, new_tasks, dag_order(original), dag_order(new_run),
                               by_position=partial, relocation=relocation, calls=calls if partial else None)
    written = {os.path.normpath(r.uri) if "://" not in r.uri else r.uri: r for t in new_tasks for r in t.outputs}
    runs = (original.final_tasks(), new_tasks)
    racing = order_dependent_outputs(runs[0])
    verdicts: list[TaskVerdict] = [compare_task(o, n, relocation, written, runs=runs, order_dependent=racing,
                                                renames=run_renames(original.record, new_run.record, o, n))
                                   for o, n in pairs]
    for n in extra:
        verdicts.append(TaskVerdict(task_name=n.task_name, function=n.function, map_index=n.map_index, subflow=n.subflow,
                                    replay_task_run_id=n.task_run_id, replay_state=n.state, verdict="extra",
                                    replay_result_hash=n.result_hash,
                                    causes=["the replay ran a task run the original did not"]))
    old_env = prepared.environment
    new_env: Environment | None = None
    new_hw = None
    if new_run.context is not None:
        new_env = st.get_model_blob(new_run.context.environment_blob, Environment)
        new_hw = new_run.context.hardware
    assert original.context is not None
    result.drift = environment_drift(old_env, new_env, original.context.hardware, new_hw)
    result.drift += library_drift(st, original, new_run)
    explain(verdicts, original, result.drift, result.inputs,
            env_causes=_environment_causes(verdicts, original, old_env, new_env, relocation))
    conclude(result, verdicts)


def _environment_causes(verdicts: list[TaskVerdict], original: Run, old_env: Environment | None,
                        new_env: Environment | None, relocation: Relocation | None) -> dict[str, list[str]]:
    """Per task run that did not reproduce: the environment variables its function reads (found
    in the restored code) that the replay set otherwise than the recording."""
    from ..checks import environment_names_read

    if old_env is None or new_env is None or relocation is None:
        return {}
    by_id = {t.task_run_id: t for t in original.final_tasks()}
    sources: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for v in verdicts:
        o = by_id.get(v.original_task_run_id or "")
        if v.verdict in ("reproduced", "unverified", "missing") or o is None or not o.function_file:
            continue
        path = os.path.join(relocation.restored_root, o.function_file)
        if path not in sources:
            try:
                sources[path] = Path(path).read_text(encoding="utf-8", errors="replace")
            except OSError:
                sources[path] = ""
        names = environment_names_read(sources[path], (o.function or "").partition(":")[2] or None)
        causes = environment_causes(names, old_env.env_vars, new_env.env_vars)
        if causes:
            out[o.task_run_id] = causes
    return out


def conclude(result: ReplayResult, verdicts: list[TaskVerdict]) -> None:
    """Set the run's verdict, ``reproduced`` and the counts per verdict from its task verdicts."""
    result.tasks = verdicts
    result.counts = verdict_counts(v.verdict for v in verdicts)
    changed = any(i.status in ("changed", "missing") for i in result.inputs)
    # Unverified tasks (no stable hash of the return value) differ in nothing that was compared;
    # they are counted apart, and a run where nothing at all could be compared is not reproduced.
    all_same = all(v.verdict in ("reproduced", "unverified") for v in verdicts)  # no task: nothing differs
    none_checked = bool(verdicts) and all(v.verdict == "unverified" for v in verdicts)
    result.reproduced = all_same and not changed and not none_checked
    if all_same and changed:
        result.verdict = "reproduced-with-changed-inputs"
    elif none_checked:
        result.verdict = "unverified"
    else:
        result.verdict = "reproduced" if result.reproduced else "not-reproduced"
    if result.flow_end_differs:  # the flow body raised after its tasks, or a recorded failure did not recur
        result.reproduced, result.verdict = False, "not-reproduced"


def verdict_counts(verdicts: Iterable[str]) -> dict[str, int]:
    """Task runs per verdict, in a fixed order of verdicts (only those that occur)."""
    counted = Counter(verdicts)
    order = ["reproduced", "unverified", "differs", "failed", "missing", "extra", "deterministic",
             "nondeterministic", "inherited", "environment"]
    return {k: counted[k] for k in sorted(counted, key=lambda k: (order.index(k) if k in order else len(order), k))}


__all__ = ["Stage", "check_inputs", "conclude", "execute_once", "plan", "replay", "restore_code", "stage_replay", "verdict_counts",
           "workspace"]
