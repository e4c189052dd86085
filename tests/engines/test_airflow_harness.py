"""The Airflow harness's guard against a stuck DAG run: killed with every process it started, and
reported with what it printed (no real Airflow needed: a stand-in command that never ends)."""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import airflow_harness
import pytest


def test_a_stuck_dag_run_is_killed_with_its_children_and_reported(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "airflow"
    pid_file = tmp_path / "child.pid"
    fake.write_text(f"#!{sys.executable}\n"
                    "import subprocess, sys, time\n"
                    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
                    f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
                    "print('Creating ORM DAG for the_dag', flush=True)\n"
                    "time.sleep(600)\n")
    fake.chmod(0o755)
    home = tmp_path / "home"
    (home / "logs" / "dag_id=the_dag").mkdir(parents=True)
    (home / "logs" / "dag_id=the_dag" / "attempt=1.log").write_text("task log line\n")
    (tmp_path / "api-server.log").write_text("api up\n")
    monkeypatch.setattr(airflow_harness, "DAG_RUN_TIMEOUT_S", 3)
    with pytest.raises(airflow_harness.DagRunStuck) as stuck:
        airflow_harness._dag_test(str(fake), "the_dag", dict(os.environ), tmp_path, home)
    message = str(stuck.value)
    assert "ran past 3 s" in message and "Creating ORM DAG for the_dag" in message
    assert "task log line" in message and "api up" in message
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # a killed child of a killed parent is a zombie until init reaps it
        if Path(f"/proc/{child}/stat").read_text().split(") ")[1].startswith("Z"):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the stuck run's child {child} still runs")


def test_a_stuck_dag_run_runs_all_again_from_scratch_after_a_warning(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """run_dags: stuck once, every DAG runs again in a fresh Airflow home with empty stores (the
    stuck home kept beside it), after a warning with what the stuck run printed."""
    stores = {"a": str(tmp_path / "store-a"), "b": str(tmp_path / "store-b")}
    calls: list[list[str]] = []

    def once(env: Path, work: Path, repo: Path, stores_: dict[str, str]) -> dict[str, object]:
        calls.append(sorted(p.name for p in work.iterdir()))
        (work / "airflow-home").mkdir()
        for s in stores_.values():
            Path(s).mkdir()
            (Path(s) / "half-written-record").write_text("x")
        if len(calls) == 1:
            raise airflow_harness.DagRunStuck("dags test a ran past 300 s: its output")
        return {"a": "done"}

    monkeypatch.setattr(airflow_harness, "_run_dags_once", once)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("error")  # as the suite runs (filterwarnings = error): the warning
        done = airflow_harness.run_dags(tmp_path / "env", tmp_path, tmp_path / "repo", stores)  # must not abort the retry
    assert any(issubclass(w.category, UserWarning) and "its output" in str(w.message) for w in seen)
    assert done == {"a": "done"}
    assert calls[1] == ["airflow-home.stuck"]  # the second run started with no home and no stores
    for s in stores.values():
        assert [p.name for p in Path(s).iterdir()] == ["half-written-record"]  # only the second run's
