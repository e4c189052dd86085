"""Files this process may hold POSIX record locks on, and reading them without dropping those.

POSIX drops every ``fcntl`` record lock a process holds on a file when *any* descriptor of that
file in the process is closed, whoever opened it. sqlite locks its database and WAL index so
(a connection in WAL mode holds a shared lock on the database file and on its ``-shm`` index as
long as it is open; any connection, on the database during a transaction), as does
``fcntl.lockf``. Hashing such a file the usual way (open, read, close) while the user's
connection is open freed its locks: another process could then take the database as unused,
checkpoint it and delete the WAL and index under this one (writes lost), or truncate the index
under its mapping (SIGBUS).

The audit hook (``capture._reads``) notes the databases ``sqlite3.connect`` names and the files
locked through ``fcntl.lockf``/``fcntl.fcntl``; :func:`maybe_locked` is a set lookup (nothing
when neither happened in the process). For such a file, :func:`held_descriptor` finds a
descriptor this process already has open on it, which is read with ``os.pread`` and never
closed; with none open, the process holds no lock on it and it is opened as any other file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no POSIX record locks, nothing to keep
    fcntl = None  # type: ignore[assignment]

#: absolute paths of the sqlite databases this process connected to, and of their journals
_sqlite_paths: set[str] = set()
#: (st_dev, st_ino) of the files this process locked with fcntl.lockf, os.lockf or fcntl.fcntl(F_SETLK[W])
_locked_files: set[tuple[int, int]] = set()
#: the files sqlite keeps beside a database: the database itself and its journals
SQLITE_SIDE = ("", "-journal", "-wal", "-shm")
_SETLK = frozenset(c for c in (getattr(fcntl, "F_SETLK", None), getattr(fcntl, "F_SETLKW", None)) if c is not None)
#: a descriptor opened only to name a file (Linux): it reads nothing
_O_PATH = getattr(os, "O_PATH", 0)


def note_sqlite(name: Any) -> None:
    """``sqlite3.connect(name)`` happened in this process (its audit event): the database and
    its journals may be locked by it from now on. Names it cannot open by path (``:memory:``,
    a ``file:`` URI's query) are read as sqlite reads them."""
    if not isinstance(name, (str, bytes, os.PathLike)):
        return
    text = os.fsdecode(os.fspath(name))
    if text.startswith("file:"):  # a URI (uri=True): its path, without query or fragment
        text = text[len("file:"):].split("?", 1)[0].split("#", 1)[0]
        if text.startswith("//"):  # file://host/path (sqlite accepts no host or localhost)
            text = text[2 + len(text[2:].split("/", 1)[0]):]
    if not text or text == ":memory:":
        return
    full = os.path.abspath(text)
    _sqlite_paths.update(full + side for side in SQLITE_SIDE)
    real = os.path.realpath(full)
    if real != full:
        _sqlite_paths.update(real + side for side in SQLITE_SIDE)


def note_lock(event: str, args: tuple[Any, ...]) -> None:
    """An ``fcntl.lockf``, ``os.lockf`` or ``fcntl.fcntl`` audit event: a record lock taken on a descriptor
    is remembered by the file's identity (an unlock too: cheaper than telling them apart, and a
    file once locked may be again)."""
    try:
        fd = args[0]
        if event == "fcntl.fcntl" and args[1] not in _SETLK:
            return
        if not isinstance(fd, int):
            fd = fd.fileno()
        st = os.fstat(fd)
    except (OSError, AttributeError, IndexError, TypeError, ValueError):
        return
    _locked_files.add((st.st_dev, st.st_ino))


def note_held_locks(locks_path: str = "/proc/locks") -> None:
    """The files this process holds POSIX record locks on now (Linux's ``/proc/locks``): those
    taken before the audit hook was installed (a connection a module opened when imported)."""
    try:
        with open(locks_path, encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return
    pid = str(os.getpid())
    for line in lines:
        parts = line.split()
        # "1: POSIX  ADVISORY  READ 4711 fd:01:1234 128 128"; a waiter's line has "->" after the number
        if len(parts) < 6 or parts[1] != "POSIX" or parts[4] != pid:
            continue
        try:
            major, minor, inode = parts[5].split(":")
            _locked_files.add((os.makedev(int(major, 16), int(minor, 16)), int(inode)))
        except ValueError:
            continue


def maybe_locked(path: str, st: os.stat_result) -> bool:
    """Whether this process may hold a record lock on the file at ``path`` (absolute) whose
    stat is ``st``: a database it connected to (or a journal of one), or a file it locked."""
    return fcntl is not None and bool((_sqlite_paths and path in _sqlite_paths)
                                      or (_locked_files and (st.st_dev, st.st_ino) in _locked_files))


def held_descriptor(st: os.stat_result) -> int | None:
    """A descriptor this process has open on the file whose stat is ``st`` (same device and
    inode), readable; None when it has none."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        names = [str(fd) for fd in range(min(os.sysconf("SC_OPEN_MAX"), 4096))]
    for name in names:
        try:
            fd = int(name)
            other = os.fstat(fd)
        except (OSError, ValueError):
            continue
        if other.st_ino == st.st_ino and other.st_dev == st.st_dev:
            try:
                flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            except OSError:
                continue
            if flags & os.O_ACCMODE != os.O_WRONLY and not flags & _O_PATH:
                return fd
    return None


def read_held(fd: int, chunk: int, update: Any) -> None:
    """Feed the file open as ``fd`` to ``update`` from its first byte to its end, with
    ``os.pread`` (the offset its owner reads and writes at stays where it is); the descriptor
    stays open."""
    offset = 0
    while data := os.pread(fd, chunk, offset):
        update(data)
        offset += len(data)


@contextlib.contextmanager
def safe_to_open(path: str) -> Iterator[str]:
    """``path``, or where this process may hold a record lock on that file and has it open, a
    temporary copy read through that descriptor: a path the caller may open and close (to copy
    the file into a store) without dropping the lock."""
    try:
        st = os.stat(path)
    except OSError:
        yield path
        return
    fd = held_descriptor(st) if maybe_locked(os.path.abspath(path), st) else None
    if fd is None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="reproflow-locked-") as tmp:
        copy = os.path.join(tmp, os.path.basename(path))
        with open(copy, "wb") as out:
            read_held(fd, 1 << 20, out.write)
        yield copy


def forget() -> None:
    """Forget what was noted (tests)."""
    _sqlite_paths.clear()
    _locked_files.clear()


__all__ = ["SQLITE_SIDE", "forget", "held_descriptor", "maybe_locked", "note_held_locks", "note_lock", "note_sqlite", "read_held", "safe_to_open"]
