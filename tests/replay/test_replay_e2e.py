"""End to end: record a real flow in a temporary git repository, replay it in a rebuilt env.

The flow imports a pinned third-party pure-Python distribution (tomli-w) and a local package
that sits beside it in the repository; it is recorded by `python flow.py` in a subprocess (so
the recorded environment is a real one), then replayed through the CLI with real uv, a real
venv and a real Prefect server on loopback. The env cache is shared by the module: the first
replay builds the environment from the record alone, the others reuse it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from replay_records import store_files

from reproflow.store import Store

pytestmark = pytest.mark.slow

FLOW = textwrap.dedent(
    """
    import random
    import sys
    from pathlib import Path

    import tomli_w
    from prefect import flow

    from localpkg.stats import summarize
    from reproflow import repro_task


    @repro_task
    def load(path: Path) -> list:
        return [int(x) for x in path.read_text().split()]


    @repro_task
    def stats(values: list) -> dict:
        return summarize(values)


    @repro_task
    def write(result: dict, out: Path) -> Path:
        out.write_text(tomli_w.dumps(result))
        return out


    @repro_task
    def jitter(values: list) -> float:
        return random.random() + sum(values)


    @flow
    def pipeline(data: Path, out: Path, noisy: bool = False) -> None:
        values = load(data)
        s = stats(values)
        write(s, out)
        if noisy:
            jitter(values)


    if __name__ == "__main__":
        data, out = Path(sys.argv[1]), Path(sys.argv[2])
        pipeline(data, out)
        pipeline(data, out.with_name("noisy.toml"), noisy=True)
    """
)

STATS = "def summarize(values):\n    return {'n': len(values), 'total': sum(values), 'max': max(values)}\n"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def recorded(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A tmp git repo with flow.py + localpkg/, recorded twice (quiet and noisy) into a store."""
    base = tmp_path_factory.mktemp("replay-e2e")
    repo, data, store = base / "repo", base / "data", base / "store"
    (repo / "localpkg").mkdir(parents=True)
    data.mkdir()
    (repo / "flow.py").write_text(FLOW)
    (repo / "localpkg" / "__init__.py").write_text("")
    (repo / "localpkg" / "stats.py").write_text(STATS)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pipeline")
    (data / "in.txt").write_text("3 1 4 1 5 9 2 6\n")
    env = {**os.environ, "REPROFLOW_STORE": str(store), "PREFECT_API_URL": prefect_api, "PREFECT_LOGGING_LEVEL": "WARNING"}
    proc = subprocess.run([str(Path(sys.executable)), "flow.py", str(data / "in.txt"), str(data / "out.toml")],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    st = Store(store)
    runs = {}
    for summary in st.list_runs():
        rec = st.load_run_record(summary.run_id)
        runs["noisy" if rec.parameters.get("noisy") else "quiet"] = summary.run_id
    assert set(runs) == {"quiet", "noisy"}
    yield {"repo": repo, "data": data, "store": store, **runs}


@pytest.fixture(scope="module")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's own env cache, not the session's: its first replay must build the
    environment from the record alone (``reused`` is False), the later ones reuse it."""
    return tmp_path_factory.mktemp("replay-e2e-env-cache")


def _cli(args: list[str], capsys: pytest.CaptureFixture[str], env_cache: Path,
         monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(env_cache))
    monkeypatch.setenv("COLUMNS", "200")
    capsys.readouterr()
    code = run_cli(app, ["replay", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _replay(args: list[str], capsys: pytest.CaptureFixture[str], env_cache: Path,
            monkeypatch: pytest.MonkeyPatch) -> tuple[int, Any, str]:
    code, out, err = _cli(args, capsys, env_cache, monkeypatch)
    return code, (json.loads(out) if "--json" in args and out.strip() else None), err


def test_replay_reproduces_from_the_record_alone(recorded: dict[str, Any], env_cache: Path,
                                                  capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh environment is built from the record (pins + local reproflow source), the flow
    re-runs from the restored code, every task reproduces, exit 0, linked by replay_of."""
    repo = recorded["repo"]
    before = _git(repo, "status", "--porcelain")
    code, result, err = _replay([recorded["quiet"], "--store", str(recorded["store"]), "--json"], capsys, env_cache, monkeypatch)
    assert code == 0, err + json.dumps(result, indent=1)[-3000:]
    assert result["verdict"] == "reproduced"
    assert result["environment"]["reused"] is False and result["environment"]["mode"] == "rebuild"
    assert str(env_cache) in result["environment"]["path"]
    assert [t["task_name"] for t in result["tasks"]] == ["load", "stats", "write"]
    assert all(t["verdict"] == "reproduced" for t in result["tasks"])
    assert result["plan"]["pins_by_kind"].get("local", 0) >= 1  # reproflow itself, from its snapshot
    st = Store(recorded["store"])
    new = st.load_run(result["replay_run_id"])
    assert new.record.replay_of == recorded["quiet"]
    assert new.context is not None and new.context.python_version == result["plan"]["python_recorded"]
    from reproflow.records import Environment

    new_env = st.get_model_blob(new.context.environment_blob, Environment)
    assert new_env.python.executable.startswith(str(env_cache))  # it ran in the rebuilt venv
    assert result["drift"] == [] or all(not d.startswith("package") for d in result["drift"]), result["drift"]
    assert _git(repo, "status", "--porcelain") == before  # the user's tree is untouched
    assert result["work_dir"] is None


def test_unseeded_random_step_is_named(recorded: dict[str, Any], env_cache: Path,
                                       capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The noisy run's unseeded random task differs: exit 1, that task named with its cause;
    the environment is reused from the cache."""
    code, result, err = _replay([recorded["noisy"], "--store", str(recorded["store"]), "--json"], capsys, env_cache, monkeypatch)
    assert code == 1, err + json.dumps(result, indent=1)
    by_name = {t["task_name"]: t for t in result["tasks"]}
    assert by_name["jitter"]["verdict"] == "differs"
    assert any("nondeterminism in this task" in c for c in by_name["jitter"]["causes"])
    assert all(by_name[n]["verdict"] == "reproduced" for n in ("load", "stats", "write"))
    assert result["environment"]["reused"] is True
    assert result["timings"]["to_flow_call"] < 60


def test_verdict_table_names_the_task(recorded: dict[str, Any], env_cache: Path,
                                      capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --json: the plan and progress on stderr, a verdict table and a summary naming
    the task that differs on stdout."""
    code, out, err = _cli([recorded["noisy"], "--store", str(recorded["store"])], capsys, env_cache, monkeypatch)
    assert code == 1
    assert "replay plan" in err and "tomli" not in out
    assert "jitter" in out and "differs" in out and "nondeterminism" in out
    assert "not reproduced" in out and "3/4 task runs match" in out


def test_changed_input_refuses_before_running(recorded: dict[str, Any], env_cache: Path,
                                              capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """One changed byte in the input: exit 6, one line naming the file and both hashes, and
    nothing written to the store."""
    import hashlib

    src = recorded["data"] / "in.txt"
    original = src.read_bytes()
    st = Store(recorded["store"])
    expected = next(r.sha256 for t in st.load_run(recorded["quiet"]).tasks for r in t.inputs if r.uri == str(src))
    snapshot = store_files(st)
    src.write_bytes(original.replace(b"3", b"7", 1))
    try:
        code, _, err = _replay([recorded["quiet"], "--store", str(recorded["store"])], capsys, env_cache, monkeypatch)
    finally:
        src.write_bytes(original)
    assert code == 6
    line = " ".join(err.split())
    assert str(src) in line and expected in line and hashlib.sha256(original.replace(b"3", b"7", 1)).hexdigest() in line
    assert store_files(st) == snapshot


def test_store_copied_elsewhere_replays_the_same(recorded: dict[str, Any], env_cache: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the store in another folder (a second machine's view) replays to the same
    verdict; the new run lands in the copy, not in the original store."""
    copy = tmp_path / "elsewhere" / "store"
    shutil.copytree(recorded["store"], copy)
    before = set(Store(recorded["store"]).run_ids())
    code, result, err = _replay([recorded["quiet"], "--store", str(copy), "--json"], capsys, env_cache, monkeypatch)
    assert code == 0, err
    assert result["verdict"] == "reproduced"
    assert result["replay_run_id"] in Store(copy).run_ids()
    assert set(Store(recorded["store"]).run_ids()) == before


def test_partial_replay_of_one_task(recorded: dict[str, Any], env_cache: Path,
                                    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """--task stats re-runs only that task from its recorded (typed) inputs and reproduces it."""
    code, result, err = _replay([recorded["quiet"], "--store", str(recorded["store"]), "--task", "stats", "--json"],
                                capsys, env_cache, monkeypatch)
    assert code == 0, err + json.dumps(result)[-2000:]
    assert [t["task_name"] for t in result["tasks"]] == ["stats"]
    assert result["plan"]["partial"] == "--task stats"


def test_in_place_reports_no_rebuild(recorded: dict[str, Any], env_cache: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """--in-place runs in the current interpreter (no env build) and still reproduces; --keep
    keeps the work folder with the restored code and the runner log."""
    code, result, err = _replay([recorded["quiet"], "--store", str(recorded["store"]), "--in-place", "--keep", "--json"],
                                capsys, env_cache, monkeypatch)
    assert code == 0, err
    assert result["environment"]["mode"] == "in-place" and result["environment"]["python"] == sys.executable
    work = Path(result["work_dir"])
    try:
        assert (work / "source" / "flow.py").read_text() == FLOW
        assert (work / "runner.log").exists()
    finally:
        shutil.rmtree(work)
