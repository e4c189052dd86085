"""Writers the audit hook on ``open`` cannot see (issue 10): a subprocess, a C library writing by
itself. Tasks that run at the same time and fill one folder each see the others' files change; a
file whose writer is not known may be half written, so a task never records it as its own final
output by mistake: it is the output of the task whose subprocess named it, or (its writer
unknown while a task beside it ran a subprocess) recorded without a hash, with the reason, and
the replay calls the task "unverified" rather than compare a half-written snapshot.

Runs as plain Python in threads (the same recorder as under Prefect); every step is ordered by
files and events, so nothing depends on timing."""

from __future__ import annotations

import contextvars
import hashlib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import reproflow
from reproflow import repro_task
from reproflow.capture import _reads
from reproflow.store import Store

#: A child that writes its file in three steps, waiting for a go file between them:
#: argv: the file (or the folder and a key), the folder of flag files.
_SLOW_WRITER = """
import sys, time
from pathlib import Path
args = sys.argv[1:]
target = Path(args[0]) if len(args) == 2 else Path(args[0]) / ("part-" + args[1] + ".bin")
flags = Path(args[-1])
def wait(name):
    for _ in range(3000):
        if (flags / name).exists():
            return
        time.sleep(0.01)
    raise SystemExit("no " + name)
with open(target, "wb") as fh:
    fh.write(b"A1"); fh.flush()
    (flags / "written1").touch()
    wait("go1")
    fh.write(b"A2"); fh.flush()
    (flags / "written2").touch()
    wait("go2")
    fh.write(b"A3")
"""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wait_for(path: Path) -> None:
    for _ in range(3000):
        if path.exists():
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} never appeared")


@repro_task
def run_writer(out_dir: Path, argv: list[str]) -> None:
    subprocess.run([sys.executable, "-c", _SLOW_WRITER, *argv], check=True)


_b_started, _b_go = threading.Event(), threading.Event()


@repro_task
def write_b(out_dir: Path) -> None:
    _b_started.set()
    assert _b_go.wait(30)
    (out_dir / "part-b.bin").write_bytes(b"B")


def _beside_a_slow_writer(tmp_path: Path, argv_of: Callable[[Path, Path], list[str]],
                          start_a: Callable[[Path, Path], None] | None = None) -> tuple[Path, Path]:
    """Task A (its child writing part-a.bin in three steps) and task B in two threads: B starts
    after the child wrote its first step and ends after its second, before its third."""
    out, flags = tmp_path / "results", tmp_path / "flags"
    out.mkdir()
    flags.mkdir()
    _b_started.clear()
    _b_go.clear()
    run_a = start_a or (lambda o, f: run_writer(o, argv_of(o, f)))
    ta = threading.Thread(target=contextvars.copy_context().run, args=(run_a, out, flags))
    ta.start()
    _wait_for(flags / "written1")
    tb = threading.Thread(target=contextvars.copy_context().run, args=(write_b, out))
    tb.start()
    assert _b_started.wait(30)  # B has hashed its inputs: part-a.bin held A1
    (flags / "go1").touch()
    _wait_for(flags / "written2")  # part-a.bin holds A1A2 now, half written
    _b_go.set()
    tb.join(30)  # B ended while part-a.bin was half written
    (flags / "go2").touch()
    ta.join(30)
    return out, flags


def _outputs(store: Store, run_id: str) -> dict[str, list[tuple[str, str, str | None]]]:
    return {t.task_name: sorted((Path(r.uri).name, r.kind, r.sha256) for r in t.outputs)
            for t in store.load_run(run_id).final_tasks()}


def test_a_file_a_sibling_subprocess_names_is_that_tasks_never_this_ones(store: Store, tmp_path: Path) -> None:
    """The child is given the file's path: it is task A's output (complete: A waited for its
    child), and B, which saw it change while half written, leaves it out."""
    with reproflow.record("subprocess names its file") as run:
        _beside_a_slow_writer(tmp_path, lambda out, flags: [str(out / "part-a.bin"), str(flags)])
    got = _outputs(store, run.run_id)
    assert got["write_b"] == [("part-b.bin", "file", _sha(b"B"))]
    assert got["run_writer"] == [("part-a.bin", "file", _sha(b"A1A2A3"))]


def test_a_file_whose_writer_is_unknown_beside_a_subprocess_is_recorded_without_a_hash(store: Store, tmp_path: Path) -> None:
    """The child makes the file's name itself (given the folder and a key): nothing says which
    task wrote part-a.bin. B, which saw it change while task A ran a subprocess beside it, records
    it without a hash and with the reason (never the half-written A1A2); A, beside which no other
    task ran a subprocess, records it as its own, complete."""
    with reproflow.record("subprocess makes its file's name") as run:
        _beside_a_slow_writer(tmp_path, lambda out, flags: [str(out), "a", str(flags)])
    tasks = {t.task_name: t for t in store.load_run(run.run_id).final_tasks()}
    b_out = {Path(r.uri).name: r for r in tasks["write_b"].outputs}
    assert set(b_out) == {"part-a.bin", "part-b.bin"}
    assert b_out["part-b.bin"].sha256 == _sha(b"B")
    assert (b_out["part-a.bin"].kind, b_out["part-a.bin"].sha256) == ("unhashed", None)
    assert "run_writer" in (b_out["part-a.bin"].reason or "") and "subprocess" in (b_out["part-a.bin"].reason or "")
    assert _outputs(store, run.run_id)["run_writer"] == [("part-a.bin", "file", _sha(b"A1A2A3"))]


@repro_task
def write_db(out_dir: Path, flags: Path) -> None:
    con = sqlite3.connect(out_dir / "part-a.db")  # sqlite writes the file itself, in C
    con.execute("create table t (x)")
    con.commit()
    (flags / "written1").touch()
    _wait_for(flags / "go1")
    con.execute("insert into t values (1)")
    con.commit()
    (flags / "written2").touch()
    _wait_for(flags / "go2")
    con.execute("insert into t values (2)")
    con.commit()
    con.close()


def test_a_sqlite_database_a_sibling_writes_is_that_tasks(store: Store, tmp_path: Path) -> None:
    """sqlite3 writes its database (and its journal) from C, unseen by the hook on open; the
    connection names it: it is the connecting task's output, never B's."""
    with reproflow.record("sqlite beside") as run:
        _beside_a_slow_writer(tmp_path, lambda o, f: [], start_a=write_db)
    got = _outputs(store, run.run_id)
    assert got["write_b"] == [("part-b.bin", "file", _sha(b"B"))]
    (t,) = [t for t in store.load_run(run.run_id).final_tasks() if t.task_name == "write_db"]
    assert [(Path(r.uri).name, r.kind) for r in t.outputs if r.param == "out_dir"] == [("part-a.db", "file")]


@repro_task
def write_with_libc(out_dir: Path, flags: Path) -> None:
    """Writes part-a.bin with the C library's stdio, as a C extension would: no Python open."""
    import ctypes

    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fwrite.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
    libc.fflush.argtypes = libc.fclose.argtypes = [ctypes.c_void_p]
    fh = libc.fopen(str(out_dir / "part-a.bin").encode(), b"wb")
    for step, data in enumerate((b"A1", b"A2", b"A3"), 1):
        libc.fwrite(data, 1, len(data), fh)
        libc.fflush(fh)
        if step < 3:
            (flags / f"written{step}").touch()
            _wait_for(flags / f"go{step}")
    libc.fclose(fh)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="open files are read from /proc (Linux)")
def test_a_file_a_c_library_beside_still_holds_open_is_recorded_without_a_hash(store: Store, tmp_path: Path) -> None:
    """A C library writing by itself (no Python open, no subprocess, nothing names the file):
    B saw part-a.bin change, and it was still open for writing in this process when B ended, so
    B records it without a hash (it recorded the half-written A1A2 before); A, which closed it,
    records it, complete."""
    with reproflow.record("libc beside") as run:
        _beside_a_slow_writer(tmp_path, lambda o, f: [], start_a=write_with_libc)
    tasks = {t.task_name: t for t in store.load_run(run.run_id).final_tasks()}
    b_out = {Path(r.uri).name: r for r in tasks["write_b"].outputs}
    assert (b_out["part-a.bin"].kind, b_out["part-a.bin"].sha256) == ("unhashed", None)
    assert "still open for writing" in (b_out["part-a.bin"].reason or "")
    assert b_out["part-b.bin"].sha256 == _sha(b"B")
    a_out = [(Path(r.uri).name, r.kind, r.sha256) for r in tasks["write_with_libc"].outputs if r.param == "out_dir"]
    assert a_out == [("part-a.bin", "file", _sha(b"A1A2A3"))]


@repro_task
def write_one(out_dir: Path) -> None:
    (out_dir / "one.txt").write_text("one")


def test_a_file_that_changes_while_it_is_hashed_is_recorded_without_a_hash(store: Store, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Still being written when the task ended (by a process the hook cannot see): its stat
    changed between hashing and the check after it, so no hash of a passing state is kept."""
    from reproflow.capture import _files

    out = tmp_path / "results"
    out.mkdir()
    real = _files._sha256_stat

    def hash_then_append(p: str, st, progress=None):  # type: ignore[no-untyped-def]
        digest = real(p, st, progress)
        if p.endswith("one.txt"):
            time.sleep(0.01)
            with open(p, "a") as fh:  # outside any task: an unseen writer
                fh.write(" more")
        return digest

    monkeypatch.setattr(_files, "_sha256_stat", hash_then_append)
    with reproflow.record("changing") as run:
        write_one(out)
    (t,) = store.load_run(run.run_id).final_tasks()
    (ref,) = t.outputs
    assert (Path(ref.uri).name, ref.kind, ref.sha256) == ("one.txt", "unhashed", None)
    assert "changed while it was hashed" in (ref.reason or "")


def test_the_registry_forgets_subprocess_starters_with_their_neighbours(tmp_path: Path) -> None:
    """A task that started a subprocess is known as one while a task beside it runs, not after.
    A file its arguments name is its own, in flight while it runs, once it changed after the
    subprocess started; a file they name that did not change since (an input) is not claimed."""
    import os

    for left in list(_reads._running.values()):
        _reads.done(left)
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("x")
    os.utime(src, (time.time() - 60, time.time() - 60))
    ra, ta = _reads.start()
    code = "import sys, shutil; shutil.copy(sys.argv[1], sys.argv[2])"
    subprocess.run([sys.executable, "-c", code, "in.csv", str(dst), "tab"], check=True, cwd=tmp_path)
    _reads.stop(ta)
    (tmp_path / "ab").write_text("not named: 'ab' is only a piece of the argument 'tab'")
    assert _reads.claimed_by(str(tmp_path / "ab")) is None
    assert ra.spawned is not None and ra in _reads._spawners
    rb, tb = _reads.start()
    _reads.stop(tb)
    assert _reads.claimed_by(str(dst)) is ra and _reads.in_flight(str(dst))
    assert _reads.claimed_by(str(src)) is None and not _reads.in_flight(str(src))
    assert _reads.unseen_writer_beside(str(dst), rb) is ra and _reads.unseen_writer_beside(str(dst), ra) is None
    _reads.done(ra)
    assert not _reads.in_flight(str(dst)) and _reads.claimed_by(str(dst)) is ra  # done, known to B beside it
    _reads.done(rb)
    assert not _reads._spawners


#: A process this one did not start (as a task beside this one in another Dask worker): ``sh``
#: starts a background writer and exits, so the writer is no child of the test's process. Once
#: ``$2`` exists, it opens ``$1`` for writing, writes half of it, says so in ``$3``, and holds it
#: open until ``$4`` exists (or 60 s pass).
_ORPHAN_WRITER = """
import os, sys, time
def wait(path):
    for _ in range(600):
        if os.path.exists(path):
            return
        time.sleep(0.1)
wait(sys.argv[2])
with open(sys.argv[1], "w") as fh:
    fh.write("half")
    fh.flush()
    open(sys.argv[3], "w").write(str(os.getpid()))
    wait(sys.argv[4])
    fh.write(" and the rest")
"""
_began = threading.Event()
_other_writing = threading.Event()


@repro_task
def write_beside_another_process(out_dir: Path) -> None:
    (out_dir / "mine.txt").write_text("mine")
    _began.set()
    assert _other_writing.wait(60)


def test_a_file_another_process_is_writing_is_not_this_tasks_output(store: Store, tmp_path: Path) -> None:
    """Tasks in other worker processes (Dask, a process pool) write into the same folder, and
    this process's hook cannot see them: a file another process (not one this one started)
    began writing while the task ran, and still holds open for writing when the task ends, is
    that process's, half written, and not among the task's outputs. Before, it was recorded as
    the task's own, half written, and the replay said "differs"."""
    out, start, ready, go = tmp_path / "out", tmp_path / "start", tmp_path / "ready", tmp_path / "go"
    out.mkdir()
    theirs = str(out / "theirs.txt")
    subprocess.run(["sh", "-c", f'"{sys.executable}" -c "$0" "$@" &', _ORPHAN_WRITER, theirs, str(start), str(ready),
                    str(go)], check=True)
    _began.clear()
    _other_writing.clear()
    try:
        with reproflow.record("another process beside") as run:
            task = threading.Thread(target=contextvars.copy_context().run, args=(write_beside_another_process, out))
            task.start()
            assert _began.wait(60)
            start.write_text("")  # the other process starts writing while the task runs
            for _ in range(600):
                if ready.exists() and ready.read_text():
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the other process never started writing")
            assert _reads.open_for_writing([theirs]) == set()  # not this process's, nor a child's
            assert _reads.open_for_writing([theirs], others=True) == {theirs}
            _other_writing.set()
            task.join(60)
    finally:
        go.write_text("")
    record = store.load_run(run.run_id).final_tasks()[0]
    assert [(Path(r.uri).name, r.sha256) for r in record.outputs] == [("mine.txt", _sha(b"mine"))]
