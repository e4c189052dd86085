"""Replay a recorded run: rebuild its environment with uv, re-execute it, compare its outputs.

``reproflow replay RUN_ID`` on the command line, :func:`replay` from Python, and
:func:`reproflow.flows.replay_flow` as a Prefect flow (deployable by the module entrypoint
``reproflow.flows:replay_flow``). ``reproflow probe RUN_ID`` / :func:`probe` run a recorded flow
twice in one environment and name the tasks that are nondeterministic by themselves. See
docs/replay.md.

This package shares its name with the top-level function ``reproflow.replay``: once the package
is imported, Python binds ``reproflow.replay`` to it, so the package is made callable and
``reproflow.replay(run_id, ...)`` (or ``from reproflow import replay``) works either way.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from ._models import (
    EnvironmentInfo,
    InputCheck,
    OutputCheck,
    PlannedInput,
    PlannedTask,
    ProbeResult,
    ProbeTask,
    ReplayPlan,
    ReplayResult,
    TaskVerdict,
)
from ._probe import probe
from ._replay import plan, replay

__all__ = [
    "EnvironmentInfo",
    "InputCheck",
    "OutputCheck",
    "PlannedInput",
    "PlannedTask",
    "ProbeResult",
    "ProbeTask",
    "ReplayPlan",
    "ReplayResult",
    "TaskVerdict",
    "plan",
    "probe",
    "replay",
]


class _CallablePackage(types.ModuleType):
    """``reproflow.replay`` the package, callable as ``reproflow.replay`` the function."""

    def __call__(self, run_id: str, store: Any = None, **options: Any) -> ReplayResult:
        return replay(run_id, store, **options)


sys.modules[__name__].__class__ = _CallablePackage
