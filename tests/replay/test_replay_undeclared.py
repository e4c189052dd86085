"""Undeclared reads end to end: a task opens a file it never named; the record flags it, the
report takes points for it with the fix, and after the file changes a real replay refuses before
running anything, naming the file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reproflow.store import Store

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import reproflow
    from reproflow import repro_task


    @repro_task
    def scale(n: int) -> int:
        with open(LOOKUP) as fh:  # read, never declared: the audit hook sees it
            factor = int(fh.read())
        with open(LEDGER, "a") as fh:  # written by the task: not an input
            fh.write("ran\\n")
        return n * factor


    with reproflow.record(name="undeclared"):
        scale(3)
    """
)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_undeclared_read_is_flagged_and_a_change_to_it_stops_replay(
    tmp_path: Path, env_cache: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, store, shared = tmp_path / "repo", tmp_path / "store", tmp_path / "shared"
    repo.mkdir()
    shared.mkdir()
    lookup, ledger = shared / "lookup.txt", tmp_path / "ledger.txt"
    lookup.write_text("7\n")
    (repo / "run.py").write_text(SCRIPT.replace("LOOKUP", repr(str(lookup))).replace("LEDGER", repr(str(ledger))))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "script")
    env = {**os.environ, "REPROFLOW_STORE": str(store), "REPROFLOW_CACHE_DIR": str(env_cache)}
    proc = subprocess.run([sys.executable, "run.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    st = Store(store)
    [run_id] = st.run_ids()
    [task] = st.load_run(run_id).final_tasks()
    # the one undeclared input, with its hash; nothing of Python's own, no written file, no code
    assert [(r.uri, r.undeclared, r.declared, r.kind) for r in task.inputs] == [
        (os.path.realpath(lookup), True, False, "file")]
    assert task.inputs[0].sha256 and task.inputs[0].size == 2

    from reproflow.analysis._report import build_report

    report = build_report(st, run_id)
    [check] = [c for c in report.checks if c.code == "undeclared-inputs"]
    assert check.status == "fail" and check.points_lost == 5
    assert check.details == [f"{os.path.realpath(lookup)} (read by scale)"]
    assert check.fix.startswith("declare it")

    from reproflow.cli import app
    from reproflow.cli._common import run_cli

    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(repo)
    capsys.readouterr()
    assert run_cli(app, ["runs", "show", run_id, "--store", str(store)]) == 0
    shown = capsys.readouterr().out
    assert "(undeclared)" in shown and "lookup.txt" in shown

    lookup.write_text("8\n")  # the file changes after recording
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(env_cache))
    capsys.readouterr()
    code = run_cli(app, ["replay", run_id, "--store", str(store)])
    out, err = capsys.readouterr()
    assert code != 0, out[-3000:]
    assert f"input {os.path.realpath(lookup)} changed since recording" in " ".join((out + err).split()), err[-3000:]
    assert st.run_ids() == [run_id]  # refused before running: no replay run was recorded
    assert ledger.read_text() == "ran\n"
