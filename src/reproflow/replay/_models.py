"""What a replay plans, checks and concludes: pydantic models, so ``--json`` is their dump."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, Field

TaskVerdictName = Literal["reproduced", "differs", "failed", "missing", "extra"]


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


class PlannedTask(_M):
    task_run_id: str
    task_name: str
    function: Optional[str] = None
    map_index: Optional[int] = None
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
    commit: Optional[str] = None
    dirty: Optional[bool] = None
    diff_stat: Optional[str] = None
    platform: str = ""
    hardware: str = ""
    inputs: list[PlannedInput] = Field(default_factory=list)
    tasks: list[PlannedTask] = Field(default_factory=list)
    partial: Optional[str] = None  #: "--task NAME" / "--from NAME"
    problems: list[str] = Field(default_factory=list)  #: stop the replay
    risks: list[str] = Field(default_factory=list)  #: may make results differ


class InputCheck(_M):
    """The outcome of verifying one recorded input."""

    uri: str
    expected: Optional[str] = None
    actual: Optional[str] = None
    status: Literal["ok", "restored", "changed", "missing", "unchecked"]
    tasks: list[str] = Field(default_factory=list)
    note: Optional[str] = None


class OutputCheck(_M):
    uri: str
    param: Optional[str] = None
    expected: Optional[str] = None
    actual: Optional[str] = None
    match: bool


class TaskVerdict(_M):
    """One recorded task run set against its replayed counterpart."""

    task_name: str
    function: Optional[str] = None
    map_index: Optional[int] = None
    original_task_run_id: Optional[str] = None
    replay_task_run_id: Optional[str] = None
    verdict: TaskVerdictName
    original_state: Optional[str] = None
    replay_state: Optional[str] = None
    result_match: Optional[bool] = None  #: None when the result has no stable hash
    original_result_hash: Optional[str] = None
    replay_result_hash: Optional[str] = None
    outputs: list[OutputCheck] = Field(default_factory=list)
    causes: list[str] = Field(default_factory=list)
    error: Optional[str] = None


class EnvironmentInfo(_M):
    mode: Literal["rebuild", "in-place"]
    path: Optional[str] = None
    python: str
    python_version: str
    reused: bool = False
    build_seconds: float = 0.0
    n_pins: int = 0


class ReplayResult(_M):
    """The outcome of a replay; ``reproduced`` is True only if every task reproduced."""

    run_id: str
    replay_run_id: Optional[str] = None
    #: "reproduced-with-changed-inputs": every task matched, but --allow-changed-inputs let a
    #: changed input through, so this is not a reproduction of the recorded run (exit 1).
    verdict: Literal["reproduced", "not-reproduced", "reproduced-with-changed-inputs", "dry-run"]
    reproduced: bool = False
    changed_inputs_allowed: bool = False
    plan: ReplayPlan
    inputs: list[InputCheck] = Field(default_factory=list)
    environment: Optional[EnvironmentInfo] = None
    tasks: list[TaskVerdict] = Field(default_factory=list)
    drift: list[str] = Field(default_factory=list)  #: recorded vs replay environment
    warnings: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)  #: seconds per phase
    work_dir: Optional[str] = None  #: kept with --keep
    flow_state: Optional[str] = None
    flow_message: Optional[str] = None

    @property
    def exit_code(self) -> int:
        """0 when reproduced (or a dry run), 1 otherwise."""
        return 0 if self.reproduced or self.verdict == "dry-run" else 1


__all__ = [
    "EnvironmentInfo",
    "InputCheck",
    "OutputCheck",
    "PlannedInput",
    "PlannedTask",
    "ReplayPlan",
    "ReplayResult",
    "TaskVerdict",
]
