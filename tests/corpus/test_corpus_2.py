"""Part 3 of 3 of the corpus (see test_corpus.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from corpus_harness import cases, run_case

# each case records and replays real flows; the first one of a session may build the replay
# environment (shared by every worker, file-locked) on a loaded machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CASES = cases(2, 3)


@pytest.mark.parametrize(("name", "backend"), CASES, ids=[f"{n}-{b}" for n, b in CASES])
def test_shape_replays_to_an_honest_verdict(name: str, backend: str, corpus_env: dict[str, Any], tmp_path: Path,
                                            request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Record the shape, replay it from an empty folder with only --store, check the verdict."""
    run_case(name, backend, tmp_path, request, capsys, monkeypatch)
