"""The Airflow 3 adapter against real Airflow (``airflow dags test --use-executor`` on SQLite, in
an environment of Airflow's own without Prefect; see airflow_harness.py): one DAG run is one
reproflow run, though its task instances run in separate processes; it records the same tasks,
DAG shape and data hashes as the Prefect version of the pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from airflow_harness import DAG_ID, RETRY_DAG_ID, airflow_env, git_repo, run_dags

from reproflow import Store
from reproflow.records import RunRecord

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def airflow_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = airflow_env()
    work = tmp_path_factory.mktemp("airflow")
    repo = git_repo(work / "repo")
    store, retry_store = str(work / "store"), str(work / "store-retry")
    done = run_dags(env, work, repo, {DAG_ID: store, RETRY_DAG_ID: retry_store})
    ran = done[DAG_ID]
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    return {"store": Store(store), "retry_store": Store(retry_store), "retry": done[RETRY_DAG_ID], "repo": repo,
            "work": work}


@pytest.fixture(scope="module")
def prefect_run(prefect_api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("prefect")
    repo = git_repo(work / "repo")
    store = str(work / "store")
    env = {**os.environ, **prefect_api_env, "REPROFLOW_STORE": store}
    proc = subprocess.run([sys.executable, "prefect_flow.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"store": Store(store), "repo": repo}


def _only_run(store: Store) -> Any:
    ids = [s.run_id for s in store.list_runs()]
    assert len(ids) == 1, ids
    return store.load_run(ids[0])


def test_one_dag_run_is_one_run_with_airflows_ids(airflow_run: dict[str, Any]) -> None:
    run = _only_run(airflow_run["store"])
    record: RunRecord = run.record
    assert record.engine == "airflow"
    assert record.flow_name == DAG_ID
    assert record.engine_info["dag_id"] == DAG_ID
    assert str(record.engine_info["run_id"]).startswith("manual__")
    assert run.end is not None and run.end.status == "COMPLETED"  # written by close_run at the DAG run's end
    assert run.end.n_tasks == 7
    names = Counter(t.task_name for t in run.tasks)
    assert names == {"load": 1, "clean": 1, "stat": 4, "report": 1}
    for t in run.tasks:
        assert t.engine == "airflow" and t.state == "COMPLETED" and t.attempt == 1
        info = t.engine_info
        assert (info["dag_id"], info["run_id"], info["task_id"]) == (DAG_ID, record.engine_info["run_id"], t.task_name)
        assert info["try_number"] == 1
        assert info["map_index"] == (t.map_index if t.map_index is not None else -1)
    assert sorted(t.map_index for t in run.tasks if t.task_name == "stat") == [0, 1, 2, 3]


def test_task_instances_ran_in_processes_of_their_own(airflow_run: dict[str, Any]) -> None:
    """The LocalExecutor ran each task instance as a workload of its own (one log per instance,
    written by the supervisor of its process), and they still joined one run."""
    logs = airflow_run["work"] / "airflow-home" / "logs" / f"dag_id={DAG_ID}"
    found = sorted(str(p.relative_to(logs)) for p in logs.rglob("attempt=1.log"))
    assert len(found) == 7, found
    assert len(_only_run(airflow_run["store"]).tasks) == 7


def test_a_failed_dag_run_keeps_every_try_and_ends_failed(airflow_run: dict[str, Any]) -> None:
    """Tries of one task instance are attempts of one task run; close_run ends the run FAILED."""
    proc = airflow_run["retry"]
    assert proc.returncode != 0, proc.stdout[-2000:]  # the DAG run failed
    run = _only_run(airflow_run["retry_store"])
    assert run.record.engine_info["dag_id"] == RETRY_DAG_ID
    assert run.end is not None and run.end.status == "FAILED"
    assert run.end.error is not None and run.end.error.type == "airflow.failed"
    flaky = sorted((t for t in run.tasks if t.task_name == "flaky"), key=lambda t: t.attempt)
    assert [(t.attempt, t.state, t.engine_info["try_number"]) for t in flaky] == [(1, "FAILED", 1), (2, "COMPLETED", 2)]
    assert flaky[0].task_run_id == flaky[1].task_run_id
    assert flaky[0].error is not None and "the first try fails" in flaky[0].error.message
    (broken,) = [t for t in run.tasks if t.task_name == "broken"]
    assert broken.state == "FAILED" and broken.error is not None and broken.error.type == "builtins.ValueError"
    assert broken.upstream == {"made": [flaky[0].task_run_id]}


def _edges(run: Any) -> Counter[tuple[str, str, str]]:
    """(upstream task name, task name, parameter) for every edge, map indexes folded."""
    by_id = {t.task_run_id: t.task_name for t in run.tasks}
    out: Counter[tuple[str, str, str]] = Counter()
    for t in run.tasks:
        for param, ids in t.upstream.items():
            for i in ids:
                out[(by_id.get(i, "?"), t.task_name, param)] += 1
    return out


def _data(run: Any) -> set[tuple[str, int | None, str, str, str | None]]:
    """(task, map index, in/out, parameter, sha256) of every hashed input and output."""
    rows = set()
    for t in run.tasks:
        for way, refs in (("in", t.inputs), ("out", t.outputs)):
            for ref in refs:
                rows.add((t.task_name, t.map_index, way, ref.param or "", ref.sha256))
    return rows


def _results(run: Any) -> dict[tuple[str, int | None], str | None]:
    """Result hashes of the tasks that return values, not paths (paths differ between folders)."""
    return {(t.task_name, t.map_index): t.result_hash for t in run.tasks if t.task_name in ("load", "stat")}


def test_same_tasks_shape_and_data_as_the_prefect_flow(airflow_run: dict[str, Any], prefect_run: dict[str, Any]) -> None:
    a, p = _only_run(airflow_run["store"]), _only_run(prefect_run["store"])
    assert p.record.engine == "prefect"
    assert Counter(t.task_name for t in a.tasks) == Counter(t.task_name for t in p.tasks)
    assert _edges(a) == _edges(p)
    assert _edges(a) == Counter({("load", "clean", "rows"): 1, ("clean", "stat", "clean_csv"): 4, ("stat", "report", "stats"): 4})
    assert _data(a) == _data(p)
    assert all(sha for *_, sha in _data(a))
    assert _results(a) == _results(p)



def test_a_changed_input_is_refused_before_anything_runs(airflow_run: dict[str, Any], tmp_path: Path) -> None:
    """One byte of the DAG's raw CSV changed where the run read it: ``reproflow replay RUN_ID
    --store URL`` from an empty folder refuses in one line naming the file, before any task runs
    (no replay run is recorded). The file is put back for the tests after it."""
    run = _only_run(airflow_run["store"])
    raw = next(Path(ref.uri) for t in run.final_tasks() for ref in t.inputs if ref.uri.endswith(".csv"))
    original = raw.read_bytes()
    before = set(airflow_run["store"].run_ids())
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROFLOW_")}
    try:
        raw.write_bytes(original.replace(b"1", b"2", 1))
        proc = subprocess.run([sys.executable, "-m", "reproflow", "replay", run.run_id, "--store",
                               airflow_run["store"].url], cwd=tmp_path, env={**env, "COLUMNS": "200"},
                              capture_output=True, text=True, timeout=900)
    finally:
        raw.write_bytes(original)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert str(raw) in proc.stderr and "changed" in proc.stderr, proc.stderr[-3000:]
    assert set(airflow_run["store"].run_ids()) == before  # no replay run: nothing ran


def test_the_dag_run_replays_task_by_task_to_reproduced(airflow_run: dict[str, Any], shared_cache_dir: Path,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The DAG run replays from another folder with only --store, task by task by default: no
    scheduler and no DAG run, each task's function called in DAG order (the mapped stat once per
    map index, fed the replayed clean file) in the rebuilt environment of Airflow's own, which
    holds no Prefect; every task reproduces."""
    import json

    from reproflow.cli import app
    from reproflow.cli._common import run_cli

    run = _only_run(airflow_run["store"])
    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(shared_cache_dir))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = run_cli(app, ["replay", run.run_id, "--store", str(airflow_run["work"] / "store"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:] + out[-3000:]
    result = json.loads(out)
    assert result["verdict"] == "reproduced" and result["plan"]["replay_engine"] == "tasks"
    assert sorted({t["task_name"] for t in result["tasks"]}) == sorted({t.task_name for t in run.final_tasks()})
    assert len(result["tasks"]) == len(run.final_tasks())
