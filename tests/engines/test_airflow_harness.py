"""The Airflow harness's guard against a stuck DAG run: killed with every process it started, and
reported with what it printed (no real Airflow needed: a stand-in command that never ends)."""

from __future__ import annotations

import os
import sys
import time
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
