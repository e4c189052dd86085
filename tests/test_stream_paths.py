"""Paths that are streams, not files: a named pipe, a character device (``/dev/zero``,
``/dev/stdin``, a terminal), a socket. Hashing one reads it: a pipe's data were taken before the
task could read them (the task then waited forever for its writer), ``/dev/zero`` was read
without end. They are recorded without a hash, with the reason, and never read."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import reproflow
from reproflow import repro_task
from reproflow.capture._files import hash_local, sha256_file
from reproflow.store import Store


@repro_task
def head(src: Path, n: int) -> bytes:
    with open(src, "rb") as fh:
        return fh.read(n)


def _task_refs(store: Store, run_id: str) -> tuple[list, list]:  # type: ignore[type-arg]
    (task,) = store.load_run(run_id).final_tasks()
    return task.inputs, task.outputs


@pytest.mark.timeout(120)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_reaches_the_task_whole(store: Store, tmp_path: Path) -> None:
    """The pipe's ten bytes reach the task (the recorder read none), and the pipe is an input
    without a hash, saying why; a pipe written is no output either."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def writer() -> None:
        with open(fifo, "wb") as fh:
            fh.write(b"0123456789")

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    with reproflow.record("pipe") as run:
        assert head(fifo, 100) == b"0123456789"
    thread.join(10)
    inputs, outputs = _task_refs(store, run.run_id)
    (ref,) = [r for r in inputs if r.param == "src"]
    assert (ref.kind, ref.sha256) == ("unhashed", None)
    assert (ref.reason or "").startswith("a named pipe (FIFO): a stream")
    assert outputs == []


@pytest.mark.timeout(120)
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_an_endless_device_is_not_read(store: Store) -> None:
    with reproflow.record("zero") as run:
        assert head(Path("/dev/zero"), 4) == b"\0\0\0\0"
    inputs, _ = _task_refs(store, run.run_id)
    (ref,) = [r for r in inputs if r.param == "src"]
    assert ref.kind == "unhashed" and (ref.reason or "").startswith("a character device")
    assert hash_local("/dev/zero").kind == "unhashed"
    with pytest.raises(OSError, match="a character device"):
        sha256_file("/dev/zero")


@repro_task
def probe(p: Path) -> bool:
    try:
        return p.exists()
    except OSError:
        return False


@repro_task(outputs=["p"])
def probe_declared(p: Path) -> bool:
    return False


def test_paths_where_no_file_can_be(store: Store, tmp_path: Path) -> None:
    """A parent that is a file (ENOTDIR), a name too long (ENAMETOOLONG), a symbolic link loop
    (ELOOP), as a folder's entry too: ``stat`` raises, not FileNotFoundError, and the task once
    failed on it before its body ran. Each is missing, as no file can be there."""
    (tmp_path / "file.txt").write_text("x")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("a")
    os.symlink(data / "cycle", data / "cycle")
    paths = [tmp_path / "file.txt" / "sub", tmp_path / ("a" * 300), tmp_path / "loop", tmp_path / "loop" / "x"]
    with reproflow.record("no file can be there") as run:
        for p in paths:
            assert probe(p) is False
            assert probe_declared(p) is False
        assert probe(data) is True  # a folder holding a link loop: hashed without it
    tasks = store.load_run(run.run_id).final_tasks()
    assert all(t.state == "COMPLETED" for t in tasks) and len(tasks) == 2 * len(paths) + 1
    declared = [r for t in tasks if t.task_name == "probe_declared" for r in t.outputs]
    assert [r.kind for r in declared] == ["missing"] * len(paths)
    (folder,) = [r for t in tasks if t.task_name == "probe" for r in t.inputs if r.uri == str(data)]
    assert folder.kind == "directory" and folder.entries == ["a.txt"]
