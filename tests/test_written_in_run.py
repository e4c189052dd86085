"""Input files the run wrote itself outside any task (issue 10): a flow body or script that writes
a settings file, or generates a missing data file, before a task reads it. The recorder marks
such an input (``DataRef.written_in_run``) by its mtime or ctime, the later: after the run
began, before the task did (a file unpacked by tarfile or copied by shutil.copy2 has its
source's mtime, years old). A replay that runs the flow again writes it again, so it is derived, not an input from
outside; a file that existed before the run is never marked. Runs as plain Python (the same
recorder as under Prefect; the corpus shape flow_body_writes covers a Prefect flow body)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import reproflow
from reproflow import repro_task
from reproflow.capture._files import FILE_TIME_SLACK_NS
from reproflow.store import Store


@repro_task
def read_settings(settings: Path) -> int:
    return json.loads(settings.read_text())["factor"]


@repro_task
def read_named(n: int) -> int:
    return n + int(Path("generated.txt").read_text())  # a name written inside the body: undeclared


@repro_task
def listing(folder: Path) -> list[str]:
    return sorted(p.read_text() for p in folder.iterdir())


@repro_task
def bump(counter: Path) -> None:
    counter.write_text(str(int(counter.read_text()) + 1))


def test_files_the_script_wrote_before_a_task_read_them_are_marked(store: Store, tmp_path: Path,
                                                                     monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"factor": 3}))
    past = time.time() - 3600
    os.utime(old, (past, past))  # there before the run
    counter = tmp_path / "counter.txt"
    counter.write_text("1")
    os.utime(counter, (past, past))
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "old.txt").write_text("old")  # a folder that held a file before the run
    os.utime(tmp_path / "mixed" / "old.txt", (past, past))
    time.sleep(2 * FILE_TIME_SLACK_NS / 1e9)  # their ctimes (now) clearly before the run: within the slack, no telling
    with reproflow.record("body-writes") as run:
        settings = tmp_path / "settings.json"
        settings.write_text(json.dumps({"factor": 2}))  # the run's own, written outside any task
        Path("generated.txt").write_text("40\n")
        (tmp_path / "made").mkdir()
        (tmp_path / "made" / "a.txt").write_text("a")  # a folder of only the run's files
        (tmp_path / "mixed" / "b.txt").write_text("b")
        unpacked = tmp_path / "unpacked.json"  # as tarfile's extractall writes it: the member's mtime
        unpacked.write_text(json.dumps({"factor": 5}))
        os.utime(unpacked, (past, past))
        read_settings(unpacked)
        listing(tmp_path / "made")
        listing(tmp_path / "mixed")
        read_settings(settings)
        read_settings(old)
        read_named(2)
        bump(counter)  # read, then rewritten by the task itself: its state before is the run's input
    by_file = {name: flag for t in store.load_run(run.run_id).final_tasks() for name, flag in
               {Path(r.uri).name: r.written_in_run for r in t.inputs}.items()}
    assert by_file == {"settings.json": True, "old.json": None, "generated.txt": True, "counter.txt": None,
                       "made": True, "mixed": None, "unpacked.json": True}


def test_a_file_the_run_wrote_in_its_first_clock_tick_is_marked(store: Store, tmp_path: Path) -> None:
    """The kernel stamps a file's times from a coarse clock, up to a tick (1-10 ms) behind
    ``time.time_ns``: a file the flow body writes at once may carry a time just before the moment
    the run began. It is the run's all the same (the corpus shape flow_body_writes failed now and
    then on a loaded machine: its settings file taken for an input from outside, and the replay
    stopped on it as missing). Here the run's beginning is set 3 ms after the file's time."""
    from reproflow.recorder import _runs

    with reproflow.record("first-tick") as run:
        settings = tmp_path / "settings.json"
        settings.write_text(json.dumps({"factor": 2}))
        st = os.stat(settings)
        _runs._began_ns[run.run_id] = max(st.st_mtime_ns, st.st_ctime_ns) + 3_000_000
        read_settings(settings)
    (task,) = store.load_run(run.run_id).final_tasks()
    assert [(Path(r.uri).name, r.written_in_run) for r in task.inputs] == [("settings.json", True)]
