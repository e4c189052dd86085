"""End to end against a real `prefect server start` (SQLite, loopback), started by the test.

A flow in a separate process records into a store and publishes its provenance artifacts; the
test reads them back through Prefect's HTTP API and checks them against the store.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

FLOW = textwrap.dedent(
    """
    import random
    import sys
    from pathlib import Path
    from prefect import flow
    from reproflow import repro_task

    @repro_task(inputs=["src"], outputs=["dst"])
    def shout(src: Path, dst: Path) -> int:
        dst.write_text(src.read_text().upper())
        return 7

    @repro_task
    def jitter() -> float:
        return random.random()

    @flow(name="served-flow")
    def served(src: Path, dst: Path) -> int:
        jitter()
        return shout(src, dst)

    if __name__ == "__main__":
        state = served(Path(sys.argv[1]), Path(sys.argv[2]), return_state=True)
        print("RUN_ID", state.state_details.flow_run_id)
    """
)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory, start_prefect_server: Any) -> Iterator[str]:
    with start_prefect_server(tmp_path_factory.mktemp("prefect-server-home"), timeout=120) as api:
        yield api


def test_artifacts_read_back_through_the_api(prefect_server: str, tmp_path: pathlib.Path) -> None:
    """The flow run on the real server carries reproflow's three artifacts, matching the store."""
    (tmp_path / "in.txt").write_text("quiet words\n")
    (tmp_path / "flow.py").write_text(FLOW)
    store = tmp_path / "store"
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "REPROFLOW_STORE": str(store), "PREFECT_LOGGING_LEVEL": "WARNING"}
    out = subprocess.run(
        [sys.executable, str(tmp_path / "flow.py"), str(tmp_path / "in.txt"), str(tmp_path / "out.txt")],
        env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run_id = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("RUN_ID"))

    resp = httpx.post(f"{prefect_server}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}, timeout=30)
    resp.raise_for_status()
    arts = {a["key"]: a for a in resp.json()}
    assert set(arts) == {"reproflow-provenance", "reproflow-tasks", "reproflow-record"}, out.stderr[-3000:]
    assert arts["reproflow-provenance"]["type"] == "markdown"
    assert "# reproflow provenance: served-flow" in arts["reproflow-provenance"]["data"]

    from reproflow.store import Store

    run = Store(store).load_run(run_id)
    task = next(t for t in run.final_tasks() if t.task_name == "shout")
    jitter = next(t for t in run.final_tasks() if t.task_name == "jitter")
    rows = json.loads(arts["reproflow-tasks"]["data"])
    assert sorted((r["task"], r["task_run_id"], r["state"]) for r in rows) == [
        ("jitter", jitter.task_run_id, "COMPLETED"), ("shout", task.task_run_id, "COMPLETED")]
    rows = [r for r in rows if r["task"] == "shout"]
    # the static check ran at the first call, is in the record and in the UI summary
    [finding] = jitter.findings
    assert finding.code == "RPF101" and not task.findings
    summary = arts["reproflow-provenance"]["data"]
    assert "## Reproducibility findings" in summary and "`RPF101`" in summary and "flow.py:" in summary
    # the reproducibility score is in the summary, with the unseeded randomness as a reason
    assert "## Reproducibility: " in summary and "Randomness seeded" in summary, summary[-1500:]
    assert task.outputs[0].sha256 and task.outputs[0].sha256[:12] in rows[0]["outputs"]
    assert arts["reproflow-record"]["type"] == "link"
    assert f"runs/{run_id}" in arts["reproflow-record"]["data"]

    # the flow run itself is on the server with the same id
    fr = httpx.get(f"{prefect_server}/flow_runs/{run_id}", timeout=30)
    assert fr.status_code == 200 and fr.json()["state"]["type"] == "COMPLETED"
