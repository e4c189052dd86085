"""A folder passed to tasks that write into it (issue 10, shape 1): what each task records.

The folder is an inferred input (its state before the task, as a tree hash), and the files a
task writes into it, or removes from it, are that task's own outputs, one each: never the whole
folder, which other tasks fill too. Runs as plain Python (the same recorder as under Prefect).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import reproflow
from reproflow import repro_task
from reproflow.capture._files import EMPTY_TREE, hash_local
from reproflow.store import Store


@repro_task
def split(src: Path, out_dir: Path) -> int:
    lines = src.read_text().splitlines()
    for i, line in enumerate(lines):
        (out_dir / f"part-{i}.txt").write_text(line.upper())
    return len(lines)


@repro_task
def summarize(n: int, out_dir: Path) -> None:
    parts = sorted(out_dir.glob("part-*.txt"))
    (out_dir / "summary.json").write_text(json.dumps({p.name: len(p.read_text()) for p in parts}))
    (out_dir / "part-0.txt").unlink()


@repro_task
def listing(out_dir: Path) -> list[Path]:
    (out_dir / "extra.txt").write_text("x")
    return sorted(out_dir.iterdir())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_each_task_records_the_files_it_wrote_into_a_folder(store: Store, tmp_path: Path) -> None:
    """The folder is an input with its state before each task (empty for the first); each
    task's outputs are the files it wrote (and a removed file as missing), not the folder."""
    src = tmp_path / "lines.txt"
    src.write_text("a\nbb\n")
    out = tmp_path / "results"
    out.mkdir()
    with reproflow.record("folders") as run:
        summarize(split(src, out), out)
    tasks = {t.task_name: t for t in store.load_run(run.run_id).final_tasks()}
    first, second = tasks["split"], tasks["summarize"]
    folder_in = next(r for r in first.inputs if r.param == "out_dir")
    assert (folder_in.kind, folder_in.sha256) == ("directory", EMPTY_TREE)
    assert [(Path(r.uri).name, r.param, r.sha256) for r in first.outputs] == [
        ("part-0.txt", "out_dir", _sha(b"A")), ("part-1.txt", "out_dir", _sha(b"BB"))]
    assert not any(r.uri == str(out) for r in first.outputs + second.outputs)
    folder_in = next(r for r in second.inputs if r.param == "out_dir")
    assert folder_in.n_files == 2  # what split left in it
    got = {Path(r.uri).name: (r.kind, r.param) for r in second.outputs}
    assert got == {"summary.json": ("file", "out_dir"), "part-0.txt": ("missing", "out_dir")}


def test_a_returned_file_in_the_folder_is_recorded_once(store: Store, tmp_path: Path) -> None:
    """A file the task wrote into the folder and also returned is one output (the return value's)."""
    out = tmp_path / "results"
    out.mkdir()
    (out / "old.txt").write_text("before")
    with reproflow.record("folders") as run:
        listing(out)
    (t,) = store.load_run(run.run_id).final_tasks()
    assert sorted((Path(r.uri).name, r.param) for r in t.outputs) == [("extra.txt", "return"), ("old.txt", "return")]
    assert [r.sha256 for r in t.inputs] == [_tree_of({"old.txt": b"before"}, tmp_path)]


def _tree_of(files: dict[str, bytes], tmp_path: Path) -> str | None:
    d = tmp_path / "expected-tree"
    d.mkdir()
    for name, data in files.items():
        (d / name).write_bytes(data)
    return hash_local(d).sha256


_a_open, _b_open = threading.Event(), threading.Event()


@repro_task
def write_a(out_dir: Path) -> None:
    with open(out_dir / "part-a.txt", "w") as fh:  # created empty; its content comes later
        _a_open.set()
        assert _b_open.wait(30)
        fh.write("A")


@repro_task
def write_b(out_dir: Path, a_done: threading.Event) -> None:
    with open(out_dir / "part-b.txt", "w") as fh:
        _b_open.set()
        assert a_done.wait(30)
        fh.write("B")


def test_tasks_writing_into_one_folder_at_once_record_only_their_own_files(store: Store, tmp_path: Path) -> None:
    """Two tasks fill one folder at the same time (a ``.map`` into ``results/``): each sees the
    other's file appear, empty while it is being written. Each task's outputs are the files it
    wrote, never the other's half-written one (a flaky "differs" at replay when the empty
    snapshot was compared), and a folder read while a sibling writes into it leaves the
    sibling's half-written file out. Deterministic: the events order every step."""
    out = tmp_path / "results"
    out.mkdir()
    a_done = threading.Event()
    _a_open.clear()
    _b_open.clear()
    with reproflow.record("one folder at once") as run:
        ta = threading.Thread(target=contextvars.copy_context().run, args=(write_a, out))
        ta.start()
        assert _a_open.wait(30)  # part-a.txt exists, empty, while write_b starts and reads the folder
        tb = threading.Thread(target=contextvars.copy_context().run, args=(write_b, out, a_done))
        tb.start()
        ta.join(30)  # write_a ended while part-b.txt was still empty
        a_done.set()
        tb.join(30)
    tasks = {t.task_name: t for t in store.load_run(run.run_id).final_tasks()}
    assert [(Path(r.uri).name, r.sha256) for r in tasks["write_a"].outputs] == [("part-a.txt", _sha(b"A"))]
    assert [(Path(r.uri).name, r.sha256) for r in tasks["write_b"].outputs] == [("part-b.txt", _sha(b"B"))]
    folder_in = next(r for r in tasks["write_b"].inputs if r.param == "out_dir")
    assert (folder_in.sha256, folder_in.entries) == (EMPTY_TREE, [])


@repro_task
async def awrite_a(out_dir: Path, a_open: asyncio.Event, b_open: asyncio.Event) -> None:
    with open(out_dir / "part-a.txt", "w") as fh:
        a_open.set()
        await b_open.wait()
        fh.write("A")


@repro_task
async def awrite_b(out_dir: Path, b_open: asyncio.Event, a_done: asyncio.Event) -> None:
    with open(out_dir / "part-b.txt", "w") as fh:
        b_open.set()
        await a_done.wait()
        fh.write("B")


def test_async_tasks_writing_into_one_folder_at_once_record_only_their_own_files(store: Store, tmp_path: Path) -> None:
    """The same with async tasks on one event loop: their inputs are hashed in a worker thread,
    but their bodies' opens are watched in their own asyncio task, so each write is told apart."""
    out = tmp_path / "results"
    out.mkdir()

    async def both() -> None:
        a_open, b_open, a_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
        ta = asyncio.ensure_future(awrite_a(out, a_open, b_open))
        await asyncio.wait_for(a_open.wait(), 30)
        tb = asyncio.ensure_future(awrite_b(out, b_open, a_done))
        await asyncio.wait_for(ta, 30)
        a_done.set()
        await asyncio.wait_for(tb, 30)

    with reproflow.record("async, one folder at once") as run:
        asyncio.run(both())
    tasks = {t.task_name: t for t in store.load_run(run.run_id).final_tasks()}
    assert [(Path(r.uri).name, r.sha256) for r in tasks["awrite_a"].outputs] == [("part-a.txt", _sha(b"A"))]
    assert [(Path(r.uri).name, r.sha256) for r in tasks["awrite_b"].outputs] == [("part-b.txt", _sha(b"B"))]
    folder_in = next(r for r in tasks["awrite_b"].inputs if r.param == "out_dir")
    assert (folder_in.sha256, folder_in.entries) == (EMPTY_TREE, [])


def _at_once(fns: tuple[Any, ...], *args: Any) -> None:
    """Call each of ``fns(*args)`` in a thread of its own, in a copy of this context (as
    Prefect's thread pool runs tasks), and wait for them all."""
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(fn, *args)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


_c_started = threading.Event()
_d_started = threading.Event()


@repro_task
def make_and_write_c(out_dir: Path, c_wrote: threading.Event) -> None:
    _c_started.set()
    assert _d_started.wait(30)  # both started while out_dir did not exist
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "c.txt").write_text("C")
    c_wrote.set()


@repro_task
def make_and_write_d(out_dir: Path, c_wrote: threading.Event) -> None:
    _d_started.set()
    assert c_wrote.wait(30)  # c.txt is in the folder when this task writes and ends
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sub").mkdir(exist_ok=True)
    (out_dir / "sub" / "d.txt").write_text("D")


@repro_task
def make_empty(out_dir: Path) -> None:
    out_dir.mkdir()


def test_tasks_that_make_the_folder_they_write_into_record_only_their_own_files(store: Store, tmp_path: Path) -> None:
    """The folder does not exist when the tasks start: each makes it (``mkdir(exist_ok=True)``)
    and writes its file. Each task's outputs are the files it wrote, never the whole folder with
    the other's file in it (a replay's timing lets other files in: a false "differs"); a task
    that makes a folder and leaves it empty records that folder."""
    out = tmp_path / "results"
    c_wrote = threading.Event()
    _c_started.clear()
    _d_started.clear()
    with reproflow.record("made by the tasks") as run:
        _at_once((make_and_write_c, make_and_write_d), out, c_wrote)
        make_empty(tmp_path / "empty")
    tasks = {t.task_name: t for t in store.load_run(run.run_id).final_tasks()}
    assert [(Path(r.uri).relative_to(out).as_posix(), r.kind, r.sha256) for r in tasks["make_and_write_c"].outputs] == [
        ("c.txt", "file", _sha(b"C"))]
    assert [(Path(r.uri).relative_to(out).as_posix(), r.kind, r.sha256) for r in tasks["make_and_write_d"].outputs] == [
        ("sub/d.txt", "file", _sha(b"D"))]
    assert not [r for t in tasks.values() for r in t.inputs if r.param == "out_dir" and r.kind != "missing"]
    empty = tasks["make_empty"].outputs
    assert [(Path(r.uri).name, r.kind, r.sha256, r.param) for r in empty] == [("empty", "directory", EMPTY_TREE, "out_dir")]


@repro_task
def append_line(log: Path, line: str) -> None:
    with open(log, "a") as fh:
        fh.write(line + "\n")


def test_an_inferred_input_file_changed_in_place_is_also_an_output(store: Store, tmp_path: Path) -> None:
    """A file passed as a path and rewritten by the task is an input (its bytes before, from the
    stat it was hashed by) and an output (its bytes after); one the task left alone is only an
    input."""
    log = tmp_path / "log.txt"
    log.write_text("first\n")
    with reproflow.record("in-place") as run:
        append_line(log, "second")
        byte_len(log)
    tasks = {t.task_name: t for t in store.load_run(run.run_id).final_tasks()}
    appended, read = tasks["append_line"], tasks["byte_len"]
    assert [(r.param, r.sha256) for r in appended.inputs] == [("log", _sha(b"first\n"))]
    assert [(r.param, r.sha256, r.declared) for r in appended.outputs] == [("log", _sha(b"first\nsecond\n"), False)]
    assert [(r.param, r.sha256) for r in read.inputs] == [("path", _sha(b"first\nsecond\n"))]
    assert read.outputs == []


@repro_task
def byte_len(path: Path) -> int:
    return len(path.read_bytes())


_e_wrote = threading.Event()
_f_began = threading.Event()


@repro_task
def put_e(prefix: str, f_wrote: threading.Event) -> None:
    import fsspec

    assert _f_began.wait(30)  # both began while nothing was under the prefix
    with fsspec.open(f"{prefix}/e.txt", "wt") as fh:
        fh.write("E")
    _e_wrote.set()
    assert f_wrote.wait(30)


@repro_task
def put_f(prefix: str, f_wrote: threading.Event) -> None:
    import fsspec

    _f_began.set()
    assert _e_wrote.wait(30)
    with fsspec.open(f"{prefix}/sub/f.txt", "wt") as fh:
        fh.write("F")
    f_wrote.set()


@repro_task
def replace_e(prefix: str) -> None:
    import fsspec

    with fsspec.open(f"{prefix}/e.txt", "wt") as fh:
        fh.write("E2")
    fsspec.filesystem("memory").rm(prefix.split("://", 1)[1] + "/sub/f.txt")


def test_objects_written_under_a_remote_prefix_are_outputs_one_by_one(store: Store) -> None:
    """Tasks writing objects under a prefix (a str URL parameter, nothing there before the run)
    at the same time: each records the objects written under it, one output each, whole (an
    object store shows an object only once it is complete): never the prefix as one tree hash,
    which held as many of the other's objects as the timing let in (a false "differs" at
    replay). A later task replacing one object and removing another records just those."""
    import fsspec

    prefix = f"memory://bucket-{uuid.uuid4().hex[:8]}/out"
    f_wrote = threading.Event()
    _e_wrote.clear()
    _f_began.clear()
    with reproflow.record("objects under a prefix") as run:
        _at_once((put_e, put_f), prefix, f_wrote)
        replace_e(prefix)
    tasks = {t.task_name: t for t in store.load_run(run.run_id).final_tasks()}
    e, f = f"{prefix}/e.txt", f"{prefix}/sub/f.txt"
    assert [(r.uri, r.kind, r.sha256) for r in tasks["put_e"].outputs] == [
        (e, "object", _sha(b"E")), (f, "object", _sha(b"F"))]
    assert [(r.uri, r.kind, r.sha256) for r in tasks["put_f"].outputs] == [
        (e, "object", _sha(b"E")), (f, "object", _sha(b"F"))]
    assert [(r.uri, r.kind, r.sha256) for r in tasks["replace_e"].outputs] == [
        (e, "object", _sha(b"E2")), (f, "missing", None)]
    assert not [r for r in tasks["replace_e"].inputs if r.param == "prefix"]  # replaced by the task
    fsspec.filesystem("memory").rm(prefix.split("://", 1)[1], recursive=True)


@repro_task(outputs=["prefix"])
def put_declared(prefix: str, name: str) -> None:
    import fsspec

    with fsspec.open(f"{prefix}/{name}", "wt") as fh:
        fh.write(name.upper())


def test_a_declared_output_prefix_with_objects_of_an_earlier_run_has_only_the_new_objects(store: Store) -> None:
    """A declared output prefix that holds an object of an earlier run before the task: the
    task's outputs are the objects it wrote, not that one too (a replay, which starts without
    it, would call the task's output missing). A declared output an earlier run of the task
    found an object at is not listed again before the later runs."""
    import fsspec

    prefix = f"memory://bucket-{uuid.uuid4().hex[:8]}/out"
    with fsspec.open(f"{prefix}/old.txt", "wt") as fh:
        fh.write("from an earlier run")
    with reproflow.record("declared prefix") as run:
        put_declared(prefix, "new.txt")
    (task,) = store.load_run(run.run_id).final_tasks()
    assert [(r.uri, r.kind, r.sha256, r.declared) for r in task.outputs] == [
        (f"{prefix}/new.txt", "object", _sha(b"NEW.TXT"), True)]
    fsspec.filesystem("memory").rm(prefix.split("://", 1)[1], recursive=True)


_g_wrote = threading.Event()
_h_began = threading.Event()
_h_ended = threading.Event()


@repro_task(outputs=["out_dir"])
def declared_g(out_dir: Path, make: bool) -> None:
    assert _h_began.wait(30)  # declared_h took the folder's state before this task changes it
    if make:
        out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "g.txt").write_text("G")
    (out_dir / "stale.txt").unlink(missing_ok=True)
    _g_wrote.set()
    assert _h_ended.wait(30)  # h.txt is complete in the folder when this task ends


@repro_task(outputs=["out_dir"])
def declared_h(out_dir: Path, make: bool) -> None:
    _h_began.set()
    assert _g_wrote.wait(30)
    if make:
        out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "h.txt").write_text("H")


def _g_then_h(out: Path, make: bool) -> None:
    def h() -> None:
        try:
            declared_h(out, make)
        finally:
            _h_ended.set()

    _g_wrote.clear()
    _h_began.clear()
    _h_ended.clear()
    _at_once((lambda: declared_g(out, make), h))


def test_tasks_writing_into_one_declared_output_folder_record_only_their_own_files(store: Store, tmp_path: Path) -> None:
    """``@repro_task(outputs=["out_dir"])`` mapped over items, each writing its file into the one
    folder: each task's outputs are the files it wrote, declared, never the whole folder with the
    files its siblings had finished by then (a replay's timing lets other ones in: a false
    "differs"). The same whether the flow made the folder or the tasks make it themselves, and a
    file a task removes from it is an output of that task (as missing), not of the one beside it
    that saw it go."""
    made_by_flow, made_by_tasks = tmp_path / "results", tmp_path / "made"
    made_by_flow.mkdir()
    (made_by_flow / "stale.txt").write_text("from an earlier run")
    with reproflow.record("declared folder") as run:
        _g_then_h(made_by_flow, False)
        _g_then_h(made_by_tasks, True)
    records = store.load_run(run.run_id).final_tasks()
    got = sorted((t.task_name, [(Path(r.uri).relative_to(tmp_path).as_posix(), r.kind, r.sha256, r.param, r.declared)
                                for r in t.outputs]) for t in records)
    assert got == [
        ("declared_g", [("made/g.txt", "file", _sha(b"G"), "out_dir", True)]),
        ("declared_g", [("results/g.txt", "file", _sha(b"G"), "out_dir", True),
                        ("results/stale.txt", "missing", None, "out_dir", True)]),
        ("declared_h", [("made/h.txt", "file", _sha(b"H"), "out_dir", True)]),
        ("declared_h", [("results/h.txt", "file", _sha(b"H"), "out_dir", True)]),
    ]
    assert not [r for t in records for r in t.inputs if r.param == "out_dir"]  # declared outputs are no inputs


@repro_task(outputs=["dst"])
def write_dst(dst: Path, seen: list[str]) -> None:
    seen.append("body")
    dst.write_text("x")


def test_a_declared_output_found_to_be_a_file_is_not_looked_up_again(store: Store, tmp_path: Path,
                                                                     monkeypatch: Any) -> None:
    """A declared output's state before the task is looked up (is it a folder?) until a run of
    the task finds a file there; later runs in the process skip that lookup (issue 16: looking up
    a name not yet created in a folder other tasks are writing into is costly)."""
    from reproflow.recorder import _attempt

    seen: list[str] = []
    real = _attempt.stat_signature
    monkeypatch.setattr(_attempt, "stat_signature", lambda uri: seen.append(f"stat {Path(uri).name}") or real(uri))
    with reproflow.record("declared file"):
        write_dst(tmp_path / "a.txt", seen)
        write_dst(tmp_path / "b.txt", seen)
    # before a.txt's body: the lookup; after each body: the stat that tells a file still being
    # written when it was hashed; before b.txt's body: nothing
    assert seen == ["stat a.txt", "body", "stat a.txt", "body", "stat b.txt"]


@repro_task(outputs=["dst"])
def save(dst: Path, name: str | None = None) -> None:
    (dst / name if name else dst).write_text("new")


def test_a_declared_output_that_was_a_file_and_is_a_folder_now_has_only_the_new_files(store: Store,
                                                                                      tmp_path: Path) -> None:
    """A declared output a run of the task found a file at is not looked up before the later
    runs; one of them is given a folder, there before it with a file of an earlier run in it,
    and writes one file into it. Its outputs are the file it wrote: not the old file too (a
    replay, which starts without it, would call the task's output missing)."""
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "old.txt").write_text("from an earlier run")
    with reproflow.record("file, then folder") as run:
        save(tmp_path / "one.txt")
        save(folder, "new.txt")
    records = sorted(store.load_run(run.run_id).final_tasks(), key=lambda t: t.started_at)
    assert [[(Path(r.uri).relative_to(tmp_path).as_posix(), r.kind, r.declared) for r in t.outputs] for t in records] == [
        [("one.txt", "file", True)],
        [("folder/new.txt", "file", True)],
    ]


@repro_task
def unpack(archive: Path, out_dir: Path) -> None:
    import tarfile

    with tarfile.open(archive) as tar:
        tar.extractall(out_dir, filter="data")


def test_a_file_a_task_rewrites_with_its_old_time_stamp_is_its_output(store: Store, tmp_path: Path) -> None:
    """tarfile's extractall (and shutil.copy2) rewrite a file in place and set its mtime back:
    rewritten with the same size, its size, mtime and inode are the same as before. Its ctime
    is not: the file is the task's output, with its new bytes."""
    import io
    import os
    import tarfile

    out = tmp_path / "data"
    out.mkdir()
    (out / "table.csv").write_bytes(b"a,1\n")
    os.utime(out / "table.csv", (1_577_836_800, 1_577_836_800))
    archive = tmp_path / "fresh.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("table.csv")
        info.size, info.mtime = 4, 1_577_836_800  # the same size and time stamp, other bytes
        tar.addfile(info, io.BytesIO(b"b,2\n"))
    with reproflow.record("unpack") as run:
        unpack(archive, out)
    (task,) = store.load_run(run.run_id).final_tasks()
    assert [(Path(r.uri).name, r.param, r.sha256) for r in task.outputs] == [("table.csv", "out_dir", _sha(b"b,2\n"))]
    assert os.stat(out / "table.csv").st_mtime == 1_577_836_800


@repro_task
def read_under(base: Path) -> str:
    text = (base / "data" / "in.txt").read_text()
    (base / "out").mkdir(exist_ok=True)
    (base / "out" / "upper.txt").write_text(text.upper())
    return text


def test_a_folder_too_broad_to_hash_is_recorded_by_the_files_read_and_written_in_it(
        tmp_path: Path, monkeypatch: Any) -> None:
    """A base folder that is a git checkout's root, or holds the store the run writes into, is
    recorded unhashed with the reason (its repository, environments and the records being
    written are no value a replay could match, and cost seconds to hash), and the file the task
    read in it and the file it wrote are its inputs and outputs one by one. A plain folder is
    still one value, hashed whole."""
    checkout, holder, plain = tmp_path / "checkout", tmp_path / "holder", tmp_path / "plain"
    for base in (checkout, holder, plain):
        (base / "data").mkdir(parents=True)
        (base / "data" / "in.txt").write_text("abc")
    (checkout / ".git").mkdir()
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    monkeypatch.setenv("REPROFLOW_STORE", str(holder / ".reproflow"))
    store = Store(holder / ".reproflow")
    with reproflow.record("broad") as run:
        for base in (checkout, holder, plain):
            read_under(base)
    tasks = sorted(store.load_run(run.run_id).final_tasks(), key=lambda t: t.started_at)
    for task, why in zip(tasks, ("a git checkout's root folder", "it holds the reproflow store")):
        (folder,) = [r for r in task.inputs if r.param == "base"]
        assert folder.kind == "unhashed" and why in (folder.reason or ""), folder
        base = Path(folder.uri)
        assert [(r.uri, r.sha256, r.undeclared) for r in task.inputs if r.param is None] == [
            (str(base / "data" / "in.txt"), _sha(b"abc"), True)]
        assert [(r.uri, r.sha256) for r in task.outputs] == [(str(base / "out" / "upper.txt"), _sha(b"ABC"))]
    (folder,) = [r for r in tasks[2].inputs if r.param == "base"]
    assert (folder.kind, folder.n_files) == ("directory", 1)  # data/in.txt, before the task
    assert [Path(r.uri).name for r in tasks[2].outputs] == ["upper.txt"]


def test_a_folder_holding_the_checkout_is_too_broad_too(tmp_path: Path) -> None:
    """A folder above the project's checkout (``HERE.parent``, the store elsewhere): recorded
    unhashed with the reason, the file read in it one by one, as for the checkout's root."""
    import os
    import subprocess
    import sys

    outer = tmp_path / "outer"
    repo = outer / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "in.txt").write_text("abc")
    (repo / "flow.py").write_text(
        "from pathlib import Path\n"
        "import reproflow\n"
        "from reproflow import repro_task\n\n"
        "@repro_task\n"
        "def read_above(top: Path) -> str:\n"
        "    return (top / 'repo' / 'data' / 'in.txt').read_text()\n\n"
        "with reproflow.record('above'):\n"
        "    read_above(Path(__file__).resolve().parent.parent)\n")
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "flow"], cwd=repo, check=True)
    store_dir = tmp_path / "store"
    env = {**os.environ, "REPROFLOW_STORE": str(store_dir)}
    proc = subprocess.run([sys.executable, "flow.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    store = Store(store_dir)
    (task,) = store.load_run(store.list_runs()[0].run_id).final_tasks()
    (folder,) = [r for r in task.inputs if r.param == "top"]
    assert folder.kind == "unhashed" and "it holds the project's checkout" in (folder.reason or ""), folder
    assert [(Path(r.uri).name, r.sha256) for r in task.inputs if r.param is None] == [("in.txt", _sha(b"abc"))]
