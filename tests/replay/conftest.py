"""Fixtures for replay's end-to-end tests: a real Prefect server on loopback, a recorded repo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory, start_prefect_server: Any) -> Iterator[str]:
    """One `prefect server start` on 127.0.0.1 for a module; its URL is put in os.environ so
    recording subprocesses and the replay's runner all use it (no temporary server each)."""
    with start_prefect_server(tmp_path_factory.mktemp("replay-prefect-home")) as api:
        mp = pytest.MonkeyPatch()
        mp.setenv("PREFECT_API_URL", api)
        try:
            yield api
        finally:
            mp.undo()


@pytest.fixture(scope="module")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One env cache per module: the first replay builds, later ones reuse (the 'second replay')."""
    return tmp_path_factory.mktemp("replay-env-cache")
