"""Replay a recorded run: rebuild its environment with uv, re-execute it, compare its outputs.

``reproflow replay RUN_ID`` on the command line, :func:`replay` from Python, and
:func:`reproflow.replay._flow.replay_flow` as a Prefect flow (deployable from
``deployments/prefect.yaml``). See docs/replay.md.
"""

from __future__ import annotations

from ._models import (
    EnvironmentInfo,
    InputCheck,
    OutputCheck,
    PlannedInput,
    PlannedTask,
    ReplayPlan,
    ReplayResult,
    TaskVerdict,
)
from ._replay import plan, replay

__all__ = [
    "EnvironmentInfo",
    "InputCheck",
    "OutputCheck",
    "PlannedInput",
    "PlannedTask",
    "ReplayPlan",
    "ReplayResult",
    "TaskVerdict",
    "plan",
    "replay",
]
