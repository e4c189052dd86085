"""bench/bench_process.py: the two flows it times differ only in the decorator, and it says in one
line what it needs when no Prefect server is given."""

from __future__ import annotations

import importlib.util
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench" / "bench_process.py"
_spec = importlib.util.spec_from_file_location("_bench_process", BENCH)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.path.insert(0, str(BENCH.parent))
_spec.loader.exec_module(bench)


def test_the_baseline_and_the_recorded_flow_differ_only_in_the_decorator(tmp_path: Path) -> None:
    """``repro_flow.py`` is the corpus's basic_files shape with @repro_task (the file task's paths
    declared), ``task_flow.py`` the same with Prefect's @task; both in one committed git
    repository, with the data they read."""
    from prefect.tasks import Task

    from reproflow.engines.prefect._task import ReproTask

    repo = bench.make_repo(tmp_path)
    assert subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout == ""
    plain = runpy.run_path(str(repo / "task_flow.py"), run_name="bench_flow")
    recorded = runpy.run_path(str(repo / "repro_flow.py"), run_name="bench_flow")
    assert "reproflow" not in (repo / "task_flow.py").read_text()
    assert isinstance(plain["shout"], Task) and not isinstance(plain["shout"], ReproTask)
    assert not isinstance(plain["double"], ReproTask)
    assert isinstance(recorded["shout"], ReproTask) and isinstance(recorded["double"], ReproTask)
    assert set(recorded["shout"]._rf_spec.decl.inputs) == {"src"} and set(recorded["shout"]._rf_spec.decl.outputs) == {"dst"}
    assert plain["basic"].fn.__code__.co_code == recorded["basic"].fn.__code__.co_code
    assert (repo / "data" / "in.txt").is_file()


def test_without_a_server_it_says_how_to_start_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    proc = subprocess.run([sys.executable, str(BENCH), "--repeats", "1"], capture_output=True, text=True,
                          env={k: v for k, v in __import__("os").environ.items() if k != "PREFECT_API_URL"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("bench_process: no Prefect server: start one")
