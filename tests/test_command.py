"""`reproflow record -- CMD` and `reproflow job -- CMD`: any command as one run, its recorded steps
joined into it, edges from data lineage, the command's exit status kept and returned."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

from reproflow.cli._common import run_cli
from reproflow.recorder._dag import edges
from reproflow.cli import app
from reproflow.store import Store

BIN = pathlib.Path(sys.executable).parent


def _env() -> dict[str, str]:
    """This interpreter's bin folder first on PATH (`python` and `reproflow` in recipes)."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("REPROFLOW_RUN_ID", None)
    return env


def _reproflow(args: list[str], cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "reproflow"), *args], cwd=cwd, env=_env(), text=True, capture_output=True,
                          timeout=600)


STEPS = textwrap.dedent("""
    import sys
    from pathlib import Path
    from reproflow import repro_task

    @repro_task(inputs=["src"], outputs=["dst"])
    def clean(src: Path, dst: Path) -> None:
        dst.write_text(Path(src).read_text().strip().lower() + "\\n")

    @repro_task(inputs=["src"], outputs=["dst"])
    def count(src: Path, dst: Path) -> None:
        dst.write_text(str(len(Path(src).read_text().split())) + "\\n")

    if __name__ == "__main__":
        {"clean": clean, "count": count}[sys.argv[1]](Path(sys.argv[2]), Path(sys.argv[3]))
""")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_record_make_gives_one_run_with_an_edge_between_its_steps(tmp_path: pathlib.Path) -> None:
    """`reproflow record -- make`: a Makefile whose two recipes each run a Python step with a plain
    @repro_task records ONE run (engine command, make's argv), the two steps in it, and the edge
    from the file the first wrote to the second; the run ends COMPLETED with exit status 0."""
    (tmp_path / "steps.py").write_text(STEPS)
    (tmp_path / "raw.txt").write_text("B A\nC D\n")
    (tmp_path / "Makefile").write_text(
        "count.txt: clean.txt\n\tpython steps.py count clean.txt count.txt\n"
        "clean.txt: raw.txt\n\tpython steps.py clean raw.txt clean.txt\n")
    proc = _reproflow(["record", "--store", "store", "--", "make"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    store = Store(tmp_path / "store")
    [run_id] = store.run_ids()
    assert f"recorded run {run_id}" in proc.stderr
    run = store.load_run(run_id)
    assert run.record.engine == "command" and run.record.flow_name == "make"
    assert run.record.engine_info == {"argv": ["make"]}
    assert run.status == "COMPLETED" and run.end is not None and run.end.exit_code == 0
    clean, count = run.final_tasks()
    assert (clean.task_name, count.task_name) == ("clean", "count")
    assert [(e.src, e.dst, e.via, e.how) for e in edges(run)] == [(clean.task_run_id, count.task_run_id, "src", "data")]
    assert (tmp_path / "count.txt").read_text() == "4\n"


def test_record_a_shell_script_of_job_wrapped_commands(tmp_path: pathlib.Path) -> None:
    """A shell script whose steps are commands wrapped in `reproflow job` (no Python of their
    own): one run, one task per step with its declared paths hashed and its argv and --info in
    engine_info, the edge between them; a failing last step makes the run FAILED with the
    script's exit status, which `reproflow record` exits with."""
    (tmp_path / "raw.txt").write_text("b\na\nc\n")
    (tmp_path / "pipeline.sh").write_text(textwrap.dedent("""
        set -e
        reproflow job --name sort -i raw.txt -o sorted.txt --info stage=1 -- sh -c 'sort raw.txt > sorted.txt'
        reproflow job --name head -i sorted.txt -o top.txt -- sh -c 'head -n 1 sorted.txt > top.txt'
        reproflow job --name fails -i top.txt -- sh -c 'exit 3'
    """))
    proc = _reproflow(["record", "--store", "store", "--name", "pipeline", "--", "bash", "pipeline.sh"], tmp_path)
    assert proc.returncode == 3, proc.stderr
    store = Store(tmp_path / "store")
    [run_id] = store.run_ids()
    run = store.load_run(run_id)
    assert run.record.flow_name == "pipeline" and run.record.engine_info == {"argv": ["bash", "pipeline.sh"]}
    assert run.status == "FAILED" and run.end is not None and run.end.exit_code == 3
    sort, head, fails = run.final_tasks()
    assert sort.engine_info == {"argv": ["sh", "-c", "sort raw.txt > sorted.txt"], "stage": "1", "exit_code": 0}
    assert sort.state == head.state == "COMPLETED" and fails.state == "FAILED"
    assert fails.error is not None and "status 3" in fails.error.message
    assert (tmp_path / "top.txt").read_text() == "a\n"
    pairs = {(e.src, e.dst, e.how) for e in edges(run)}
    assert pairs == {(sort.task_run_id, head.task_run_id, "data"), (head.task_run_id, fails.task_run_id, "data")}


def test_record_refuses_a_missing_command_in_one_line(tmp_path: pathlib.Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A program not on PATH, or no command at all: one line naming the problem and the fix,
    exit 127 as a shell would, and no run recorded."""
    store = tmp_path / "store"
    assert run_cli(app, ["record", "--store", str(store), "--", "no-such-program-xyz", "a"]) == 127
    err = capsys.readouterr().err
    assert "command not found: 'no-such-program-xyz'" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert run_cli(app, ["record", "--store", str(store)]) == 127
    assert "put it after --" in capsys.readouterr().err
    assert not (store / "runs").exists() or not list((store / "runs").iterdir())
    assert run_cli(app, ["job", "--name", "x", "--info", "novalue", "--", "true"]) == 2
    assert "not KEY=VALUE" in capsys.readouterr().err


def test_record_inside_a_recorded_command_joins_its_run(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`reproflow record` run by a command that is itself recorded (a Makefile calling another
    `reproflow record`) joins the outer run and leaves it open for its owner to close, instead
    of opening a second run or closing the outer one early."""
    from reproflow.recorder._join import RUN_ID_ENV, open_shared_run

    store = Store(tmp_path / "store")
    outer = open_shared_run(name="outer", engine="command", store=store)
    monkeypatch.setenv(RUN_ID_ENV, outer)
    assert run_cli(app, ["record", "--store", str(tmp_path / "store"), "--", "sh", "-c", "exit 5"]) == 5
    assert f"recorded run {outer}" in capsys.readouterr().err
    assert store.run_ids() == [outer] and store.load_run(outer).end is None
