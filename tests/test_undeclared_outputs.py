"""Files a task writes at paths it never names (issue 10): a report written to a path given as a
``str`` (argparse gives ``str``), a file named by a module constant. They were no outputs, so a
replay compared the return value alone and called a task reproduced whose file differed. Now a
file the task only wrote is an undeclared output (``DataRef.undeclared`` on an output), which a
replay compares. Runs as plain Python (the same recorder as under Prefect; the corpus shape
str_paths covers a Prefect flow)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import reproflow
from reproflow import repro_task
from reproflow.store import Store

COUNTER = "counter.txt"


@repro_task
def report(n: int, dst: str) -> int:
    with open(dst, "w") as fh:
        fh.write(f"{n}\n")
    with open(os.path.join(os.path.dirname(dst), "also.txt"), "w") as fh:  # a name built inside
        fh.write("x")
    fd, tmp = tempfile.mkstemp()
    os.close(fd)
    os.unlink(tmp)  # gone by the end: no output
    with open(dst + ".tmp", "w") as fh:  # an atomic write: the file moved into place is the output
        fh.write("atomic")
    os.replace(dst + ".tmp", os.path.join(os.path.dirname(dst), "final.txt"))
    return n


@repro_task
def bump() -> int:
    n = int(Path(COUNTER).read_text()) if Path(COUNTER).exists() else 0
    Path(COUNTER).write_text(str(n + 1))  # read, then rewritten: state kept in place, no output
    return 1


@repro_task
def into(out_dir: Path) -> None:
    (out_dir / "part.txt").write_text("p")  # a folder it was passed: one output, by the folder's rule


def test_files_a_task_only_wrote_at_paths_it_never_named_are_its_outputs(store: Store, tmp_path: Path,
                                                                          monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    Path(COUNTER).write_text("5")
    (tmp_path / "parts").mkdir()
    with reproflow.record("undeclared-writes") as run:
        report(3, str(tmp_path / "report.txt"))
        bump()
        into(tmp_path / "parts")
    tasks = {t.task_name: t for t in store.load_run(run.run_id).final_tasks()}
    got = [(Path(r.uri).name, r.undeclared, r.param, r.kind) for r in tasks["report"].outputs]
    assert got == [("also.txt", True, None, "file"), ("final.txt", True, None, "file"), ("report.txt", True, None, "file")]
    assert tasks["bump"].outputs == []
    assert [(Path(r.uri).name, r.undeclared) for r in tasks["into"].outputs] == [("part.txt", None)]
