"""Records made before reproflow recorded a folder's new files one by one (schema 1.0, before
the per-file folder outputs): a task that wrote into a folder it was passed recorded the whole
folder as its output. The fixture holds the two task records such a version wrote for the
pipeline below (``split`` then ``summarize`` writing into ``results/``, one after the other), its
paths under ``/RECORDED``. Today's replay records the files each task wrote, and the folder's tree
before the task; where no other task wrote into the folder at the same time (in the recorded run
and in the replay) and the replay's records account for every file it held, the folder's state
at the task's end is rebuilt from them and compared with the old tree hash. Otherwise the task is
"unverified" with the reason, never a false "differs" nor "reproduced"."""

from __future__ import annotations

import json
from pathlib import Path

import reproflow
from reproflow import repro_task
from reproflow.records import TaskRecord
from reproflow.replay._compare import compare_task, match_tasks
from reproflow.replay._models import TaskVerdict
from reproflow.store import Store

FIXTURE = Path(__file__).parent / "fixtures" / "schema_1_0_folder_outputs.json"


@repro_task
def split(src: Path, out_dir: Path) -> int:
    lines = src.read_text().splitlines()
    for i, line in enumerate(lines):
        (out_dir / f"part-{i}.txt").write_text(line.upper())
    return len(lines)


@repro_task
def summarize(n: int, out_dir: Path) -> int:
    (out_dir / "summary.txt").write_text(str(n))
    return n


def _old_records(root: Path) -> list[TaskRecord]:
    raw = json.loads(FIXTURE.read_text().replace("/RECORDED", str(root)))
    return [TaskRecord.model_validate(r) for r in raw]


def _replayed(store: Store, root: Path, text: str) -> list[TaskRecord]:
    src, out = root / "lines.txt", root / "results"
    src.write_text(text)
    out.mkdir(exist_ok=True)
    with reproflow.record("the replay") as run:
        summarize(split(src, out), out)
    return sorted(store.load_run(run.run_id).final_tasks(), key=lambda t: t.started_at)


def _verdicts(old: list[TaskRecord], new: list[TaskRecord], **kw: object) -> dict[str, TaskVerdict]:
    pairs, extra = match_tasks(old, new, {}, {})
    assert not extra
    return {o.task_name: compare_task(o, n, runs=(old, new), **kw) for o, n in pairs}  # type: ignore[arg-type]


def test_an_old_whole_folder_output_is_compared_where_the_task_alone_wrote_into_it(store: Store, tmp_path: Path) -> None:
    """Written one task after the other: the folder's state when each task ended is rebuilt from
    the replay's records (split: the two parts; summarize: split's parts and its summary) and
    equals the old tree hash."""
    old = _old_records(tmp_path)
    assert {t.schema_version for t in old} == {"1.0"}
    assert all(r.kind == "directory" for t in old for r in t.outputs)  # the old form
    new = _replayed(store, tmp_path, "a\nbb\n")
    for name, v in _verdicts(old, new).items():
        assert v.verdict == "reproduced", (name, v)
        (folder,) = [c for c in v.outputs if c.uri == str(tmp_path / "results")]
        assert folder.match and folder.expected == folder.actual, (name, folder)


def test_an_old_whole_folder_output_differs_where_the_folder_differs(store: Store, tmp_path: Path) -> None:
    """Same number of lines (split returns 2 as recorded), a different second line: the folder
    compared, not left out, makes both tasks "differs"."""
    old = _old_records(tmp_path)
    new = _replayed(store, tmp_path, "a\nbc\n")
    verdicts = _verdicts(old, new)
    assert {k: v.verdict for k, v in verdicts.items()} == {"split": "differs", "summarize": "differs"}
    assert verdicts["split"].result_match is True
    assert [c.match for c in verdicts["split"].outputs] == [False]


def test_an_old_record_still_differs_where_something_compared_differs(store: Store, tmp_path: Path) -> None:
    """A different return value is "differs" as before."""
    old = _old_records(tmp_path)
    new = _replayed(store, tmp_path, "a\nbb\nccc\n")  # three lines: split returns 3, not 2
    assert {k: v.verdict for k, v in _verdicts(old, new).items()} == {"split": "differs", "summarize": "differs"}


def _cause(v: TaskVerdict, folder: Path) -> str:
    assert v.verdict == "unverified", v
    assert v.result_match is True  # what could be compared was
    (cause,) = [c for c in v.causes if f"folder {folder} was recorded whole" in c]
    return cause


def test_tasks_writing_into_the_folder_at_once_in_the_recorded_run_leave_it_unverified(store: Store, tmp_path: Path) -> None:
    """In the recorded run, summarize started before split ended: split's old folder hash may hold
    summarize's file, half written. Neither folder is compared, and the cause says why."""
    old = _old_records(tmp_path)
    old[1] = old[1].model_copy(update={"started_at": old[0].started_at})
    new = _replayed(store, tmp_path, "a\nbb\n")
    for name, v in _verdicts(old, new).items():
        other = "summarize" if name == "split" else "split"
        assert f"task {other} wrote into it at the same time in the recorded run" in _cause(v, tmp_path / "results")


def test_a_file_no_replayed_task_wrote_leaves_the_folder_unverified(store: Store, tmp_path: Path) -> None:
    """A file in the folder before the run (not written by any task of the replay): its hash is
    not in the records, so the folder's state cannot be rebuilt."""
    old = _old_records(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "old.txt").write_text("before")
    new = _replayed(store, tmp_path, "a\nbb\n")
    for v in _verdicts(old, new).values():
        assert "it held old.txt before the task, which no task of the replay wrote" in _cause(v, tmp_path / "results")


def test_without_the_runs_an_old_whole_folder_output_is_unverified(store: Store, tmp_path: Path) -> None:
    old = _old_records(tmp_path)
    new = _replayed(store, tmp_path, "a\nbb\n")
    pairs, _ = match_tasks(old, new, {}, {})
    for o, n in pairs:
        _cause(compare_task(o, n), tmp_path / "results")
