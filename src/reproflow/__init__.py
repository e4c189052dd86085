"""reproflow: reproducible-by-construction provenance, replay and exports for Prefect 3 and plain Python.

Swap ``@task`` for ``@repro_task``; every run lands in a store as validated records::

    from prefect import flow
    from reproflow import repro_task

    @repro_task(inputs=["raw"], outputs=["out"])
    def clean(raw: Path, out: Path) -> Path: ...

Public names are imported lazily so ``import reproflow`` stays cheap for every flow.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from ._version import __version__

_LAZY = {
    "repro_task": "reproflow.engines.prefect._task",
    "ReproTask": "reproflow.engines.prefect._task",
    "Input": "reproflow.recorder._declare",
    "Output": "reproflow.recorder._declare",
    "record": "reproflow.recorder._plain",
    "Store": "reproflow.store",
    "load_run": "reproflow.analysis._api",
    "list_runs": "reproflow.analysis._api",
    "replay": "reproflow.analysis._api",
    "probe": "reproflow.analysis._api",
    "stable_hash": "reproflow.values._typed",
    "register_hasher": "reproflow.values._valuehash",
    "hash_path": "reproflow.capture._files",
    "ReproflowError": "reproflow.errors",
    "wait_for_artifacts": "reproflow.engines.prefect._artifacts",
    "CONTENT": "reproflow.engines.prefect._cache",
}

__all__ = sorted([*_LAZY, "__version__"])

#: names that need Prefect; without it, repro_task/ReproTask record plain calls instead
_PREFECT = {"repro_task", "ReproTask", "wait_for_artifacts", "CONTENT"}
_PLAIN = {"repro_task": ("reproflow.recorder._plaintask", "plain_task"),
          "ReproTask": ("reproflow.recorder._plaintask", "PlainTask")}

if TYPE_CHECKING:  # pragma: no cover
    from .analysis._api import list_runs, load_run, probe, replay
    from .capture._files import hash_path
    from .engines.prefect._artifacts import wait_for_artifacts
    from .engines.prefect._cache import CONTENT
    from .engines.prefect._task import ReproTask, repro_task
    from .errors import ReproflowError
    from .recorder._declare import Input, Output
    from .recorder._plain import record
    from .store import Store
    from .values._typed import stable_hash
    from .values._valuehash import register_hasher


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reproflow' has no attribute {name!r}")
    import importlib

    if name in _PREFECT and importlib.util.find_spec("prefect") is None:
        if name not in _PLAIN:
            from .errors import ReproflowError

            raise ReproflowError(f"reproflow.{name} needs Prefect, which is not installed here: "
                                 "pip install 'reproflow[prefect]'")
        module, attr = _PLAIN[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    value = getattr(importlib.import_module(module), name)
    if module.startswith("reproflow.engines.prefect."):
        _wire_prefect()
    globals()[name] = value
    return value


def _wire_prefect() -> None:
    """The Prefect adapter publishes a scored summary at flow end; the scoring is in a layer above
    it (``reproflow.analysis``), so the package's top wires it in, loaded only when called."""
    from .engines.prefect import _artifacts

    if _artifacts.summary_scorer is None:
        _artifacts.summary_scorer = _summary_lines


def _summary_lines(run: Any, env: Any, store: Any) -> list[str]:
    from .analysis._report import summary_lines

    return summary_lines(run, env, store)


def __dir__() -> list[str]:
    return __all__
