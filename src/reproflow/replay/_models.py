"""What a replay plans, checks and concludes: pydantic models, so ``--json`` is their dump."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, Field

#: ``unverified``: everything that could be compared matched, but the return value has no stable
#: hash (a fitted model object), so nothing compared it; never counted as ``reproduced``.
TaskVerdictName = Literal["reproduced", "unverified", "differs", "failed", "missing", "extra"]


class _M(BaseModel):
    model_config = {"extra": "forbid"}


class PlannedInput(_M):
    """A recorded input the replay will verify (or restore) before running."""

    uri: str
    kind: str
    sha256: Optional[str] = None
    size: Optional[int] = None
    stored_copy: bool = False
    tasks: list[str] = Field(default_factory=list)
    #: path relative to the recorded source root when the input lies inside it: the replay reads
    #: it from the restored copy of the code, not from the user's tree (None: read in place)
    in_source: Optional[str] = None
    #: where it will come from: "in place", "source snapshot", "stored copy", "original path",
    #: "recreated empty", "missing" (nothing has it), or "" (decided after the code is restored)
    origin: str = ""
    #: tasks of the run that wrote over it or into it (a folder they filled): its original path
    #: holds what they wrote, not the state the run started from
    written_by: list[str] = Field(default_factory=list)


class PlannedTask(_M):
    task_run_id: str
    task_name: str
    function: Optional[str] = None
    map_index: Optional[int] = None
    subflow: Optional[str] = None  #: the subflow it ran in (None: the top-level flow)
    state: str
    attempts: int = 1
    upstream: list[str] = Field(default_factory=list)  #: upstream task names
    seed: Optional[int] = None
    findings: list[str] = Field(default_factory=list)
    selected: bool = True  #: part of this (partial) replay


class ReplayPlan(_M):
    """Everything the replay will rebuild and run, and what is missing or risky."""

    run_id: str
    flow_name: str
    status: str
    engine: str
    entrypoint: Optional[str] = None
    module: Optional[str] = None
    parameters: dict[str, Any] = Field(default_factory=dict)  #: typed JSON, as recorded
    seed: Optional[int] = None
    pythonhashseed: Optional[str] = None
    mode: Literal["rebuild", "in-place"] = "rebuild"
    python_recorded: str
    python_implementation: str = "CPython"
    python_path: Optional[str] = None
    python_exact: Optional[bool] = None
    n_pins: int = 0
    pins_by_kind: dict[str, int] = Field(default_factory=dict)
    local_sources: list[str] = Field(default_factory=list)
    vcs_pins: list[str] = Field(default_factory=list)
    index: str = ""
    environment_hash: str
    env_cache: Optional[str] = None  #: folder of the cached environment, when one is used
    env_cached: bool = False
    code: str = ""  #: how the code is restored
    #: the recorded source root: paths inside it are relocated into the restored code
    source_root: Optional[str] = None
    #: the recorded working folder, relative to the source root ("." for the root itself);
    #: None when it was outside the root (the replay then runs in the restored root)
    cwd: Optional[str] = None
    commit: Optional[str] = None
    dirty: Optional[bool] = None
    diff_stat: Optional[str] = None
    #: one line when the user's checkout here differs from the recorded code the replay runs
    checkout: Optional[str] = None
    platform: str = ""
    hardware: str = ""
    inputs: list[PlannedInput] = Field(default_factory=list)
    tasks: list[PlannedTask] = Field(default_factory=list)
    partial: Optional[str] = None  #: "--task NAME" / "--from NAME"
    #: how it replays: "prefect" (the recorded flow runs again), "plain" (the recorded script or
    #: task call runs again) or "tasks" (each task is called in DAG order, no orchestrator)
    replay_engine: str = ""
    problems: list[str] = Field(default_factory=list)  #: stop the replay
    risks: list[str] = Field(default_factory=list)  #: may make results differ
    #: secrets redacted when recorded, one line each: where the replay takes them from
    secrets: list[str] = Field(default_factory=list)
    #: files left out of the record as secrets (source snapshot, git diff): supply them yourself
    secret_files: list[str] = Field(default_factory=list)


class InputCheck(_M):
    """The outcome of verifying one recorded input."""

    uri: str
    expected: Optional[str] = None
    actual: Optional[str] = None
    status: Literal["ok", "restored", "changed", "missing", "unchecked"]
    tasks: list[str] = Field(default_factory=list)
    note: Optional[str] = None
    location: Optional[str] = None  #: where the replay reads it (inside the restored code, or ``uri``)
    #: an empty folder left for the run to make: the flow body may ``mkdir()`` it, else it is made
    #: when the first task that reads it starts
    deferred: bool = False


class OutputCheck(_M):
    uri: str
    param: Optional[str] = None
    expected: Optional[str] = None
    actual: Optional[str] = None
    match: bool
    #: a gzip file whose bytes differ in the header's time stamp alone (the compressed data is the same)
    gzip_time_only: Optional[bool] = None
    #: a file whose bytes differ in the times its format records alone (``DataRef.untimed_sha256``:
    #: a zip archive's members' times, a PDF's or an SVG's dates)
    time_only: Optional[bool] = None


class TaskVerdict(_M):
    """One recorded task run set against its replayed counterpart."""

    task_name: str
    function: Optional[str] = None
    map_index: Optional[int] = None
    subflow: Optional[str] = None  #: the subflow it ran in (None: the top-level flow)
    original_task_run_id: Optional[str] = None
    replay_task_run_id: Optional[str] = None
    verdict: TaskVerdictName
    original_state: Optional[str] = None
    replay_state: Optional[str] = None
    result_match: Optional[bool] = None  #: None when the result has no stable hash
    #: what in the return value has no stable hash (its type), when the task is ``unverified``
    result_unhashable: Optional[str] = None
    original_result_hash: Optional[str] = None
    replay_result_hash: Optional[str] = None
    outputs: list[OutputCheck] = Field(default_factory=list)
    causes: list[str] = Field(default_factory=list)
    error: Optional[str] = None
    #: parameters the replayed task was given otherwise than recorded, one line each
    parameters_changed: list[str] = Field(default_factory=list)


class EnvironmentInfo(_M):
    mode: Literal["rebuild", "in-place"]
    path: Optional[str] = None
    python: str
    python_version: str
    reused: bool = False
    build_seconds: float = 0.0
    n_pins: int = 0


class ReplayResult(_M):
    """The outcome of a replay; ``reproduced`` is True only if every task reproduced, or was
    ``unverified`` (nothing could compare its return value) while at least one reproduced.

    ``counts`` gives the number of task runs per verdict, so unverified ones are counted apart.
    """

    run_id: str
    replay_run_id: Optional[str] = None
    #: "reproduced-with-changed-inputs": every task matched, but --allow-changed-inputs let a
    #: changed input through, so this is not a reproduction of the recorded run (exit 1).
    #: "unverified": nothing differed, but no task could be compared at all (exit 1).
    verdict: Literal["reproduced", "not-reproduced", "reproduced-with-changed-inputs", "unverified", "dry-run"]
    reproduced: bool = False
    counts: dict[str, int] = Field(default_factory=dict)  #: task runs per verdict
    changed_inputs_allowed: bool = False
    plan: ReplayPlan
    inputs: list[InputCheck] = Field(default_factory=list)
    environment: Optional[EnvironmentInfo] = None
    tasks: list[TaskVerdict] = Field(default_factory=list)
    drift: list[str] = Field(default_factory=list)  #: recorded vs replay environment
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)  #: seconds per phase
    work_dir: Optional[str] = None  #: kept with --keep
    cwd: Optional[str] = None  #: the folder the flow ran in (inside the restored code)
    flow_state: Optional[str] = None  #: how the replay's flow run (or script) ended
    flow_message: Optional[str] = None
    #: how the recorded run ended (a whole replay; None for --task/--from): a replay whose flow run
    #: ends otherwise (COMPLETED against FAILED, either way) is not reproduced, whatever its tasks did
    recorded_state: Optional[str] = None

    @property
    def flow_end_differs(self) -> bool:
        """The recorded run and the replay's flow run did not end alike (one completed, one not)."""
        a, b = self.recorded_state, self.flow_state
        return bool(a and b) and (a == "COMPLETED") != (b == "COMPLETED")

    @property
    def exit_code(self) -> int:
        """0 when reproduced (or a dry run), 1 otherwise."""
        return 0 if self.reproduced or self.verdict == "dry-run" else 1


ProbeVerdictName = Literal["deterministic", "nondeterministic", "inherited", "environment", "unverified", "failed",
                           "missing"]


class ProbeTask(_M):
    """One recorded task run, run twice in the same environment and set against both runs.

    ``verdict``:

    * ``deterministic``: both runs agree with each other and with the original;
    * ``nondeterministic``: the two runs got the same inputs and still differ: the task itself
      is nondeterministic (unseeded randomness, set order, clock, threads ...);
    * ``inherited``: the two runs differ, but so did the task's inputs (an upstream task is
      nondeterministic): not this task's own fault;
    * ``environment``: both runs agree with each other but not with the original: the task is
      deterministic here, and what changed is the environment, the hardware or an input;
    * ``unverified``: everything compared agrees, but the return value has no stable hash, so
      nothing says whether it is the same (see ``reproflow.register_hasher``);
    * ``failed``: it raised in a run where the original did not (``error`` says what);
    * ``missing``: a run never ran it.
    """

    task_name: str
    function: Optional[str] = None
    map_index: Optional[int] = None
    subflow: Optional[str] = None  #: the subflow it ran in (None: the top-level flow)
    original_task_run_id: Optional[str] = None
    run_task_run_ids: list[Optional[str]] = Field(default_factory=list)  #: in run 1, run 2
    verdict: ProbeVerdictName
    between_runs: Optional[bool] = None  #: run 1 and run 2 gave the same outputs and result
    same_inputs: Optional[bool] = None  #: run 1 and run 2 got the same parameters and input data
    vs_original: list[Optional[str]] = Field(default_factory=list)  #: replay verdict of run 1, run 2
    result_hashes: list[Optional[str]] = Field(default_factory=list)  #: original, run 1, run 2
    differing_outputs: list[str] = Field(default_factory=list)  #: outputs that differ between the runs
    causes: list[str] = Field(default_factory=list)
    error: Optional[str] = None


class ProbeResult(_M):
    """The outcome of a determinism probe (``reproflow probe``, ``reproflow replay --twice``).

    ``deterministic`` is True when the two runs agree on every task; ``reproduced`` when both
    also agree with the original. ``require_original`` (set by ``replay --twice``) makes the
    exit code need both.
    """

    run_id: str
    run_ids: list[str] = Field(default_factory=list)  #: the two new runs, both ``replay_of`` run_id
    #: "unverified": nothing differed, but no task's results could be compared at all
    verdict: Literal["deterministic", "nondeterministic", "unverified", "dry-run"]
    deterministic: bool = False
    reproduced: bool = False
    require_original: bool = False
    changed_inputs_allowed: bool = False
    plan: ReplayPlan
    inputs: list[InputCheck] = Field(default_factory=list)
    environment: Optional[EnvironmentInfo] = None
    tasks: list[ProbeTask] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)  #: task runs per probe verdict
    drift: list[str] = Field(default_factory=list)  #: recorded vs probe environment
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    work_dir: Optional[str] = None
    cwd: Optional[str] = None  #: the folder the flow ran in (inside the restored code)
    flow_states: list[Optional[str]] = Field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every task is deterministic (and, with ``require_original``, reproduced)."""
        if self.verdict == "dry-run":
            return 0
        ok = self.deterministic and (self.reproduced or not self.require_original)
        changed = any(i.status in ("changed", "missing") for i in self.inputs)
        return 0 if ok and not (changed and self.require_original) else 1


__all__ = [
    "EnvironmentInfo",
    "ProbeResult",
    "ProbeTask",
    "InputCheck",
    "OutputCheck",
    "PlannedInput",
    "PlannedTask",
    "ReplayPlan",
    "ReplayResult",
    "TaskVerdict",
]
