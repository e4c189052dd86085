"""Inputs the run itself writes into (issue 10, shapes 1 and 6): replay reproduces the state
before the run, never what the run left at the original path.

- a folder recorded empty is recreated empty;
- a folder that held only files earlier tasks wrote is derived, not an input;
- a folder that held other files and that the run wrote into comes from its stored copy, or
  the replay refuses naming REPROFLOW_STORE_INPUTS;
- outside the source root, the files the run wrote are taken out of the folder (the replay
  writes them again) when what is left hashes as recorded;
- each task's verdict compares the files that task wrote.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from replay_records import file_ref, sha, task

from reproflow.capture._files import EMPTY_TREE, hash_local
from reproflow.errors import InputChanged
from reproflow.records import DataRef
from reproflow.replay._compare import compare_task
from reproflow.replay._inputs import external_inputs, mark_written, verify_inputs
from reproflow.replay._relocate import Relocation
from reproflow.store import Store


def _dir_ref(path: Path, param: str = "out_dir", stored_blob: str | None = None) -> DataRef:
    ref = hash_local(path)
    ref.param, ref.stored_blob = param, stored_blob
    return ref


def _tar(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                tar.add(p, arcname=p.relative_to(folder).as_posix())
    return buf.getvalue()


def _pipeline(root: Path, *, pre: dict[str, bytes] | None = None, store: Store | None = None) -> tuple[Path, list]:
    """split writes part-0.txt into out_dir, summarize writes summary.json there: recorded as the
    recorder does (the folder an input with its state before each task, each file an output)."""
    out = root / "results"
    out.mkdir(parents=True)
    for name, data in (pre or {}).items():
        (out / name).write_bytes(data)
    blob = store.put_blob(_tar(out)) if store is not None else None
    before_split = _dir_ref(out, stored_blob=blob)
    (out / "part-0.txt").write_text("A")
    split = task("r", 0, "c", name="split", inputs=[before_split], outputs=[file_ref(out / "part-0.txt", "out_dir")])
    before_summary = _dir_ref(out)
    (out / "summary.json").write_text("{}")
    summarize = task("r", 1, "c", name="summarize", inputs=[before_summary],
                     outputs=[file_ref(out / "summary.json", "out_dir")])
    return out, [split, summarize]


def _planned(tasks: list) -> list:
    planned = external_inputs(tasks)
    mark_written(planned, tasks)
    return planned


def test_a_folder_the_run_writes_into_is_planned_once_with_its_writers(tmp_path: Path) -> None:
    """The folder's state before the first task is the input (summarize read it holding only
    split's file: derived); the tasks that wrote into it are named."""
    out, tasks = _pipeline(tmp_path / "repo")
    planned = _planned(tasks)
    assert [(p.uri, p.sha256, p.tasks, p.written_by) for p in planned] == [
        (str(out), EMPTY_TREE, ["split"], ["split", "summarize"])]


def test_a_folder_holding_only_earlier_tasks_files_is_derived(tmp_path: Path) -> None:
    """A folder first read after a task wrote its only file is the run's own product: not an input."""
    out = tmp_path / "results"
    out.mkdir()
    (out / "a.txt").write_text("A")
    writer = task("r", 0, "c", name="write", outputs=[file_ref(out / "a.txt", "return")])
    reader = task("r", 1, "c", name="read", inputs=[_dir_ref(out)])
    assert external_inputs([writer, reader]) == []
    (out / "other.txt").write_text("not the run's")  # a folder with a file from outside stays an input
    reader = task("r", 1, "c", name="read", inputs=[_dir_ref(out)])
    assert [p.uri for p in external_inputs([writer, reader])] == [str(out)]


def test_an_empty_folder_is_left_for_the_run_to_make_in_the_restored_code(
        tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside the source root: recreated empty there, but not before the flow starts (its body
    may ``mkdir()`` it without ``exist_ok``): the recorder makes it when the first task that reads
    it starts, if the flow has not. The user's folder (holding the run's outputs) is neither read
    nor touched."""
    root = tmp_path / "repo"
    out, tasks = _pipeline(root)
    restored = tmp_path / "work" / "source"
    restored.mkdir(parents=True)
    checks = verify_inputs(_planned(tasks), tasks, store, relocation=Relocation(str(root), str(restored)))
    assert [(c.status, c.actual, c.deferred) for c in checks] == [("restored", EMPTY_TREE, True)]
    assert "recreated empty" in (checks[0].note or "") and "split" in (checks[0].note or "")
    assert checks[0].location == str(restored / "results") and not (restored / "results").exists()
    assert sorted(p.name for p in out.iterdir()) == ["part-0.txt", "summary.json"]

    import json

    from reproflow.recorder._plaintask import plain_task
    from reproflow.recorder._runs import REPLAY_MAKE_DIRS_ENV

    @plain_task(store=store.url)
    def count(out_dir: Path) -> int:
        return len(list(out_dir.iterdir()))

    monkeypatch.setenv(REPLAY_MAKE_DIRS_ENV, json.dumps([checks[0].location]))
    assert count(restored / "results") == 0  # made empty just before the task read it
    assert (restored / "results").is_dir()


def test_a_pre_existing_folder_the_run_adds_to_refuses_naming_the_option(tmp_path: Path, store: Store) -> None:
    """No stored copy: the refusal says the run wrote into it and names REPROFLOW_STORE_INPUTS;
    --allow-changed-inputs goes on and the check says it changed."""
    root = tmp_path / "repo"
    out, tasks = _pipeline(root, pre={"config.txt": b"k=1"})
    restored = tmp_path / "work" / "source"
    restored.mkdir(parents=True)
    reloc = Relocation(str(root), str(restored))
    with pytest.raises(InputChanged) as info:
        verify_inputs(_planned(tasks), tasks, store, relocation=reloc)
    msg = str(info.value)
    assert "REPROFLOW_STORE_INPUTS=1" in msg and "written by the run itself" in msg and str(out) in msg
    assert "split, summarize" in msg
    checks = verify_inputs(_planned(tasks), tasks, store, relocation=reloc, allow_changed=True)
    assert checks[0].status == "changed"


def test_a_pre_existing_folder_comes_back_from_its_stored_copy(tmp_path: Path, store: Store) -> None:
    """With a stored copy (REPROFLOW_STORE_INPUTS=1 at record time): restored as it was before the run."""
    root = tmp_path / "repo"
    out, tasks = _pipeline(root, pre={"config.txt": b"k=1"}, store=store)
    restored = tmp_path / "work" / "source"
    restored.mkdir(parents=True)
    checks = verify_inputs(_planned(tasks), tasks, store, relocation=Relocation(str(root), str(restored)))
    assert checks[0].status == "restored"
    assert sorted(p.name for p in (restored / "results").iterdir()) == ["config.txt"]


def test_outside_the_root_the_runs_own_files_are_taken_out(tmp_path: Path, store: Store) -> None:
    """Outside the source root the folder is used in place: the files the run wrote (written
    again by the replay) are removed when what is left hashes as recorded; a file the run did
    not write is never removed, and the replay refuses."""
    out, tasks = _pipeline(tmp_path / "data", pre={"config.txt": b"k=1"})
    restored = tmp_path / "work" / "source"
    restored.mkdir(parents=True)
    reloc = Relocation(str(tmp_path / "repo"), str(restored))
    checks = verify_inputs(_planned(tasks), tasks, store, relocation=reloc, run_tasks=tasks)
    assert checks[0].status == "restored" and checks[0].actual == checks[0].expected
    assert sorted(p.name for p in out.iterdir()) == ["config.txt"]

    (out / "part-0.txt").write_text("A")
    (out / "mine.txt").write_text("the user's")
    with pytest.raises(InputChanged, match="written by the run itself"):
        verify_inputs(_planned(tasks), tasks, store, relocation=reloc, run_tasks=tasks)
    assert sorted(p.name for p in out.iterdir()) == ["config.txt", "mine.txt", "part-0.txt"]


def test_an_empty_folder_outside_the_root_that_is_gone_is_recreated(tmp_path: Path, store: Store) -> None:
    """An empty folder has nothing to lose: missing, it is made again, by the run (the flow body)
    or just before the first task that reads it."""
    out = tmp_path / "scratch"
    out.mkdir()
    tasks = [task("r", 0, "c", name="t", inputs=[_dir_ref(out)])]
    os.rmdir(out)
    checks = verify_inputs(_planned(tasks), tasks, store)
    assert checks[0].status == "restored" and checks[0].deferred and checks[0].location == str(out)
    assert not out.exists()


def _out(path: Path, data: bytes, param: str = "out_dir") -> DataRef:
    return DataRef(uri=str(path), kind="file", sha256=sha(data), size=len(data), param=param)


def test_a_tasks_verdict_compares_the_files_it_wrote(tmp_path: Path) -> None:
    """Per-file outputs of a folder parameter compare one by one; a file another task running at
    the same time wrote (recorded into this task too) compares with what the replay wrote there;
    a changed file differs."""
    d = tmp_path / "results"
    o = task("r", 0, "c", name="part", outputs=[_out(d / "part-0.txt", b"A"), _out(d / "part-1.txt", b"B")])
    n = task("n", 0, "c", name="part", outputs=[_out(d / "part-0.txt", b"A")])
    elsewhere = {str(d / "part-1.txt"): _out(d / "part-1.txt", b"B")}
    assert compare_task(o, n, None, elsewhere).verdict == "reproduced"
    assert compare_task(o, n, None, {}).verdict != "reproduced"
    n2 = task("n", 0, "c", name="part", outputs=[_out(d / "part-0.txt", b"X")])
    assert compare_task(o, n2, None, elsewhere).verdict != "reproduced"


def test_a_folder_filled_by_tasks_running_at_the_same_time_is_derived(tmp_path: Path) -> None:
    """`.map` into one folder: a mapped task may read the folder after a sibling wrote into it;
    a folder holding only files of the tasks that had ended first is derived too."""
    import datetime as dt

    out = tmp_path / "results"
    out.mkdir()
    empty = _dir_ref(out)
    (out / "part-1.txt").write_text("B")
    after_one = _dir_ref(out)
    (out / "part-0.txt").write_text("A")
    w0 = task("r", 0, "c", name="write_part", map_index=0, inputs=[after_one],
              outputs=[file_ref(out / "part-0.txt", "out_dir")])
    w1 = task("r", 1, "c", name="write_part", map_index=1, inputs=[empty],
              outputs=[file_ref(out / "part-1.txt", "out_dir")])
    w1.started_at = w0.started_at - dt.timedelta(milliseconds=1)  # w1 ran beside w0 ...
    w1.ended_at = w0.started_at + dt.timedelta(microseconds=1)  # ... and wrote before w0 read the folder
    planned = external_inputs([w0, w1])
    assert [(p.uri, p.sha256, p.tasks) for p in planned] == [(str(out), EMPTY_TREE, ["write_part"])]


def test_task_replay_makes_the_folders_of_its_recorded_outputs(tmp_path: Path, store: Store) -> None:
    """`replay --task write_upper` skips the flow body that made results/run-1/: the folder of
    each output the task recorded is made (in the restored code) before the task runs."""
    from replay_records import write_run

    from reproflow.replay._execute import write_spec
    from reproflow.replay._plan import prepare

    repo = tmp_path / "repo"
    out = DataRef(uri=str(repo / "results" / "run-1" / "upper.txt"), kind="file", sha256=sha(b"X"), param="dest")
    tasks = [dict(name="count", tid="t-count"),
             dict(name="write_upper", tid="t-write", parameters={"n": 1}, outputs=[out])]
    run_id = write_run(store, tasks=tasks, source_files={"flow.py": b"x = 1\n"}, source_root=str(repo))
    prepared = prepare(store, run_id, in_place=True, task="write_upper")
    restored = tmp_path / "work" / "source"
    restored.mkdir(parents=True)
    write_spec(prepared, store, restored, tmp_path / "work")
    assert (restored / "results" / "run-1").is_dir()
    assert not (restored / "results" / "run-1" / "upper.txt").exists() and not repo.exists()


def test_a_file_updated_in_place_outside_the_root_comes_back_from_its_copy(tmp_path: Path, store: Store) -> None:
    """A file the run rewrote (read, then updated by the task) with a stored copy: restored over
    what the run left there; a file someone else changed since is never overwritten."""
    counter = tmp_path / "scratch" / "count.txt"
    counter.parent.mkdir()
    counter.write_text("1")
    before = file_ref(counter, "path", store.put_blob_file(counter))
    counter.write_text("2")
    bump = task("r", 0, "c", name="bump", inputs=[before], outputs=[file_ref(counter, "path")])
    checks = verify_inputs(_planned([bump]), [bump], store, run_tasks=[bump])
    assert checks[0].status == "restored" and counter.read_text() == "1"
    counter.write_text("edited by hand")
    with pytest.raises(InputChanged, match="written by the run itself.*it was stored, but the file has changed"):
        verify_inputs(_planned([bump]), [bump], store, run_tasks=[bump])
    assert counter.read_text() == "edited by hand"


def test_a_folder_a_sibling_was_still_writing_into_is_derived(tmp_path: Path) -> None:
    """`.map` into one folder, whatever the order the siblings ended in: a mapped task may hash
    the folder while a sibling's file is there but still empty (open, not yet written), or
    before a sibling that ends first has written. The names the folder held decide: each one a
    file the run wrote, so the folder is derived (it did not depend on which task ended first)."""
    import datetime as dt

    out = tmp_path / "results"
    out.mkdir()
    (out / "part-1.txt").write_text("")  # w1 has opened its file, not yet written it
    while_writing = _dir_ref(out)
    assert while_writing.entries == ["part-1.txt"]
    (out / "part-1.txt").unlink()
    (out / "part-0.txt").write_text("A")
    w1_view = _dir_ref(out)  # w1 hashed the folder after w0 had written
    (out / "part-1.txt").write_text("B")
    w0 = task("r", 0, "c", name="write_part", map_index=0, inputs=[while_writing],
              outputs=[file_ref(out / "part-0.txt", "out_dir")])
    w1 = task("r", 1, "c", name="write_part", map_index=1, inputs=[w1_view],
              outputs=[file_ref(out / "part-1.txt", "out_dir")])
    w1.started_at, w1.ended_at = w0.started_at, w0.ended_at + dt.timedelta(seconds=1)  # w1 ended last
    assert external_inputs([w0, w1]) == []
    # an old record (no names) with the same state: no combination of final hashes matches, so
    # it is kept as an input (a refusal later), never guessed into "derived"
    while_writing.entries = None
    w1_view.entries = None
    assert [p.sha256 for p in external_inputs([w0, w1])] == [while_writing.sha256]


def test_a_folder_holding_a_file_nobody_wrote_is_an_input(tmp_path: Path) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / "given.txt").write_text("from outside")
    ref = _dir_ref(out)
    (out / "part-0.txt").write_text("A")
    w0 = task("r", 0, "c", name="write_part", map_index=0, inputs=[ref], outputs=[file_ref(out / "part-0.txt", "out_dir")])
    assert [p.uri for p in external_inputs([w0])] == [str(out)]


def test_an_input_the_run_left_as_it_was_is_not_written_by_it(tmp_path: Path) -> None:
    """A make-style task that finds its output there already (``if dst.exists(): return dst``)
    reads it and returns it: the file is an input and, returned, an output, with the same bytes.
    The run left its original path holding the state it started from, so the plan takes it from
    there; it said "the replay cannot run" (written by the run itself), and then ran it anyway.
    An output at that path with other bytes still marks it written."""
    dst = tmp_path / "work" / "one.tok"
    dst.parent.mkdir()
    dst.write_text("a\nb\n")
    kept = task("r", 0, "c", name="tokenize", inputs=[file_ref(dst, "dst")], outputs=[file_ref(dst, "return")])
    assert [(p.uri, p.written_by) for p in _planned([kept])] == [(str(dst), [])]
    rewritten = task("r", 0, "c", name="tokenize", inputs=[file_ref(dst, "dst")],
                     outputs=[DataRef(uri=str(dst), kind="file", sha256=sha(b"other"), param="return")])
    assert [(p.uri, p.written_by) for p in _planned([rewritten])] == [(str(dst), ["tokenize"])]
