"""Plain Python runs replayed: a ``@repro_task`` called outside any flow is a run of its own,
and replaying it calls that function again with its recorded arguments, never the script around
it; a ``reproflow.record()`` script's entrypoint is the file alone (no ``:function``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from reproflow.replay._execute import split_entrypoint
from reproflow.store import Store

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    from pathlib import Path

    from reproflow import repro_task


    @repro_task(inputs=["src"], outputs=["dst"])
    def shout(src: Path, dst: Path, *, suffix: str = "!") -> int:
        text = src.read_text().strip()
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(text.upper() + suffix)
        return len(text.split())


    if __name__ == "__main__":
        with open(LEDGER, "a") as fh:  # the script's own work: must not run again at replay
            fh.write("ran\\n")
        shout(Path("data/a.txt"), Path("out/a.txt"))
        shout(Path("data/b.txt"), Path("out/b.txt"), suffix="?")
    """
)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_split_entrypoint() -> None:
    """A file with a qualified name splits at the last colon; a script alone (what
    ``reproflow.record()`` records) stays whole, so replay runs that file."""
    assert split_entrypoint("flows/flow.py:pipeline") == ("flows/flow.py", "pipeline")
    assert split_entrypoint("flow.py:Outer.method") == ("flow.py", "Outer.method")
    assert split_entrypoint("flow.py") == ("flow.py", None)
    assert split_entrypoint("/abs/flows/run.py") == ("/abs/flows/run.py", None)
    assert split_entrypoint("/data/a:b/run.py") == ("/data/a:b/run.py", None)


def test_task_called_outside_a_flow_replays_the_call_not_the_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script calls one @repro_task twice outside any flow: two one-task runs. Replaying the
    second (from another folder, in place) makes exactly one new run, a one-task run of the same
    function with the second call's arguments (keyword-only included), reproduced; the script's
    own work (its ledger line) does not happen again."""
    repo, store, ledger = tmp_path / "repo", tmp_path / "store", tmp_path / "ledger.txt"
    (repo / "data").mkdir(parents=True)
    (repo / "run.py").write_text(SCRIPT.replace("LEDGER", repr(str(ledger))))
    (repo / "data" / "a.txt").write_text("one two three")
    (repo / "data" / "b.txt").write_text("four five")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "script")
    env = {**os.environ, "REPROFLOW_STORE": str(store)}
    proc = subprocess.run([sys.executable, "run.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    st = Store(store)
    runs = sorted((st.load_run(r) for r in st.run_ids()), key=lambda r: r.record.started_at)
    assert [len(r.tasks) for r in runs] == [1, 1]
    second = runs[1]
    assert second.record.engine == "plain" and second.record.entrypoint == "run.py:shout"
    before = set(st.run_ids())

    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    code = run_cli(app, ["replay", second.run_id, "--store", str(store), "--in-place", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, out[-3000:] + err[-3000:]
    result: dict[str, Any] = json.loads(out)
    assert result["verdict"] == "reproduced", out
    new = set(st.run_ids()) - before
    assert new == {result["replay_run_id"]}
    replayed = st.load_run(result["replay_run_id"])
    assert replayed.record.replay_of == second.run_id and replayed.record.flow_name == "shout"
    [task] = replayed.tasks
    assert task.parameters["suffix"] == "?" and task.parameters_hash == second.tasks[0].parameters_hash
    assert ledger.read_text() == "ran\n"


def test_record_block_without_a_script_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``reproflow.record()`` in ``python -c`` (as at a prompt) has no file to run again: the run
    records no entrypoint (it recorded the path of a file named '<string>' before), and its
    replay is refused with one line naming --task, before anything is built."""
    store = tmp_path / "store"
    (tmp_path / "tasks.py").write_text("from reproflow import repro_task\n\n\n@repro_task\ndef inc(x: int) -> int:\n"
                                       "    return x + 1\n")
    code = "import reproflow\nfrom tasks import inc\nwith reproflow.record() as run:\n    inc(1)\nprint(run.run_id)\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "REPROFLOW_STORE": str(store)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_id = proc.stdout.strip().splitlines()[-1]
    assert Store(store).load_run_record(run_id).entrypoint is None

    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    exit_code = run_cli(app, ["replay", run_id, "--store", str(store), "--in-place"])
    out, err = capsys.readouterr()
    assert exit_code != 0
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "no script to run" in err and "--task" in err
