"""Files this process holds POSIX record locks on (sqlite's databases, ``fcntl.lockf``): recording
a task reads them without dropping the locks (``capture._locks``).

POSIX drops every record lock a process holds on a file when any descriptor of that file in the
process closes. A task that leaves its sqlite connection open (a connection pool, a module-level
connection) had its locks freed by the recorder hashing the database (open, read, close): another
process could then take the database for unused and checkpoint it, delete its WAL under this
one, or truncate its WAL index under this process's mapping (SIGBUS). Each test asks another
process whether it could take the lock that this one must still hold."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import reproflow
from reproflow import repro_task
from reproflow.store import Store

#: argv: a file, then byte offsets; prints "held" or "free" for each: could this process lock it?
_PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
out = []
for start in map(int, sys.argv[2:]):
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, start)
    except OSError:
        out.append("held")
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, start)
        out.append("free")
print(" ".join(out))
"""
#: sqlite's unix locks: a reader's shared lock on the database (its SHARED range starts 2 past
#: the PENDING byte at 1 GiB), held in WAL mode while the connection is open; the WAL index's
#: "dead man switch", held shared by every open connection
_DB_SHARED, _SHM_DMS = 0x40000002, 128


def _lock_state(path: Path, offset: int) -> str:
    return subprocess.run([sys.executable, "-c", _PROBE, str(path), str(offset)], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def _assert_held(db: Path) -> None:
    assert _lock_state(db, _DB_SHARED) == "held", "the database's shared lock was dropped"
    assert _lock_state(Path(f"{db}-shm"), _SHM_DMS) == "held", "the WAL index's lock was dropped"


@pytest.fixture
def kept_open() -> Iterator[list[sqlite3.Connection]]:
    """Connections a task leaves open (as a pool would), closed when the test ends."""
    conns: list[sqlite3.Connection] = []
    yield conns
    for conn in conns:
        conn.close()


_open: list[sqlite3.Connection] = []


def _append(db: str | Path, value: int) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
    conn.execute("INSERT INTO t VALUES (?)", (value,))
    conn.commit()
    _open.append(conn)


@repro_task(outputs=["db"])
def append_declared(db: Path, value: int) -> None:
    _append(db, value)


@repro_task
def append_undeclared(folder: str, value: int) -> int:
    _append(os.path.join(folder, "results.db"), value)  # a path the task makes: an undeclared output
    return value


@repro_task(inputs=["db"], store_inputs=True)
def count_rows(db: Path) -> int:
    return len(_open[-1].execute("SELECT x FROM t").fetchall())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _task(store: Store, run_id: str, name: str):  # type: ignore[no-untyped-def]
    (task,) = [t for t in store.load_run(run_id).final_tasks() if t.task_name == name]
    return task


def test_a_database_the_task_leaves_open_keeps_its_locks(store: Store, tmp_path: Path, kept_open: list[sqlite3.Connection]) -> None:
    """Declared output, undeclared output, and an input copied into the store: each is hashed
    (and copied) through the descriptor sqlite holds, and the connection's locks survive."""
    _open.clear()
    db = tmp_path / "data.db"
    with reproflow.record("sqlite left open") as run:
        append_declared(db, 1)
        kept_open.extend(_open)
        _assert_held(db)
        assert count_rows(db) == 1
        kept_open.extend(_open)
        _assert_held(db)
        undeclared = tmp_path / "undeclared"
        undeclared.mkdir()
        append_undeclared(str(undeclared), 2)
        kept_open.extend(_open)
        _assert_held(undeclared / "results.db")
    out = {Path(r.uri).name: r for r in _task(store, run.run_id, "append_declared").outputs}
    assert out["data.db"].sha256 == _sha(db)
    (inp,) = [r for r in _task(store, run.run_id, "count_rows").inputs if r.param == "db"]
    assert inp.sha256 == _sha(db) and inp.stored_blob == inp.sha256
    assert store.get_blob(inp.stored_blob) == db.read_bytes()
    got = {Path(r.uri).name: r for r in _task(store, run.run_id, "append_undeclared").outputs}
    # sqlite's side files are no data to compare: the index is left out, the log (random salts,
    # different in every run) recorded without a hash, saying why and what to do
    assert sorted(got) == ["results.db", "results.db-wal"]
    assert got["results.db"].sha256 == _sha(undeclared / "results.db")
    wal = got["results.db-wal"]
    assert (wal.kind, wal.sha256) == ("unhashed", None)
    assert "write-ahead log of results.db" in (wal.reason or "") and "close the connection" in (wal.reason or "")


@repro_task
def append_and_checkpoint(folder: str, value: int) -> None:
    _append(os.path.join(folder, "results.db"), value)
    _open[-1].execute("PRAGMA wal_checkpoint(TRUNCATE)")


def test_a_checkpointed_database_is_compared_by_its_file(store: Store, tmp_path: Path, kept_open: list[sqlite3.Connection]) -> None:
    """Checkpointed before the task returns (its log emptied), a database left open is its file
    alone: the empty log and the index are no outputs."""
    _open.clear()
    with reproflow.record("checkpointed") as run:
        append_and_checkpoint(str(tmp_path), 3)
        kept_open.extend(_open)
    got = {Path(r.uri).name: r for r in _task(store, run.run_id, "append_and_checkpoint").outputs}
    assert sorted(got) == ["results.db"] and got["results.db"].sha256 == _sha(tmp_path / "results.db")


@repro_task
def size(data: Path) -> int:
    return data.stat().st_size  # (its own open and close of the file would drop the lock: POSIX)


def test_a_file_the_process_locked_keeps_its_lock(store: Store, tmp_path: Path) -> None:
    """A file locked with ``fcntl.lockf`` (a lock file that is also data) and then hashed as a
    task's input: the lock is still this process's afterwards."""
    data = tmp_path / "numbers.txt"
    data.write_text("1 2 3\n")
    with reproflow.record("locked input") as run, open(data, "r+b") as fh:
        fcntl.lockf(fh, fcntl.LOCK_EX, 1, 0)
        assert size(data) == 6
        assert _lock_state(data, 0) == "held", "hashing the input dropped the process's lock"
        fcntl.lockf(fh, fcntl.LOCK_UN, 1, 0)
    (ref,) = [r for r in _task(store, run.run_id, "size").inputs if r.param == "data"]
    assert ref.sha256 == _sha(data)


def test_locks_taken_before_the_hook_are_read_from_the_system(tmp_path: Path) -> None:
    """A lock taken before the audit hook was installed (a module's connection at import) is
    found in ``/proc/locks`` when it is."""
    from reproflow.capture import _locks

    if not os.path.exists("/proc/locks"):
        pytest.skip("no /proc/locks on this system")
    data = tmp_path / "locked.bin"
    data.write_bytes(b"x" * 10)
    with open(data, "r+b") as fh:
        fcntl.lockf(fh, fcntl.LOCK_EX, 1, 0)
        _locks.forget()  # as if taken before the hook was there to see it
        st = os.stat(data)
        assert not _locks.maybe_locked(str(data), st)
        _locks.note_held_locks()
        assert _locks.maybe_locked(str(data), st)
        assert _locks.held_descriptor(st) == fh.fileno()
