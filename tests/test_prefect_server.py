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
    assert arts["reproflow-record"]["type"] == "markdown"  # a Markdown link, as Prefect's own link artifacts
    assert f"runs/{run_id}" in arts["reproflow-record"]["data"]

    # the flow run itself is on the server with the same id
    fr = httpx.get(f"{prefect_server}/flow_runs/{run_id}", timeout=30)
    assert fr.status_code == 200 and fr.json()["state"]["type"] == "COMPLETED"


DEPLOY_FLOW = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from prefect import flow

    from reproflow import repro_task


    @repro_task(inputs=["src"])
    def count(src: Path) -> int:
        return len(src.read_text().split())


    @repro_task
    def double(n: int) -> int:
        return 2 * n


    @flow(name="words")
    def words(src: Path) -> int:
        return double(count(src))


    if __name__ == "__main__":
        words(Path(sys.argv[1]))
    """
)


def _cli(args: list[str], cwd: pathlib.Path, env: dict[str, str], timeout: float = 300) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}: {proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.timeout(1200)
def test_replay_deployment_from_the_installed_package(prefect_server: str, tmp_path: pathlib.Path,
                                                      shared_cache_dir: pathlib.Path) -> None:
    """Issue 15, as docs/replay.md says: the shipped deployments/prefect.yaml (module entrypoint
    `reproflow.flows:replay_flow`, no checkout of reproflow needed) copied into a user's project,
    `prefect work-pool create`, `prefect deploy --all`, `prefect deployment run` with a recorded
    run id and the store, `prefect worker start --run-once`. Read back through the API: the run
    of an untouched recording is Completed with the plan, the verdict table and links as
    artifacts, and the recorded run names its replay; the run of a recording whose input changed
    ends Failed with the one-line reason as its state message."""
    bindir = pathlib.Path(sys.executable).parent
    project, store, cache = tmp_path / "project", tmp_path / "store", shared_cache_dir  # the session's env cache
    project.mkdir()
    (project / "flow.py").write_text(DEPLOY_FLOW)
    (project / "same.txt").write_text("one two three\n")
    outside = tmp_path / "data"  # data outside the repository: not restored from the source snapshot
    outside.mkdir()
    (outside / "edited.txt").write_text("four five\n")
    (project / ".gitignore").write_text(".reproflow/\n__pycache__/\n")
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "REPROFLOW_STORE": str(store),
           "REPROFLOW_CACHE_DIR": str(cache), "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_HOME": str(tmp_path / "ph"),
           "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "words"]):
        _cli([*git, *args], project, env)

    from reproflow.store import Store

    runs: dict[str, str] = {}
    for name, src in (("same", "same.txt"), ("edited", str(outside / "edited.txt"))):
        before = set(Store(store).run_ids()) if store.exists() else set()
        _cli([sys.executable, "flow.py", src], project, env)
        (runs[name],) = set(Store(store).run_ids()) - before
    (outside / "edited.txt").write_text("four five six\n")

    shipped = pathlib.Path(__file__).resolve().parents[1] / "deployments" / "prefect.yaml"
    (project / "prefect.yaml").write_text(shipped.read_text())
    prefect = str(bindir / "prefect")
    _cli([prefect, "work-pool", "create", "reproflow-process", "--type", "process"], project, env)
    _cli([prefect, "deploy", "--all", "--prefect-file", "prefect.yaml"], project, env)
    flow_runs = {}
    for name, run_id in runs.items():
        out = _cli([prefect, "deployment", "run", "reproflow-replay/replay", "--param", f"run_id={run_id}",
                    "--param", f"store={store}"], project, env)
        flow_runs[name] = next(line.split("flow-run/")[1].strip() for line in out.splitlines() if "flow-run/" in line)
    _cli([prefect, "worker", "start", "--pool", "reproflow-process", "--run-once"], project, env, timeout=1000)

    def state(fr: str) -> dict[str, Any]:
        return httpx.get(f"{prefect_server}/flow_runs/{fr}", timeout=30).json()["state"]

    def artifacts(fr: str) -> dict[str, Any]:
        resp = httpx.post(f"{prefect_server}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [fr]}}},
                          timeout=30)
        return {a["key"]: a for a in resp.json()}

    ok = state(flow_runs["same"])
    assert ok["type"] == "COMPLETED" and ok["message"].startswith("reproduced"), ok
    arts = artifacts(flow_runs["same"])
    rows = json.loads(arts["reproflow-verdicts"]["data"])
    assert sorted((r["task"], r["verdict"]) for r in rows) == [("count", "reproduced"), ("double", "reproduced")]
    assert runs["same"] in arts["reproflow-replay-plan"]["data"]
    assert f"flow-run/{runs['same']}" in arts["reproflow-recorded-run"]["data"]
    replay_run = ok["message"].split("replay run ")[1].strip()
    assert f"flow-run/{replay_run}" in arts["reproflow-replay-run"]["data"]
    back = artifacts(runs["same"])["reproflow-replays"]["data"]
    assert replay_run in back

    bad = state(flow_runs["edited"])
    assert bad["type"] == "FAILED", bad
    assert "edited.txt changed since recording" in bad["message"] and "\n" not in bad["message"].strip(), bad
    assert "Traceback" not in bad["message"]
