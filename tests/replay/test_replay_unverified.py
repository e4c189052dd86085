"""A task returning a value with no stable hash (a fitted model object), replayed and probed in
place on a real recorded flow: "unverified", counted apart, never "reproduced" or "deterministic";
its record names the value's class; a downstream task that takes the model is still compared."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reproflow.store import Store

pytestmark = pytest.mark.slow  # a Prefect API server (the session's) and flow subprocesses

SHAPE = Path(__file__).resolve().parents[1] / "corpus" / "shapes" / "unhashable_result"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def recorded(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The corpus's unhashable_result pipeline, recorded once by `python flow.py` in a git repo."""
    base = tmp_path_factory.mktemp("unverified")
    repo, store = base / "repo", base / "store"
    shutil.copytree(SHAPE, repo, ignore=shutil.ignore_patterns("expect.json", "__pycache__"))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pipeline")
    env = {**os.environ, "REPROFLOW_STORE": str(store), "PREFECT_API_URL": prefect_api}
    proc = subprocess.run([sys.executable, "flow.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run_id,) = Store(store).run_ids()
    yield {"repo": repo, "store": store, "run_id": run_id}


def _cli(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
         tmp_path: Path) -> tuple[int, str, str]:
    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "220")
    capsys.readouterr()
    code = run_cli(app, args)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_record_names_what_has_no_stable_hash(recorded: dict[str, Any]) -> None:
    """fit's record has no result hash and names the model's class (under __main__, as run);
    predict, which took the model, hashed its own result."""
    run = Store(recorded["store"]).load_run(recorded["run_id"])
    tasks = {t.task_name: t for t in run.final_tasks()}
    assert tasks["fit"].result_hash is None
    assert tasks["fit"].result_unhashable == "__main__.MeanModel (its state holds _thread.lock)"
    assert tasks["predict"].result_hash is not None and tasks["predict"].result_unhashable is None
    assert tasks["predict"].parameter_hashes["model"] == "unhashable:__main__.MeanModel"


def test_replay_says_unverified_and_counts_it_apart(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`replay --in-place`: the run reproduces (exit 0) with fit unverified, named in the table
    and in the summary, which counts it apart."""
    code, out, err = _cli(["replay", recorded["run_id"], "--store", str(recorded["store"]), "--in-place"],
                          capsys, monkeypatch, tmp_path)
    text = " ".join(out.split())
    assert code == 0, out + err
    assert "reproduced: 2/3 task runs match, 1 unverified" in text and "fit" in text
    assert "register_hasher" in text


def test_probe_does_not_call_it_deterministic(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`probe --json` in place: fit is unverified (nothing compared its result between the two
    runs), load and predict deterministic; the counts say so and the run is deterministic."""
    code, out, err = _cli(["probe", recorded["run_id"], "--store", str(recorded["store"]), "--json"],
                          capsys, monkeypatch, tmp_path)
    result = json.loads(out)
    verdicts = {t["task_name"]: t["verdict"] for t in result["tasks"]}
    assert verdicts == {"load": "deterministic", "fit": "unverified", "predict": "deterministic"}, result["tasks"]
    fit = next(t for t in result["tasks"] if t["task_name"] == "fit")
    assert fit["between_runs"] is None and any("no stable hash" in c for c in fit["causes"])
    assert result["counts"] == {"unverified": 1, "deterministic": 2}
    assert result["verdict"] == "deterministic" and code == 0, err
