"""Library functions behind the CLI: everything the CLI does can be imported and tested."""

from __future__ import annotations

import os
from typing import Any

from ..records import Run, RunSummary
from ..store import Store


def open_store(store: str | os.PathLike[str] | Store | None = None, *, must_exist: bool = True) -> Store:
    """A Store from a URL (or the default), checked to hold records unless ``must_exist=False``."""
    s = store if isinstance(store, Store) else Store(store)
    return s.require() if must_exist else s


def list_runs(store: str | os.PathLike[str] | Store | None = None, *,
              problems: list[str] | None = None) -> list[RunSummary]:
    """Every run in the store, newest first; runs whose records cannot be read are left out,
    each with a one-line reason in ``problems`` when given."""
    return open_store(store).list_runs(problems=problems)


def load_run(run_id: str, store: str | os.PathLike[str] | Store | None = None) -> Run:
    """A run with its end record, every task attempt and its process context."""
    return open_store(store).load_run(run_id)


def replay(run_id: str, store: str | os.PathLike[str] | None = None, **options: Any) -> Any:
    """Rebuild the environment, re-execute the run and compare outputs (see docs/replay.md)."""
    from ..replay import replay as _replay

    return _replay(run_id, store=store, **options)


def probe(run_id: str, store: str | os.PathLike[str] | None = None, **options: Any) -> Any:
    """Run a recorded run twice in one environment and tell which tasks are nondeterministic by
    themselves, apart from what the environment changed (see docs/replay.md)."""
    from ..replay import probe as _probe

    return _probe(run_id, store=store, **options)


__all__ = ["list_runs", "load_run", "open_store", "probe", "replay"]
