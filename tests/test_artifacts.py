"""Prefect UI artifacts as a user meets them: `python flow.py` exits clean, every artifact is there
once, of a type the UI renders, and the task table names upstream tasks."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import httpx
import pytest

FLOW = textwrap.dedent(
    """
    from pathlib import Path
    from prefect import flow
    from reproflow import repro_task

    @repro_task
    def measure(i: int) -> float:
        return i * 1.5

    @repro_task(outputs=["dst"])
    def summarise(values: list, dst: Path) -> int:
        dst.write_text(repr(values))
        return len(values)

    @flow(name="artifact-exit")
    def pipeline(dst: Path = Path("summary.txt")) -> int:
        return summarise(measure.map([1, 2, 3]), dst)

    if __name__ == "__main__":
        state = pipeline(return_state=True)
        print("RUN_ID", state.state_details.flow_run_id)
    """
)

KEYS = {"reproflow-provenance", "reproflow-tasks", "reproflow-record"}


def _artifacts(api: str, run_id: str) -> list[dict[str, object]]:
    resp = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}, timeout=30)
    resp.raise_for_status()
    return list(resp.json())


@pytest.mark.slow
def test_script_runs_exit_without_tracebacks_and_publish_every_artifact(
    tmp_path: pathlib.Path, prefect_api_env: dict[str, str]
) -> None:
    """Consecutive `python flow.py` runs: stderr never holds a traceback (Prefect's "Error
    emitting event: prefect.artifact.created ... can't register atexit after shutdown" came
    from publishing after the interpreter began to shut down), never Prefect's INFO chatter
    about reproflow's own hook, and each run's three artifacts are on its flow run, once."""
    (tmp_path / "flow.py").write_text(FLOW)
    env = {**os.environ, **prefect_api_env, "REPROFLOW_STORE": str(tmp_path / "store"), "PREFECT_LOGGING_LEVEL": "INFO"}
    api = prefect_api_env["PREFECT_API_URL"]
    for attempt in range(5):
        proc = subprocess.run([sys.executable, "flow.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr and "Error emitting event" not in proc.stderr, f"run {attempt}:\n{proc.stderr}"
        assert "Finished in state Completed" in proc.stderr  # INFO lines are on: the check below means something
        assert "_flow_end_hook" not in proc.stderr, proc.stderr
        run_id = next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("RUN_ID"))
        arts = _artifacts(api, run_id)
        assert sorted(str(a["key"]) for a in arts) == sorted(KEYS), (attempt, arts)
        types = {a["key"]: a["type"] for a in arts}
        # the UI renders "markdown" and "table"; a "link" type showed as "unknown" with raw Markdown
        assert types == {"reproflow-provenance": "markdown", "reproflow-tasks": "table", "reproflow-record": "markdown"}
    rows = json.loads(str(next(a for a in arts if a["key"] == "reproflow-tasks")["data"]))
    summary = next(r for r in rows if r["task"] == "summarise")
    assert summary["upstream"] == "values←measure[0-2]", rows
    assert sorted(r["map_index"] for r in rows if r["task"] == "measure") == [0, 1, 2]


def test_publish_twice_updates_the_same_artifacts(store_dir: pathlib.Path, prefect_harness: None,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`reproflow runs publish RUN_ID` after the flow's own publishing, twice: still one artifact
    per key on the flow run, the same ids, updated in place."""
    from prefect import flow
    from prefect.settings import PREFECT_API_URL

    from reproflow import repro_task, wait_for_artifacts
    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    @repro_task
    def one(x: int) -> int:
        return x + 1

    @flow(name="publish-twice")
    def twice() -> int:
        return one(1)

    run_id = str(twice(return_state=True).state_details.flow_run_id)
    assert wait_for_artifacts(timeout=60)
    api = str(PREFECT_API_URL.value())
    first = {str(a["key"]): str(a["id"]) for a in _artifacts(api, run_id)}
    assert set(first) == KEYS
    for _ in range(2):
        assert run_cli(app, ["runs", "publish", run_id, "--json", "--store", str(store_dir)]) == 0
        out = json.loads(capsys.readouterr().out)
        assert sorted(out["artifact_ids"]) == sorted(first.values())
    arts = _artifacts(api, run_id)
    assert sorted(str(a["key"]) for a in arts) == sorted(KEYS)
    assert {str(a["key"]): str(a["id"]) for a in arts} == first
