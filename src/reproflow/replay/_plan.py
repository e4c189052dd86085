"""Plan a replay: load and validate the run, its tasks and DAG, and say what will be rebuilt.

Nothing here writes anything or runs the recorded code; ``reproflow replay --dry-run`` stops
after it. Problems that would stop the replay are collected (with the error that will be raised)
rather than raised at once, so a dry run can show all of them.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import errors
from ..capture._files import EMPTY_TREE
from ..values._scrub import REDACTED, is_redacted
from ..values._typed import has_opaque, opaque_marker
from ..records import Environment, ProcessContext, Run, TaskRecord
from ..store import Store
from ._guard import record_problems
from ._envbuild import EnvPlan, cached_env, env_key, plan_environment
from ._inputs import external_inputs, mark_written
from ._models import PlannedTask, ReplayPlan
from ._python import InterpreterChoice, choose_interpreter, uv_installed_paths
from ._relocate import recorded_source_root, relative_to_root
from ._secrets import supplied
from ._source import checkout_note, describe_source, snapshot_names


#: ``--engine`` choices: re-run the recorded Prefect flow, or call the tasks one by one
ENGINES = ("prefect", "tasks")
#: engines whose runs have no flow to re-run: they replay task by task by default
TASK_BY_TASK_ENGINES = ("airflow", "snakemake", "command")


@dataclass
class PartialItem:
    """One task run of a replay task by task and where each of its parameters comes from.

    ``command`` is set for a task with no function to call (a shell rule) whose record holds the
    command it ran (``engine_info["command"]``): the replay runs that command again."""

    task: TaskRecord
    params: dict[str, dict[str, object]]  #: name -> {"kind": "typed"|"from"|"blob", ...}
    command: str | list[str] | None = None


@dataclass
class Prepared:
    """A plan plus what the replay needs to act on it."""

    plan: ReplayPlan
    run: Run
    environment: Environment
    env_plan: EnvPlan
    selected: list[TaskRecord]
    #: the task runs to call one by one (a replay task by task: ``--engine tasks``, ``--task``,
    #: ``--from``); None when the recorded flow or script runs again
    partial: list[PartialItem] | None = None
    choice: InterpreterChoice | None = None
    cached_python: str | None = None
    fatal: list[errors.ReproflowError] = field(default_factory=list)
    #: empty folders left for the run to make (see ``InputCheck.deferred``), set by the input check
    deferred_dirs: list[str] = field(default_factory=list)


def load_run(store: Store, run_id: str) -> tuple[Run, Environment]:
    """The run with every task attempt and its recorded environment, all validated.

    Raises:
        RunNotFound, NewerSchema, CorruptRecord, BlobError: the record cannot be used.
    """
    run = store.load_run(run_id)
    if run.context is None:  # pragma: no cover - load_run always loads it
        raise errors.CorruptRecord.at(store.run_dir(run.run_id), "the run has no process context")
    env = store.get_model_blob(run.context.environment_blob, Environment)
    return run, env


def dag_order(run: Run) -> dict[str, tuple[int, int]]:
    """task_run_id -> (depth in the DAG, start position): the order tasks are replayed and matched."""
    from ..recorder._dag import edges

    tasks = run.final_tasks()
    pos = {t.task_run_id: i for i, t in enumerate(tasks)}
    ups: dict[str, set[str]] = {t.task_run_id: set() for t in tasks}
    for e in edges(run):
        if e.dst in ups and e.src in pos:
            ups[e.dst].add(e.src)
    depth: dict[str, int] = {}
    for t in tasks:  # start order: producers start before consumers
        depth[t.task_run_id] = 1 + max((depth.get(u, 0) for u in ups[t.task_run_id]), default=-1)
    return {tid: (depth[tid], pos[tid]) for tid in pos}


def _whole_run(run: Run) -> str:
    """How to replay a run whose task cannot be called alone: by running its flow again."""
    return ("with --engine prefect, " if run.record.engine == "prefect" else "") + "without --task or --from"


def _matches(task: TaskRecord, name: str) -> bool:
    qual = (task.function or "").partition(":")[2]
    return name in (task.task_name, task.task_key, qual, qual.rsplit(".", 1)[-1], task.task_run_id)


def select_tasks(run: Run, task: str | None, from_task: str | None) -> tuple[list[TaskRecord], str | None]:
    """The task runs to replay: all, ``--task NAME``'s runs, or ``--from NAME`` and downstream."""
    final = run.final_tasks()
    order = dag_order(run)
    final.sort(key=lambda t: order[t.task_run_id])
    if task is None and from_task is None:
        return final, None
    if task is not None and from_task is not None:
        raise errors.PartialReplayRefused.because("give --task or --from, not both")
    name = task if task is not None else from_task
    assert name is not None
    chosen = {t.task_run_id for t in final if _matches(t, name)}
    if not chosen:
        names = sorted({t.task_name for t in final})
        raise errors.PartialReplayRefused.because(
            f"no task named {name!r} in run {run.run_id}; its tasks are: {', '.join(names) or 'none'}"
        )
    if from_task is not None:
        from ..recorder._dag import edges, reachable

        down: dict[str, set[str]] = {}
        for e in edges(run):
            down.setdefault(e.src, set()).add(e.dst)
        chosen |= reachable(down, chosen)
    label = f"--task {task}" if task is not None else f"--from {from_task}"
    return [t for t in final if t.task_run_id in chosen], label


#: the first word of a command built for the replay that stands for the replay environment's
#: Python (the runner puts its own interpreter there; no recorded interpreter path is run)
REPLAY_PYTHON = "{replay-python}"

_RULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _portable_path(value: object, what: str, label: str, refuse: Callable[..., Exception]) -> str:
    """A recorded path that goes on a command line: relative, inside the working directory,
    never read as an option (records are untrusted)."""
    if (not isinstance(value, str) or not value or os.path.isabs(value) or value.startswith("-")
            or any(c in value for c in "\0\n\r") or ".." in Path(value).parts):
        raise refuse(f"task {label!r} recorded {what} {value!r}, which is not a relative path inside its "
                     "working directory, so it cannot be replayed", task=label)
    return value


def snakemake_command(run: Run, task: TaskRecord,
                      refuse: Callable[..., Exception] = errors.TaskReplayRefused.because) -> list[str] | None:
    """The command that re-runs one recorded Snakemake job (``reproflow.snakemake``), in the
    restored working directory, with the replay environment's Snakemake: that job's rule only,
    forced, its recorded outputs as targets (files from upstream jobs are taken as they are).

    Works for every rule kind (``shell:``, ``script:``, ``run:``): none of them records an
    interpreter path that is run. None for a task Snakemake did not record.

    Raises:
        ``refuse``: the recorded rule, an output or the Snakefile is not safe on a command line.
    """
    info = task.engine_info
    if task.engine != "snakemake" or "rule" not in info:
        return None
    from ..recorder._dag import task_label

    label = task_label(task)
    rule = info.get("rule")
    if not isinstance(rule, str) or not _RULE.match(rule):
        raise refuse(f"task {label!r} recorded the Snakemake rule {rule!r}, which is not a rule name",
                     task=label)
    outputs = info.get("output")
    if not isinstance(outputs, list) or not outputs:
        raise refuse(f"task {label!r} recorded no output files of its Snakemake job to re-run it for",
                     task=label)
    targets = [_portable_path(o, "the output", label, refuse) for o in outputs]
    cmd = [REPLAY_PYTHON, "-m", "snakemake", "--cores", "1", "--force", "--allowed-rules", rule]
    argv = run.record.engine_info.get("argv")
    if isinstance(argv, list):
        words = [str(a) for a in argv]
        for i, word in enumerate(words):
            if word in ("-s", "--snakefile") and i + 1 < len(words):
                cmd += ["--snakefile", _portable_path(words[i + 1], "the Snakefile", label, refuse)]
            elif word.startswith("--snakefile="):
                cmd += ["--snakefile", _portable_path(word.split("=", 1)[1], "the Snakefile", label, refuse)]
    return [*cmd, "--", *targets]


def recorded_command(task: TaskRecord) -> str | list[str] | None:
    """The command a task ran, when its record holds one: ``engine_info["command"]`` (a shell
    line, or an argument list), else ``engine_info["argv"]`` (``reproflow job -- CMD``), e.g. a
    Snakemake ``shell:`` rule or a Makefile recipe."""
    for key in ("command", "argv"):
        cmd = task.engine_info.get(key)
        if isinstance(cmd, str) and cmd.strip():
            return cmd
        if isinstance(cmd, list) and cmd and all(isinstance(c, str) for c in cmd):
            return [str(c) for c in cmd]
    return None


def partial_sources(run: Run, selected: list[TaskRecord], *, partial: bool = True) -> list[PartialItem]:
    """Where each parameter of each selected task comes from in a replay task by task.

    A value produced by a selected upstream task is fed from its new result (the parameter's
    recorded hash equals that task's recorded result hash); else the recorded typed value is
    used; else the upstream task's stored pickled result (``store_results=True``). A task with
    no function to call runs its recorded command again.

    Args:
        partial: only some tasks were chosen (``--task``/``--from``); the refusal says so.

    Raises:
        TaskReplayRefused (PartialReplayRefused when ``partial``): a task has neither a function
            to call nor a recorded command, or a parameter can be had from none of those.
    """
    from ..recorder._dag import task_label, upstream_map

    refuse = errors.PartialReplayRefused.because if partial else errors.TaskReplayRefused.because
    by_id = {t.task_run_id: t for t in run.final_tasks()}
    ups = upstream_map(run)
    chosen = {t.task_run_id for t in selected}
    items: list[PartialItem] = []
    for t in selected:
        label = task_label(t)
        if not t.function or t.function.startswith("?"):
            command = snakemake_command(run, t, refuse) or recorded_command(t)
            qualname = (t.function or "").partition(":")[2]
            if command is None and qualname:
                # a callable object's method, a bound method (recorder._callee): named, not callable
                raise refuse(f"task {label!r} calls {qualname} on an object whose state is not in the record, "
                             f"so it cannot be called alone; replay the whole run ({_whole_run(run)})", task=label)
            if command is None:
                raise refuse(f"task {label!r} has no recorded function to call and no recorded command to run",
                             task=label)
            if REDACTED in (command if isinstance(command, str) else " ".join(command)):
                raise refuse(f"the recorded command of task {label!r} holds a secret that was redacted when "
                             "recorded, so it cannot run again", task=label)
            items.append(PartialItem(t, {}, command))
            continue
        if "<locals>" in t.function:  # a task a factory made: its variables are the task's too
            raise refuse(f"task {label!r} calls {t.function.partition(':')[2]}, defined inside a function whose "
                         f"variables are not in the record, so it cannot be called alone; replay the whole run "
                         f"({_whole_run(run)})", task=label)
        params: dict[str, dict[str, object]] = {}
        for name, typed in t.parameters.items():
            digest = t.parameter_hashes.get(name)
            srcs = [by_id[s] for s in ups.get(t.task_run_id, {}).get(name, []) if s in by_id]
            direct = [u for u in srcs if u.result_hash and u.result_hash == digest]
            if direct and direct[0].task_run_id in chosen:
                params[name] = {"kind": "from", "task_run_id": direct[0].task_run_id}
            elif not has_opaque(typed) or _only_redacted(typed):  # a missing secret is reported on its own
                params[name] = {"kind": "typed", "value": typed}
            elif direct and direct[0].result_blob:
                params[name] = {"kind": "blob", "digest": direct[0].result_blob}
            else:
                origin = f"upstream task {task_label(direct[0])!r}" if direct else "its caller"
                rest = "replay the whole run" if partial else "replay it as the recorded flow (--engine prefect)"
                if not partial and run.record.engine != "prefect":
                    rest = "record a value the replay can rebuild"
                raise refuse(
                    f"parameter {name!r} of task {label!r} came from {origin} as a value that was "
                    f"not stored; record that task with @repro_task(store_results=True), or {rest}",
                    task=label,
                )
        items.append(PartialItem(t, params))
    return items


def choose_engine(recorded: str, asked: str | None, partial: str | None) -> str:
    """How a run replays: ``"prefect"`` (its flow runs again), ``"plain"`` (its script, or its one
    task call, runs again) or ``"tasks"`` (its tasks are called one by one, no orchestrator).

    Runs of Airflow, Snakemake and ``reproflow record -- CMD`` replay task by task, as do
    ``--task``/``--from``; Prefect and plain runs run again as recorded unless ``asked`` is
    ``"tasks"``.

    Raises:
        ReplayError: ``asked`` is no engine, or cannot replay this run.
    """
    if asked is not None and asked not in ENGINES:
        raise errors.ReplayError(f"unknown --engine {asked!r}: choose prefect (re-run the recorded Prefect flow) "
                                 "or tasks (call the recorded tasks one by one, no orchestrator)")
    if partial is not None:
        if asked == "prefect":
            raise errors.PartialReplayRefused.because(f"{partial} calls the chosen tasks one by one: "
                                                      "drop --engine prefect")
        return "tasks"
    if asked == "tasks":
        return "tasks"
    if asked == "prefect":
        if recorded != "prefect":
            raise errors.ReplayError(f"--engine prefect replays a Prefect flow, and this run was recorded by "
                                     f"{recorded}: replay it with --engine tasks")
        return "prefect"
    if recorded in TASK_BY_TASK_ENGINES:
        return "tasks"
    return "plain" if recorded == "plain" else "prefect"


def _only_redacted(typed: object) -> bool:
    """Whether every unrestorable part of ``typed`` is a redacted secret (reported on its own)."""
    if is_redacted(typed):
        return True
    if isinstance(typed, list):
        return all(_only_redacted(v) for v in typed if has_opaque(v))
    if isinstance(typed, dict):
        if typed.get("__rf__") == "opaque":
            return False
        return all(_only_redacted(v) for v in typed.values() if has_opaque(v))
    return True


def _platform_line(env: Environment) -> str:
    p = env.platform
    return " ".join(x for x in (p.system, p.release, p.machine, p.libc or "", f"· {p.distro}" if p.distro else "") if x)


def _hardware_line(run: Run) -> str:
    assert run.context is not None
    hw = run.context.hardware
    parts = [hw.cpu.model or "unknown CPU"]
    if hw.gpus:
        parts.append(", ".join(g.name for g in hw.gpus) + (f" (driver {hw.gpu_driver})" if hw.gpu_driver else ""))
    return "; ".join(parts)


def _plan_inputs(plan: ReplayPlan, ctx: ProcessContext, store: Store, root: str | None, *, elsewhere: bool = False) -> None:
    """Where each external input will come from; missing ones are problems, restored ones risks.

    An input inside the recorded source root is read from the restored code (``in_source``):
    from the source snapshot when it holds it, else from its stored copy, else copied from its
    original path (read only). Others are read where they are. ``elsewhere``: on a machine with
    nothing but the store, where no original path exists.
    """

    def exists(path: str) -> bool:
        return not elsewhere and os.path.exists(path)

    names: set[str] | None = None
    looked = False
    for item in plan.inputs:
        remote = "://" in item.uri and not item.uri.startswith(("file://", "local://"))
        rel = None if remote else relative_to_root(item.uri, root)
        if item.kind == "missing" or not item.sha256:
            item.origin = "in place"
            continue
        if rel is not None:
            item.in_source = rel
            if not looked:
                names, looked = snapshot_names(ctx, store), True
            if names and (rel in names or any(n.startswith(rel + "/") for n in names)):
                item.origin = "source snapshot"
            elif item.stored_copy:
                item.origin = "stored copy"
            elif item.kind == "directory" and item.sha256 == EMPTY_TREE:
                item.origin = "recreated empty"
            elif item.written_by and not (names is None and not ctx.source.blob):
                if exists(item.uri):
                    # a run that wrote the same bytes again (a second run into the same results
                    # folder) left it as it began: the replay hashes it and takes it only then
                    item.origin = "original path"
                    plan.risks.append(f"input {item.uri} was written by the run itself (task{'s' if len(item.written_by) > 1 else ''} "
                                      f"{', '.join(item.written_by)}): it is taken from its original path only if that "
                                      "still holds the state recorded before the run, else the replay stops")
                else:
                    item.origin = "missing"
                    plan.problems.append(str(errors.InputChanged.written_by_run(item.uri, item.sha256, None, item.written_by)))
            elif exists(item.uri) and not item.written_by:
                item.origin = "original path"
            elif names is None and not ctx.source.blob:
                item.origin = ""  # a commit restored with git archive: known once restored
            else:
                item.origin = "missing"
                plan.problems.append(f"input {item.uri} is not in the source snapshot, no copy was stored and the "
                                     + ("original path is on the recording machine only" if elsewhere
                                        else "original path does not have it"))  # fmt: skip
            continue
        if remote or exists(item.uri):
            item.origin = "in place"
        elif item.stored_copy:
            item.origin = "stored copy"
            plan.risks.append(f"input {item.uri} is missing: it will be restored from the stored copy")
        elif item.kind == "directory" and item.sha256 == EMPTY_TREE:
            item.origin = "recreated empty"
        else:
            item.origin = "missing"
            plan.problems.append(f"input {item.uri} is on the recording machine only: no copy was stored" if elsewhere
                                 else f"input {item.uri} is missing and no copy was stored")  # fmt: skip


def prepare(
    store: Store,
    run_id: str,
    *,
    in_place: bool = False,
    python: str | None = None,
    task: str | None = None,
    from_task: str | None = None,
    cache_root: Path | None = None,
    uv_bin: str | None = None,
    index_source: str = "",
    params: Mapping[str, str] | None = None,
    engine: str | None = None,
) -> Prepared:
    """Load, validate and plan. Raises only for a run that cannot be read at all (or an
    ``engine`` that is no choice).

    ``params`` supplies the secrets redacted when recorded (``--param PATH=VALUE``; else
    ``$REPROFLOW_PARAM_<PATH>``): see :mod:`reproflow.replay._secrets`.
    """
    if engine is not None and engine not in ENGINES:
        choose_engine("prefect", engine, None)  # raises: one line naming the choices
    run, env = load_run(store, run_id)
    return plan_loaded(store, run, env, in_place=in_place, python=python, task=task, from_task=from_task,
                       cache_root=cache_root, uv_bin=uv_bin, index_source=index_source, params=params,
                       engine=engine)  # fmt: skip


def plan_loaded(
    store: Store,
    run: Run,
    env: Environment,
    *,
    in_place: bool = False,
    python: str | None = None,
    task: str | None = None,
    from_task: str | None = None,
    cache_root: Path | None = None,
    uv_bin: str | None = None,
    index_source: str = "",
    elsewhere: bool = False,
    params: Mapping[str, str] | None = None,
    engine: str | None = None,
) -> Prepared:
    """Plan a replay of a loaded run (see :func:`prepare`).

    Args:
        elsewhere: plan it as on another machine that has nothing but the store: no checkout,
            no recorded repository, no input at its original path; the interpreter is not looked
            for. ``reproflow report`` scores replayability with this, so the score does not depend
            on where the report is made. Redacted secrets are then listed, not problems (the
            report scores them on their own).
        params: the secrets redacted when recorded, path -> value (else ``$REPROFLOW_PARAM_*``).
        engine: ``"prefect"`` or ``"tasks"`` (see :func:`choose_engine`); None: as the run's
            engine replays by default.
    """
    assert run.context is not None
    ctx, rec = run.context, run.record
    fatal: list[errors.ReproflowError] = []
    secrets = supplied(params, {} if elsewhere else None)

    env_plan = plan_environment(env, store)
    plan = ReplayPlan(
        run_id=run.run_id,
        flow_name=rec.flow_name,
        status=run.status,
        engine=rec.engine,
        entrypoint=rec.entrypoint,
        module=rec.module,
        parameters=rec.parameters,
        seed=rec.seed,
        pythonhashseed=rec.pythonhashseed,
        mode="in-place" if in_place else "rebuild",
        python_recorded=env.python.version,
        python_implementation=env.python.implementation,
        n_pins=len(env_plan.pins),
        pins_by_kind=env_plan.by_kind,
        local_sources=[f"{p.name} {p.version} ({p.note})" for p in env_plan.pins if p.kind == "local"],
        vcs_pins=[p.requirement for p in env_plan.pins if p.kind == "vcs"],
        index=index_source,
        environment_hash=ctx.environment_hash,
        commit=ctx.git.commit,
        dirty=ctx.git.dirty if ctx.git.available else None,
        diff_stat=ctx.git.diff_stat,
        platform=_platform_line(env),
        hardware=_hardware_line(run),
    )
    plan.secret_files = sorted(
        {n for n, why in ctx.source.skipped.items() if why.startswith("secret")} | set(ctx.git.diff_excluded)
    )
    plan.code, source_problems = describe_source(ctx, store, elsewhere=elsewhere)
    if not elsewhere:
        plan.checkout = checkout_note(ctx)  # both modes run the restored code, never the checkout
    if source_problems:
        plan.problems += source_problems
        fatal.append(errors.SourceNotAvailable.because("; ".join(source_problems)))

    # --- what to run
    selected, plan.partial = select_tasks(run, task, from_task)
    # a record is untrusted: fields that would become a path, a command word or a variable
    unsafe = [errors.UnsafeRecord.because(what) for what in record_problems(run, env, selected)]
    plan.problems[:0] = [str(e) for e in unsafe]
    fatal[:0] = unsafe
    partial: list[PartialItem] | None = None
    try:
        plan.replay_engine = choose_engine(rec.engine, engine, plan.partial)
    except errors.ReproflowError as exc:
        plan.replay_engine = "tasks" if plan.partial or rec.engine in TASK_BY_TASK_ENGINES else rec.engine
        plan.problems.append(str(exc))
        fatal.append(exc)
    by_tasks = plan.replay_engine == "tasks"
    # secrets redacted when recorded are asked for again, never replaced silently
    if by_tasks:
        for t in selected:
            t.parameters = secrets.fill_mapping(t.parameters, "" if len(selected) == 1 else f"{t.task_name}.")
    else:
        rec.parameters = secrets.fill_mapping(rec.parameters)  # the plan keeps the markers (it is printed)
        if rec.engine == "plain":
            rec.argv = secrets.fill_argv(rec.argv)
    plan.secrets = secrets.lines()
    missing_secret = secrets.error(f"task {selected[0].task_name!r}" if by_tasks and len(selected) == 1
                                   else f"flow {rec.flow_name!r}")
    if elsewhere:
        missing_secret = None
    if missing_secret is not None:
        plan.problems.append(str(missing_secret))
        fatal.append(missing_secret)
    if by_tasks:
        try:
            partial = partial_sources(run, selected, partial=plan.partial is not None)
        except errors.TaskReplayRefused as exc:
            plan.problems.append(str(exc))
            fatal.append(exc)
    else:
        if not (rec.entrypoint or rec.module):
            what = ("no flow entrypoint to call" if rec.engine == "prefect" else
                    "no script to run (reproflow.record() was used outside a script file)")
            exc = errors.ReplayExecutionError(f"the run records {what}; replay --task NAME or --engine tasks instead")
            plan.problems.append(str(exc))
            fatal.append(exc)
        for name, typed in rec.parameters.items():
            marker = opaque_marker(typed)  # a redacted secret is no opaque value: reported on its own
            if marker is not None:
                exc2 = errors.ParameterNotRestorable.for_param(f"flow {rec.flow_name!r}", name,
                                                               str(marker.get("type", "value")), marker.get("why"))
                plan.problems.append(str(exc2))
                fatal.append(exc2)

    order = dag_order(run)
    names = {t.task_run_id: t.task_name for t in run.final_tasks()}
    attempts: dict[str, int] = {}
    for t in run.tasks:
        attempts[t.task_run_id] = max(attempts.get(t.task_run_id, 0), t.attempt)
    chosen_ids = {t.task_run_id for t in selected}
    from ..recorder._dag import upstream_map

    ups = upstream_map(run)
    for t in sorted(run.final_tasks(), key=lambda t: order[t.task_run_id]):
        plan.tasks.append(PlannedTask(
            task_run_id=t.task_run_id,
            task_name=t.task_name,
            function=t.function,
            map_index=t.map_index,
            subflow=t.subflow,
            state=t.state,
            attempts=attempts.get(t.task_run_id, 1),
            upstream=sorted({names.get(s, s[:8]) for srcs in ups.get(t.task_run_id, {}).values() for s in srcs}),
            seed=t.seed,
            findings=[f"{f.code} {f.message}" for f in t.findings],
            selected=t.task_run_id in chosen_ids,
        ))
        flagged = [f.code for f in t.findings if f.code.upper().startswith("RPF1")]
        if flagged and t.task_run_id in chosen_ids:
            plan.risks.append(f"task {t.task_name!r} was flagged by the checks ({', '.join(sorted(set(flagged)))}): it may not reproduce")

    # --- where it runs, and inputs
    root = recorded_source_root(ctx)
    plan.source_root = root
    if root is not None:
        plan.cwd = relative_to_root(rec.cwd, root) if rec.cwd else "."
        if rec.cwd and plan.cwd is None:
            plan.risks.append(f"the run was recorded in {rec.cwd}, outside its source root {root}: the replay runs "
                              "in the restored root, so relative paths may not mean the same files")
    plan.inputs = external_inputs(selected, flow_reruns=not by_tasks)
    mark_written(plan.inputs, run.tasks)
    _plan_inputs(plan, ctx, store, root, elsewhere=elsewhere)

    # --- environment
    plan.risks += [f"environment: {p}" for p in env_plan.problems]
    for what in env_plan.refused:
        fatal.append(errors.UnsafeRecord.because(what))
        plan.problems.append(what)
    builds = [f"{p.name} ({'VCS' if p.kind == 'vcs' else 'local source'})" for p in env_plan.pins
              if p.kind in ("vcs", "local")]
    if builds:
        plan.risks.append("building these runs their build scripts (setup.py / build backend) on this machine: "
                          + ", ".join(builds))
    for pin in env_plan.pins:
        if pin.kind == "local" and pin.source_blob and not store.has_blob(pin.source_blob):
            fatal.append(errors.BlobError(f"the stored source of {pin.name} (sha256:{pin.source_blob[:12]}) is missing from the store", digest=pin.source_blob))
            plan.problems.append(str(fatal[-1]))
    if run.status == "CRASHED" and run.end is None:
        plan.risks.append(f"the original run CRASHED ({run.status_reason}): only the task runs it recorded before "
                          "it died can be compared")
    elif run.status == "RUNNING":
        plan.risks.append("the original run is still RUNNING: only the task runs recorded so far can be compared")
    elif run.status != "COMPLETED":
        plan.risks.append(f"the original run ended {run.status}: its failed tasks are compared as failures")
    hw = ctx.hardware
    prepared = Prepared(plan, run, env, env_plan, selected, partial, fatal=fatal)
    if elsewhere:
        return prepared
    if hw.gpus:
        plan.risks.append(
            f"the run used {len(hw.gpus)} GPU(s) ({hw.gpus[0].name}, driver {hw.gpu_driver or '?'}, CUDA "
            f"{hw.cuda_driver_version or '?'}): drivers and system libraries are not rebuilt"
        )
    here = (platform.system(), platform.machine())
    if (env.platform.system, env.platform.machine) != here:
        plan.risks.append(f"recorded on {env.platform.system}/{env.platform.machine}, replaying on {here[0]}/{here[1]}")
    libc = " ".join(platform.libc_ver()).strip()
    if env.platform.libc and libc and env.platform.libc.replace(" ", "") != libc.replace(" ", ""):
        plan.risks.append(f"C library differs: recorded {env.platform.libc}, here {libc}")

    if in_place:
        import sys

        plan.python_path = sys.executable
        plan.python_exact = platform.python_version() == env.python.version
        if not plan.python_exact:
            plan.risks.append(f"in place on Python {platform.python_version()}, recorded with {env.python.version}")
        return prepared

    root = cache_root
    if root is not None and python is None:
        hit = cached_env(root, env_key(env_plan, env.python.version))
        if hit is not None:
            plan.python_path, plan.python_exact = hit.python, True
            plan.env_cache, plan.env_cached = str(hit.path), True
            prepared.cached_python = hit.python
            return prepared
    try:
        lister = (lambda: uv_installed_paths(uv_bin)) if uv_bin else None
        choice = choose_interpreter(env.python.version, env.python.implementation, explicit=python, uv_lister=lister)
    except errors.PythonNotAvailable as exc:
        plan.problems.append(str(exc))
        fatal.append(exc)
        return prepared
    prepared.choice = choice
    plan.python_path, plan.python_exact = choice.interpreter.path, choice.exact
    if choice.warning:
        plan.risks.append(choice.warning)
    if root is not None:
        key = env_key(env_plan, choice.interpreter.version)
        plan.env_cache = str(root / key)
        hit = cached_env(root, key)
        plan.env_cached = hit is not None
    return prepared


__all__ = ["ENGINES", "TASK_BY_TASK_ENGINES", "PartialItem", "Prepared", "choose_engine", "dag_order", "load_run",
           "partial_sources", "plan_loaded", "prepare", "recorded_command", "select_tasks", "snakemake_command"]
