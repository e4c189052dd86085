"""reproflow: reproducible-by-construction provenance, replay and exports for Prefect 3 and plain Python.

Swap ``@task`` for ``@repro_task``; every run lands in a store as validated records::

    from prefect import flow
    from reproflow import repro_task

    @repro_task(inputs=["raw"], outputs=["out"])
    def clean(raw: Path, out: Path) -> Path: ...

Public names are imported lazily so ``import reproflow`` stays cheap for every flow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "repro_task": "reproflow._task",
    "ReproTask": "reproflow._task",
    "Input": "reproflow._declare",
    "Output": "reproflow._declare",
    "record": "reproflow._plain",
    "Store": "reproflow.store",
    "load_run": "reproflow._api",
    "list_runs": "reproflow._api",
    "replay": "reproflow._api",
    "probe": "reproflow._api",
    "stable_hash": "reproflow._values",
    "register_hasher": "reproflow._valuehash",
    "hash_path": "reproflow._hashing",
    "ReproflowError": "reproflow.errors",
    "wait_for_artifacts": "reproflow._artifacts",
    "CONTENT": "reproflow._incremental",
}

__all__ = sorted([*_LAZY, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from ._api import list_runs, load_run, probe, replay
    from ._artifacts import wait_for_artifacts
    from ._declare import Input, Output
    from ._hashing import hash_path
    from ._incremental import CONTENT
    from ._plain import record
    from ._task import ReproTask, repro_task
    from ._values import stable_hash
    from ._valuehash import register_hasher
    from .errors import ReproflowError
    from .store import Store


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reproflow' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
