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

from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

# Imported on first use: a flow's process imports the planner (its end-of-run report) but never
# the replay or the probe themselves (0.4 s of imports on a loaded 2-core machine, measured).
_LAZY = {"plan": "._replay", "replay": "._replay", "probe": "._probe"}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY or name in __all__:
        value = getattr(importlib.import_module(_LAZY.get(name, "._models"), __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        return __getattr__("replay")(run_id, store, **options)  # type: ignore[no-any-return]


sys.modules[__name__].__class__ = _CallablePackage
