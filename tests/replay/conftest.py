"""Fixtures for replay's end-to-end tests: the session's Prefect API and env cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def prefect_api(prefect_api_env: dict[str, str]) -> Iterator[str]:
    """The session's Prefect API (the test harness's real Prefect server, a uvicorn subprocess on
    127.0.0.1), also put in os.environ for the module so recording subprocesses and the replay's
    runner all use it: no temporary server per process, and no second server to start (a
    `prefect server start` costs ~10-25 s on 2 cores; tests/test_prefect_server.py covers that
    command)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PREFECT_API_URL", prefect_api_env["PREFECT_API_URL"])
    try:
        yield prefect_api_env["PREFECT_API_URL"]
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def env_cache(shared_cache_dir: Path) -> Path:
    """The session's env cache (tests/conftest.py ``shared_cache_dir``): an environment built by
    an earlier test is reused. A module that must see the first build makes its own."""
    return shared_cache_dir
