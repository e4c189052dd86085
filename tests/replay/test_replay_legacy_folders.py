"""Records made before reproflow recorded a folder's new files one by one (schema 1.0, before
the per-file folder outputs): a task that wrote into a folder it was passed recorded the whole
folder as its output. The fixture holds the two task records such a version wrote for the
pipeline below (``split`` then ``summarize`` writing into ``results/``), its paths under
``/RECORDED``. Today's replay records the files each task wrote; the old whole-folder output
cannot be compared with them, so the task is "unverified" with the reason, never a false
"differs" (what the replay said before) nor "reproduced"."""

from __future__ import annotations

import json
from pathlib import Path

import reproflow
from reproflow import repro_task
from reproflow.records import TaskRecord
from reproflow.replay._compare import compare_task, match_tasks
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
    out.mkdir()
    with reproflow.record("the replay") as run:
        summarize(split(src, out), out)
    return sorted(store.load_run(run.run_id).final_tasks(), key=lambda t: t.started_at)


def test_an_old_whole_folder_output_is_unverified_with_the_reason(store: Store, tmp_path: Path) -> None:
    old = _old_records(tmp_path)
    assert {t.schema_version for t in old} == {"1.0"}
    assert all(r.kind == "directory" for t in old for r in t.outputs)  # the old form
    new = _replayed(store, tmp_path, "a\nbb\n")
    pairs, extra = match_tasks(old, new, {}, {})
    assert not extra
    verdicts = {o.task_name: compare_task(o, n) for o, n in pairs}
    for name, v in verdicts.items():
        assert v.verdict == "unverified", (name, v)
        assert v.result_match is True  # what could be compared was
        assert any(f"folder {tmp_path / 'results'} was recorded whole" in c for c in v.causes), v.causes


def test_an_old_record_still_differs_where_something_compared_differs(store: Store, tmp_path: Path) -> None:
    """The old folder output is left out of the comparison, nothing else: a different return
    value is still "differs"."""
    old = _old_records(tmp_path)
    new = _replayed(store, tmp_path, "a\nbb\nccc\n")  # three lines: split returns 3, not 2
    pairs, _ = match_tasks(old, new, {}, {})
    verdicts = {o.task_name: compare_task(o, n).verdict for o, n in pairs}
    assert verdicts == {"split": "differs", "summarize": "differs"}
