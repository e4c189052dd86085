"""Fixtures for export tests: a store with a realistic recorded run (see rf_factory)."""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import pytest

from reproflow.store import Store

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from rf_factory import make_run  # noqa: E402


@pytest.fixture
def recorded(tmp_path: pathlib.Path, store: Store) -> dict[str, Any]:
    """A run with one input file, one output file and the real six/idna/packaging distributions."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "raw.csv").write_text("a,b\n1,2\n")
    run_id = make_run(store, inputs={"raw": data / "raw.csv"}, output_dir=data)
    return {"store": store, "run_id": run_id, "data": data}
