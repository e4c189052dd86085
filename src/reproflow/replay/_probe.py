"""The determinism probe: run a recorded flow twice in one environment and compare three ways.

``reproflow probe RUN_ID`` (current environment by default, ``--rebuild`` for the recorded
one) and ``reproflow replay RUN_ID --twice`` (rebuilt environment by default) both come here.
The code is restored, the inputs verified and the environment staged once; the runner then
runs twice, each a new run linked to the original (``replay_of``). Each recorded task run is
matched to its counterpart in both new runs, and:

* run 1 against run 2 says whether the task is deterministic *here*: when the two runs gave it
  the same parameters and input data and it still produced different outputs, the task itself
  is nondeterministic; when its inputs differed too, it inherited an upstream task's
  nondeterminism;
* each run against the original says whether the environment changed something: a task that
  agrees with itself twice but not with the record is deterministic, and the difference comes
  from the environment, the hardware or the data (the causes are named as by ``replay``).

That separates "our code is nondeterministic" from "the environment changed".
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from ..records import Environment, Run, TaskRecord
from ..store import Store
from ._compare import (compare_task, environment_drift, explain, library_drift, match_tasks, order_dependent_outputs,
                       run_renames, unverified_cause)
from ._models import ProbeResult, ProbeTask, TaskVerdict
from ._plan import Prepared, dag_order
from ._relocate import Relocation
from ._replay import (
    Progress,
    check_inputs,
    execute_once,
    plan,
    restore_code,
    stage_replay,
    verdict_counts,
    workspace,
)

_NONDET_PREFIX = "nondeterminism in this task"


def probe(
    run_id: str,
    store: str | os.PathLike[str] | Store | None = None,
    *,
    rebuild: bool = False,
    dry_run: bool = False,
    python: str | None = None,
    task: str | None = None,
    from_task: str | None = None,
    allow_changed_inputs: bool = False,
    keep: bool = False,
    work_dir: str | os.PathLike[str] | None = None,
    env_cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    require_original: bool = False,
    progress: Progress | None = None,
    on_plan: Callable[[Prepared], None] | None = None,
    params: Mapping[str, str] | None = None,
    engine: str | None = None,
) -> ProbeResult:
    """Run a recorded run twice in the same environment; find the tasks nondeterministic by themselves.

    Args:
        run_id: the run to probe (a unique prefix is enough).
        store: the store URL (default ``$REPROFLOW_STORE``, else ``./.reproflow``) or a Store.
        rebuild: run in the recorded environment rebuilt with uv (as ``replay`` does) instead of
            the current one.
        dry_run: stop after the plan.
        python: an interpreter to build the environment with (with ``rebuild``).
        task: probe only the runs of this task, from their recorded inputs.
        from_task: probe this task and everything downstream of it.
        allow_changed_inputs: go on when an input changed; the comparison with the original
            then names the input.
        keep: keep the work folder (restored code, both runner logs).
        work_dir: use this folder as the work folder (implies ``keep``).
        env_cache: reuse/keep rebuilt environments in the env cache.
        cache_dir: the cache folder (default ``$REPROFLOW_CACHE_DIR`` or ``~/.cache/reproflow``).
        require_original: the exit code also needs both runs to match the original
            (``replay --twice``).
        progress: called with (phase, description, completed, total); phases "env", "tasks".
        on_plan: called with the plan before anything runs.
        params: the secrets redacted when recorded, path -> value (see :func:`reproflow.replay.replay`).
        engine: ``"prefect"`` or ``"tasks"`` (see :func:`reproflow.replay.replay`).

    Returns:
        A :class:`ProbeResult`: per task, a probe verdict (``deterministic``,
        ``nondeterministic``, ``inherited``, ``environment``, ``failed``, ``missing``).

    Raises:
        ReproflowError: the run cannot be replayed (same errors as :func:`replay`).
    """
    timings: dict[str, float] = {}
    t0, wall0 = time.perf_counter(), time.time()
    in_place = not rebuild
    st = store if isinstance(store, Store) else Store(store)
    prepared = plan(run_id, st, in_place=in_place, python=python, task=task, from_task=from_task,
                    env_cache=env_cache, cache_dir=cache_dir, params=params, engine=engine)
    timings["plan"] = time.perf_counter() - t0
    if on_plan is not None:
        on_plan(prepared)
    result = ProbeResult(run_id=prepared.run.run_id, verdict="dry-run", plan=prepared.plan,
                         require_original=require_original, changed_inputs_allowed=allow_changed_inputs)
    if dry_run:
        result.timings = timings
        return result
    if prepared.fatal:
        raise prepared.fatal[0]

    with workspace(work_dir, keep) as (wd, kept):
        source_root, relocation = restore_code(prepared, st, wd, timings)
        result.inputs = check_inputs(prepared, st, allow_changed_inputs, timings, relocation)
        stage = stage_replay(prepared, st, wd, in_place=in_place, env_cache=env_cache, cache_dir=cache_dir,
                             progress=progress, timings=timings, source_root=source_root)
        result.environment = stage.environment
        result.cwd = relocation.cwd(prepared.run.record.cwd)[0]
        result.warnings += stage.warnings
        runs: list[Run] = []
        calls: list[dict[str, str]] = []
        for n in (1, 2):
            report = _labelled(progress, n)
            outcome = execute_once(prepared, st, stage, wd / f"run{n}", in_place=in_place, progress=report,
                                   timings=timings, wall0=wall0, label=f"_{n}")
            result.run_ids.append(str(outcome["run_id"]))
            result.flow_states.append(outcome.get("state"))
            runs.append(st.load_run(str(outcome["run_id"])))
            calls.append(outcome.get("calls") or {})
        t = time.perf_counter()
        _compare_probe(result, prepared, runs[0], runs[1], st, relocation, calls=calls)
        timings["compare"] = time.perf_counter() - t
        result.work_dir = str(wd) if kept else None
    timings["total"] = time.perf_counter() - t0
    result.timings = {k: round(v, 3) for k, v in timings.items()}
    return result


def _labelled(progress: Progress | None, n: int) -> Progress | None:
    """The progress callback with the task phase named per run ("tasks 1", "tasks 2")."""
    if progress is None:
        return None
    inner = progress

    def report(phase: str, description: str, completed: int, total: int) -> None:
        inner(f"{phase} {n}" if phase == "tasks" else phase, description, completed, total)

    return report


def _inputs_key(t: TaskRecord) -> tuple[str, tuple[tuple[str, str | None], ...]]:
    return t.parameters_hash, tuple(sorted((r.uri, r.sha256) for r in t.inputs))


def _compare_probe(result: ProbeResult, prepared: Prepared, run1: Run, run2: Run, st: Store,
                   relocation: Relocation | None = None, calls: list[dict[str, str]] | None = None) -> None:
    original = prepared.run
    partial = prepared.partial is not None
    order_o = dag_order(original)
    racing = order_dependent_outputs(original.final_tasks())
    verdicts: list[list[TaskVerdict]] = []
    matched: list[dict[str, TaskRecord | None]] = []
    extras: list[list[TaskRecord]] = []
    for i, new in enumerate((run1, run2)):
        pairs, extra = match_tasks(prepared.selected, new.final_tasks(), order_o, dag_order(new), by_position=partial,
                                   relocation=relocation, calls=(calls or [{}, {}])[i] if partial else None)
        matched.append({o.task_run_id: n for o, n in pairs})
        runs = (original.final_tasks(), new.final_tasks())
        verdicts.append([compare_task(o, n, relocation, runs=runs, order_dependent=racing,
                                      renames=run_renames(original.record, new.record, o, n)) for o, n in pairs])
        extras.append(extra)

    old_env = prepared.environment
    new_env: Environment | None = None
    new_hw = None
    if run1.context is not None:
        new_env = st.get_model_blob(run1.context.environment_blob, Environment)
        new_hw = run1.context.hardware
    assert original.context is not None
    result.drift = environment_drift(old_env, new_env, original.context.hardware, new_hw)
    result.drift += library_drift(st, original, run1)
    for vs in verdicts:
        explain(vs, original, result.drift, result.inputs)

    from ..recorder._dag import upstream_map

    ups = upstream_map(original)
    names = {t.task_run_id: t.task_name for t in original.final_tasks()}
    unstable: set[str] = set()  # original task run ids whose two runs differ
    racing_1 = order_dependent_outputs(run1.final_tasks())  # outputs of the first run the order decided
    tasks: list[ProbeTask] = []
    for i, o in enumerate(prepared.selected):  # DAG order: upstream verdicts come first
        v1, v2 = verdicts[0][i], verdicts[1][i]
        n1, n2 = matched[0].get(o.task_run_id), matched[1].get(o.task_run_id)
        p = ProbeTask(
            task_name=o.task_name, function=o.function, map_index=o.map_index, subflow=o.subflow,
            original_task_run_id=o.task_run_id,
            run_task_run_ids=[n1.task_run_id if n1 else None, n2.task_run_id if n2 else None],
            verdict="deterministic", vs_original=[v1.verdict, v2.verdict],
            result_hashes=[o.result_hash, n1.result_hash if n1 else None, n2.result_hash if n2 else None],
        )
        upstream_unstable = sorted({names[s] for srcs in ups.get(o.task_run_id, {}).values() for s in srcs
                                    if s in unstable and s in names})
        if n1 is None or n2 is None:
            p.verdict = "missing"
            which = " and ".join(f"run {k}" for k, n in ((1, n1), (2, n2)) if n is None)
            p.causes.append(f"{which} never ran this task (the flow took another path or stopped before it)")
            if (n1 is None) != (n2 is None):
                unstable.add(o.task_run_id)
                p.causes.append("one run ran it and the other did not: the flow's path is nondeterministic")
            tasks.append(p)
            continue
        between = compare_task(n1, n2, order_dependent=racing_1, renames=run_renames(run1.record, run2.record, n1, n2))
        # unverified: all that was compared agrees, but the return values have no stable hash
        p.between_runs = None if between.verdict == "unverified" else between.verdict == "reproduced"
        p.same_inputs = _inputs_key(n1) == _inputs_key(n2)
        p.differing_outputs = [c.uri for c in between.outputs if not c.match]
        p.error = v1.error or v2.error
        failed = [k for k, v in ((1, v1), (2, v2)) if v.verdict == "failed"]
        if failed:
            p.verdict = "failed"
            p.causes.append(f"it raised in run {' and '.join(map(str, failed))}: {p.error}")
            if p.between_runs is False:
                unstable.add(o.task_run_id)
        elif p.between_runs is False:
            unstable.add(o.task_run_id)
            if p.same_inputs:
                p.verdict = "nondeterministic"
                p.causes.append(_nondet_cause(o, n1, bool(p.differing_outputs)))
            else:
                p.verdict = "inherited"
                origin = (f"upstream task(s) {', '.join(upstream_unstable)} differ between the runs"
                          if upstream_unstable else "its parameters were computed differently by the flow in each run")
                p.causes.append(f"its inputs differed between the two runs: {origin}")
        elif v1.verdict not in ("reproduced", "unverified") or v2.verdict not in ("reproduced", "unverified"):
            p.verdict = "environment"
            p.causes.append("deterministic here (both runs agree), but different from the original:")
            causes = [c for c in v1.causes if not c.startswith(_NONDET_PREFIX)]
            p.causes += causes or ["the recorded run saw something the record does not show "
                                   "(an undeclared file, an environment variable, a service, the clock)"]
        elif p.between_runs is None or "unverified" in (v1.verdict, v2.verdict):
            p.verdict = "unverified"
            what = between.result_unhashable or v1.result_unhashable or v2.result_unhashable or "it"
            p.causes.append(unverified_cause(what))
        tasks.append(p)
    for k, extra in enumerate(extras, start=1):
        for n in extra:
            unstable.add(n.task_run_id)
            tasks.append(ProbeTask(task_name=n.task_name, function=n.function, map_index=n.map_index, subflow=n.subflow,
                                   verdict="missing", run_task_run_ids=[n.task_run_id if k == 1 else None,
                                                                        n.task_run_id if k == 2 else None],
                                   causes=[f"run {k} ran a task run the original did not"]))
    result.tasks = tasks
    result.counts = verdict_counts(t.verdict for t in tasks)
    # Unverified tasks differ in nothing compared; counted apart, they neither make the run
    # nondeterministic nor count as proven: with nothing else to compare, it is not deterministic.
    checked = [t for t in tasks if t.verdict != "unverified"]
    result.deterministic = bool(checked or not tasks) and all(t.verdict in ("deterministic", "environment") for t in checked)
    result.reproduced = result.deterministic and all(t.verdict == "deterministic" for t in checked) and not any(
        i.status in ("changed", "missing") for i in result.inputs)
    if tasks and not checked:
        result.verdict = "unverified"
    else:
        result.verdict = "deterministic" if result.deterministic else "nondeterministic"


def _nondet_cause(o: TaskRecord, n1: TaskRecord, outputs_differ: bool) -> str:
    what = "outputs" if outputs_differ else "result"
    cause = f"same inputs, different {what} in two runs in the same environment: the task itself is nondeterministic"
    flagged = sorted({f"{f.code}" for f in o.findings if f.code.upper().startswith("RPF1")})
    if flagged:
        cause += f"; the checks flagged it ({', '.join(flagged)})"
    seed = n1.seed if n1.seed is not None else o.seed
    cause += f" (seed {seed})" if seed is not None else "; no seed was set: try @repro_task(seed=...)"
    return cause


__all__ = ["probe"]
