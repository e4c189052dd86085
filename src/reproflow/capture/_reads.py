"""Files a running task opened for reading that it never declared: undeclared inputs.

A Python audit hook (:func:`sys.addaudithook`, installed once per process on the first recorded
task) watches the ``open`` event. It attributes each open to the task attempt running in the
current context (a :mod:`contextvars` variable the attempt recorder sets around the body, so tasks
in threads or asyncio tasks are told apart); with no task running it returns after one lookup.
After the task, :func:`undeclared_reads` leaves out what is not data (the interpreter, the standard
library and site-packages, code files, reproflow's own files, the store and reproflow's cache,
``/proc``, ``/sys``, ``/dev``, the machine's configuration and shared files (``/etc``,
``/usr/share``, ...), the home's dotfiles, directories, files the task opened for writing) and what the task
already named, and returns the rest, in the order first read. A file a logging handler opens
for writing (:func:`_by_logger`) is a log, never an output a replay compares.

The same hook tells which task wrote a file. Tasks that run at the same time and write into one
folder (a ``.map`` into ``results/``) each see the others' files appear; a file another watched
attempt of this process opened for writing (or renamed into place, or removed) is that attempt's (:func:`written_by_another`), and
while that attempt runs its content is in flux (:func:`in_flight`): a folder read then leaves it
out, and a task's outputs never include it. The registry keeps a path's writer until no attempt
that ran beside it is still running.

A thread the task starts (a ``threading.Thread``) does not inherit the context variable: the
hook sees the thread start (the ``_thread.start_new_thread`` audit event) and attributes that
thread's opens to the attempt while the attempt runs (:func:`_watching`). Work a task hands to a
thread pool (``ThreadPoolExecutor.submit``, ``map``, asyncio's ``run_in_executor`` and the
libraries on it, aiofiles say) runs as the attempt that submitted it, in whichever worker thread
takes it: a pool made before the task, or shared by tasks running at once, tells their files
apart. So the files a task writes or reads from threads are its outputs and inputs as if it had
opened them itself.

Writers the hook on ``open`` cannot see: a subprocess (``subprocess.Popen``, ``os.system``,
``os.posix_spawn``, ``os.exec*``, ``os.spawn*``, ``os.fork``) and a C library writing by itself.
The hook notes which attempt started a subprocess, when, and the arguments it passed; a file one
of those arguments names (its absolute path, its path from the working folder, or its name) is
that attempt's (:func:`claimed_by`), in flight while it runs. sqlite3 names its database when it
connects (``sqlite3.connect``): a write of that file and its journals. A file changed by a writer
nothing names, while another attempt that ran beside this one started a subprocess, has no known
writer (:func:`unseen_writer_beside`): a task records it without a hash rather than a snapshot
that may be half written.
"""

from __future__ import annotations

import collections
import contextvars
import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import thread as _pool_thread
from typing import Any

from ..store._writer import settle as _settle_store
from ._files import FILE_TIME_SLACK_NS, abspath
from . import _locks
from .. import _forksafe

#: Suffixes of code the source snapshot and the environment capture already cover.
CODE_SUFFIXES = (".py", ".pyc", ".pyi", ".pth", ".so", ".pyd", ".dylib")
_SYSTEM_DIRS = ("/proc/", "/sys/", "/dev/")
#: The machine's configuration and shared system files, read by libraries for themselves
#: (``/etc/mime.types`` by :mod:`mimetypes` under fsspec, ``/etc/ssl`` by every HTTPS client,
#: time zones, locales): never pipeline data.
_MACHINE_DIRS = ("/etc/", "/usr/share/", "/usr/lib/", "/usr/lib64/", "/usr/local/share/", "/usr/local/lib/", "/lib/",
                 "/lib64/", "/var/lib/", "/var/cache/", "/run/")


class Reads:
    """The paths one task attempt opened: for reading, and for writing (in first-seen order)."""

    __slots__ = ("read", "written", "logs", "seq", "ended", "spawned", "argv", "cwds", "name", "threads")

    def __init__(self) -> None:
        self.read: dict[str, None] = {}
        self.written: set[str] = set()
        self.logs: set[str] = set()  #: of those written, the files a logging handler opened (see _by_logger)
        self.seq = 0  #: start order among the attempts of this process
        self.ended: int | None = None  #: the start counter when it ended (None while it runs)
        self.spawned: float | None = None  #: wall time of its first subprocess (or fork), if any
        self.argv: list[str] = []  #: the arguments of its subprocesses (at most _MAX_ARGV)
        self.cwds: set[str] = set()  #: their working folders
        self.name = ""  #: the task's name, for messages
        self.threads: list[threading.Thread] = []  #: the threads it started (see _thread_started)


_current: contextvars.ContextVar[Reads | None] = contextvars.ContextVar("reproflow_reads", default=None)
_installed = False
_install_lock = _forksafe.lock()
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
#: Absolute path -> the attempt that last opened it for writing (see :func:`done`).
_writers: dict[str, Reads] = {}
#: The attempts running now, by start order (``Reads.seq``), and the start orders in a queue
#: whose head, once the ended ones are dropped from it, is the oldest running attempt.
_running: dict[int, Reads] = {}
_order: collections.deque[int] = collections.deque()
#: The attempts that ended while others still ran, in the order they ended (their ``ended``
#: never decreases along it): what :func:`done` forgets once no attempt that ran beside them runs.
_ended: collections.deque[Reads] = collections.deque()
_registry_lock = _forksafe.lock()
#: Attempts that started a subprocess, while an attempt that ran beside them still runs.
_spawners: set[Reads] = set()
_SPAWN_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.spawn", "os.fork",
                           "os.forkpty"})
_MAX_ARGV = 256
#: record locks that a close of another descriptor of the file drops (see ``capture._locks``)
_LOCK_EVENTS = frozenset({"fcntl.lockf", "fcntl.fcntl", "os.lockf"})
_counter = 0
#: What a ThreadPoolExecutor's worker thread runs (a private name: None where it has another)
_pool_worker = getattr(_pool_thread, "_worker", None)
#: A thread a watched attempt started -> that attempt (see :func:`_thread_started`), until it is done.
_thread_owner: dict[threading.Thread, Reads] = {}
#: The audit events of a new thread: ``threading.Thread.start`` raises the first up to Python
#: 3.12, the second from 3.13; the started function is the first argument either way.
_THREAD_EVENTS = frozenset({"_thread.start_new_thread", "_thread.start_joinable_thread"})


def _watching() -> Reads | None:
    """The attempt whose opens these are: the one running in this context, or, in a thread a
    running attempt started (a thread pool inside the task), that attempt."""
    reads = _current.get()
    if reads is not None or not _thread_owner:
        return reads
    owner = _thread_owner.get(threading.current_thread())
    return owner if owner is not None and owner.ended is None else None


def _thread_started(args: tuple) -> None:
    """A thread started while an attempt is watched (in its context, or in a thread it started):
    its opens are that attempt's until the attempt is done. ``threading.Thread.start`` starts
    the thread's bound ``_bootstrap``: its ``__self__`` is the ``Thread`` the new thread's
    ``current_thread()`` returns."""
    try:
        thread = getattr(args[0], "__self__", None)
        if isinstance(thread, threading.Thread):
            _own(thread)
    except Exception:  # noqa: BLE001 - an audit hook must never break what it watches
        return


def _own(thread: threading.Thread) -> None:
    """Note ``thread`` as the watched attempt's, if one is watched here."""
    reads = _watching()
    if reads is None:
        return
    if _pool_worker is not None and getattr(thread, "_target", None) is _pool_worker:
        return  # a pool's worker runs the work of whoever submits it (see _watch_submits)
    reads.threads.append(thread)
    _thread_owner[thread] = reads  # one store: atomic under the GIL


def _run_as(reads: Reads, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run a pool's work item as the attempt that submitted it (while that attempt runs)."""
    if reads.ended is not None:
        return fn(*args, **kwargs)
    token = _current.set(reads)
    try:
        return fn(*args, **kwargs)
    finally:
        _current.reset(token)


def _watch_submits() -> None:
    """``ThreadPoolExecutor.submit`` (which ``map`` and asyncio's ``run_in_executor`` call) is
    wrapped once: work submitted while an attempt is watched runs as that attempt."""
    from concurrent.futures import ThreadPoolExecutor

    submit = ThreadPoolExecutor.submit

    def watched_submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        reads = _watching()
        if reads is not None:
            fn = functools.partial(_run_as, reads, fn)
        return submit(self, fn, *args, **kwargs)

    watched_submit.__wrapped__ = submit  # type: ignore[attr-defined]
    watched_submit.__doc__ = submit.__doc__
    ThreadPoolExecutor.submit = watched_submit  # type: ignore[method-assign]


def _watch_threads() -> None:
    """Work handed to thread pools is watched (:func:`_watch_submits`); and before Python 3.12,
    where no audit event tells a thread start, ``threading.Thread.start`` is wrapped to tell it
    instead (the thread is noted before it runs, as the event would)."""
    _watch_submits()
    if sys.version_info >= (3, 12):
        return
    start = threading.Thread.start

    def watched_start(self: threading.Thread) -> None:
        try:
            _own(self)
        except Exception:  # noqa: BLE001 - watching never breaks the thread's start
            pass
        start(self)

    watched_start.__wrapped__ = start  # type: ignore[attr-defined]
    watched_start.__doc__ = start.__doc__
    threading.Thread.start = watched_start  # type: ignore[method-assign]


def _spawned(event: str, args: tuple) -> None:
    # a run this process ended is complete before a subprocess (``reproflow report``,
    # ``replay``) or an exec'd program could read it
    _settle_store()
    _other(event, args)


def _sqlite_connected(event: str, args: tuple) -> None:
    if args:
        _locks.note_sqlite(args[0])
    _other(event, args)


#: what the hook does on each event other than ``open``: one dict lookup for the ~100 events
#: Prefect's own code raises a task run (``object.__getattr__``, ``builtins.id``...), which
#: match none
_EVENT_HANDLERS: dict[str, Callable[[str, tuple], None]] = {
    **{e: lambda event, args: _thread_started(args) for e in _THREAD_EVENTS},
    **{e: _spawned for e in _SPAWN_EVENTS},
    "sqlite3.connect": _sqlite_connected,
    **{e: _locks.note_lock for e in _LOCK_EVENTS},
    "os.rename": lambda event, args: _renamed(args),
    "os.remove": lambda event, args: _removed(args),
}


def _hook(event: str, args: tuple) -> None:
    if event != "open":
        handler = _EVENT_HANDLERS.get(event)
        if handler is not None:
            handler(event, args)
        return
    reads = _current.get()
    if reads is None:
        if not _thread_owner:
            return
        reads = _watching()
        if reads is None:
            return
    try:
        path, mode, flags = args
        if isinstance(path, int):
            return  # an open file descriptor: the path was seen when it was opened
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        path = os.fspath(path)
        if isinstance(mode, str):
            writes = any(c in mode for c in "wax+")
        else:
            writes = bool((flags or 0) & _WRITE_FLAGS)
        if writes:
            full = abspath(path)
            reads.written.add(full)
            _writers[full] = reads  # one store: atomic under the GIL
            if _by_logger():
                reads.logs.add(full)
        elif path not in reads.read and not path.endswith(CODE_SUFFIXES) and not path.startswith(_SYSTEM_DIRS):
            reads.read[path] = None  # (code and /proc, /sys, /dev are never data: left out here, cheaply)
    except Exception:  # noqa: BLE001 - an audit hook must never break the open it watches
        return


#: Where the code that opens a log file lives: the standard library's ``logging`` (its
#: ``FileHandler`` and the rotating handlers, under ``logging.basicConfig(filename=...)`` too) and
#: loguru's file sink.
_LOGGING_DIR = os.path.dirname(os.path.abspath(logging.__file__)) + os.sep
_LOGURU_PART = os.sep + "loguru" + os.sep


def _by_logger() -> bool:
    """Whether the ``open`` the hook is watching was called by a logging handler: a log file,
    written as the task logs (time stamps, thread names, the order threads logged in), whose bytes
    no replay writes again. Looked at only for an open for writing (a few per task at most): the
    caller is the frame above the hook's."""
    try:
        frame = sys._getframe(2)  # 0: this function, 1: the hook, 2: what called open()
    except ValueError:
        return False
    name = frame.f_code.co_filename
    return name.startswith(_LOGGING_DIR) or _LOGURU_PART in name


def _strings(value: object) -> list[str]:
    """The strings in a subprocess's argument (a string, bytes, a path, or a list of them)."""
    if isinstance(value, (str, bytes, os.PathLike)):
        value = [value]
    out = []
    try:
        for item in value:  # type: ignore[union-attr]
            if isinstance(item, (str, bytes, os.PathLike)):
                text = os.fsdecode(os.fspath(item))
                out.append(text[:4096])
    except TypeError:
        pass
    return out


def _renamed(args: tuple) -> None:
    """``os.rename``/``os.replace`` (and ``shutil.move``) by the watched attempt: a file it wrote,
    moved into place (an atomic write: ``tmp`` written, then replaced onto ``dst``), is written
    at its new name too."""
    reads = _watching()
    if reads is None:
        return
    try:
        src, dst, src_fd, dst_fd = args
        if src_fd not in (None, -1) or dst_fd not in (None, -1) or isinstance(src, int) or isinstance(dst, int):
            return  # relative to a folder's descriptor: its path is not known here
        full = os.path.abspath(os.fsdecode(os.fspath(src)))
        if full in reads.written:
            moved = os.path.abspath(os.fsdecode(os.fspath(dst)))
            reads.written.add(moved)
            _writers[moved] = reads
    except Exception:  # noqa: BLE001 - an audit hook must never break what it watches
        return


def _removed(args: tuple) -> None:
    """``os.remove``/``os.unlink`` (``Path.unlink``) by the watched attempt: removing a file
    writes its path, so a task that removes a file from a folder its siblings also write into is
    the one whose output that removal is (:func:`written_by_another` tells the others)."""
    reads = _watching()
    if reads is None:
        return
    try:
        path, dir_fd = args
        if dir_fd not in (None, -1) or isinstance(path, int):
            return  # relative to a folder's descriptor: its path is not known here
        full = os.path.abspath(os.fsdecode(os.fspath(path)))
        reads.written.add(full)
        _writers[full] = reads
    except Exception:  # noqa: BLE001 - an audit hook must never break what it watches
        return


def _other(event: str, args: tuple) -> None:
    """A subprocess started, or a sqlite database opened, by the watched attempt."""
    reads = _watching()
    if reads is None:
        return
    try:
        if event == "sqlite3.connect":
            db = args[0] if args else None
            if isinstance(db, (str, bytes, os.PathLike)):
                name = os.fsdecode(os.fspath(db))
                if name and name != ":memory:" and not name.startswith("file:"):
                    full = os.path.abspath(name)
                    for side in _locks.SQLITE_SIDE:  # the database and the journals sqlite writes beside it
                        reads.written.add(full + side)
                        _writers[full + side] = reads
            return
        if reads.spawned is None:
            reads.spawned = time.time()
        _spawners.add(reads)  # one add: atomic under the GIL
        if event == "subprocess.Popen":  # (executable, args, cwd, env)
            strings = _strings(args[0]) + _strings(args[1]) if len(args) > 1 else []
            cwd = args[2] if len(args) > 2 else None
            reads.cwds.add(os.path.abspath(os.fsdecode(os.fspath(cwd))) if cwd else os.getcwd())
        elif event == "os.system":  # (command,)
            strings = _strings(args[0]) if args else []
            reads.cwds.add(os.getcwd())
        elif event == "os.spawn":  # (mode, path, args, env)
            strings = _strings(args[1]) + _strings(args[2]) if len(args) > 2 else []
            reads.cwds.add(os.getcwd())
        elif event in ("os.posix_spawn", "os.exec"):  # (path, argv, env)
            strings = _strings(args[0]) + _strings(args[1]) if len(args) > 1 else []
            reads.cwds.add(os.getcwd())
        else:  # a fork: the child can write anything, and names nothing
            strings = []
        room = _MAX_ARGV - len(reads.argv)
        if room > 0:
            reads.argv.extend(strings[:room])
    except Exception:  # noqa: BLE001 - an audit hook must never break what it watches
        return


def start() -> tuple[Reads, contextvars.Token]:
    """Begin watching the opens of the task attempt running in this context."""
    reads = register()
    return reads, _current.set(reads)


def register() -> Reads:
    """A new attempt, known as running, whose opens are attributed to it only where
    :func:`enter` says (a generator task's body runs step by step, between its consumer's
    code: each step is entered and left)."""
    global _installed
    if not _installed:
        with _install_lock:
            if not _installed:
                sys.addaudithook(_hook)
                _locks.note_held_locks()  # a database connected before the hook saw it (at import)
                _watch_threads()
                _installed = True
    global _counter
    reads = Reads()
    with _registry_lock:
        _counter += 1
        reads.seq = _counter
        _running[_counter] = reads
        _order.append(_counter)
    return reads


def enter(reads: Reads) -> contextvars.Token:
    """Attribute the opens of this context to ``reads`` until :func:`stop` with the token."""
    return _current.set(reads)


def stop(token: contextvars.Token) -> None:
    """Stop attributing opens to the attempt (its outputs are collected next, then :func:`done`)."""
    try:
        _current.reset(token)
    except ValueError:  # set in another context (should not happen): stop watching here anyway
        _current.set(None)


def done(reads: Reads) -> None:
    """The attempt has recorded its outputs: its writes stay known while an attempt that ran
    beside it still runs (that one may find them in a folder it reads or writes into).

    Constant time per attempt, however many run at once (a 1,000-task map starts them all
    together): the oldest running attempt is the head of the start-order queue, and what is
    forgotten is popped from the end-order queue, each attempt once."""
    with _registry_lock:
        if _running.pop(reads.seq, None) is None:
            return  # done twice, or not registered here
        if reads.ended is None:
            reads.ended = _counter
        for thread in reads.threads:
            _thread_owner.pop(thread, None)
        reads.threads.clear()
        if not _running:
            _writers.clear()
            _spawners.clear()
            _order.clear()
            _ended.clear()
            return
        _ended.append(reads)
        while _order[0] not in _running:
            _order.popleft()
        oldest = _order[0]
        while _ended and _ended[0].ended < oldest:  # type: ignore[operator]  # ended is set above
            old = _ended.popleft()
            for path in list(old.written):
                if _writers.get(path) is old:
                    del _writers[path]
            _spawners.discard(old)


def _writer(path: str) -> Reads | None:
    full = os.path.abspath(path)
    hit = _writers.get(full)
    if hit is None and os.path.realpath(full) != full:
        hit = _writers.get(os.path.realpath(full))
    return hit


def written_by_another(path: str, reads: Reads | None) -> bool:
    """Whether another watched attempt of this process opened ``path`` for writing (and this
    one did not): a file a task running beside ``reads`` wrote, not ``reads``'s own output."""
    if reads is not None and os.path.abspath(path) in reads.written:
        return False
    writer = _writer(path)
    return writer is not None and writer is not reads


def in_flight(path: str) -> bool:
    """Whether an attempt that is still running opened ``path`` for writing, or started a
    subprocess that may be writing it (one that names it, or, when no writer of it is known,
    any subprocess started before the file last changed): its content may be half written."""
    writer = _writer(path)
    if writer is not None:
        return writer.ended is None
    if not _spawners:
        return False
    claimer = claimed_by(path)
    if claimer is not None:
        return claimer.ended is None
    return any(r.ended is None and _changed_since(path, r.spawned) for r in list(_spawners))


def _changed_since(path: str, when: float | None) -> bool:
    """Whether ``path`` last changed (or was removed) after ``when`` (a little before it: file
    times are coarser than the clock)."""
    if when is None:
        return False
    try:
        return os.stat(path).st_mtime >= when - FILE_TIME_SLACK_NS / 1e9
    except OSError:
        return True


def claimed_by(path: str) -> Reads | None:
    """The attempt whose subprocess's arguments name ``path`` (its absolute path, its path from
    that subprocess's working folder, or its file name with an extension, at least 5
    characters), started before ``path`` last changed, while an attempt that ran beside that one
    runs; None when none or more than one does. (A path named as an input, unchanged since, is
    not claimed.)"""
    if not _spawners:
        return None
    full = os.path.abspath(path)
    base = os.path.basename(full)
    found = None
    for r in list(_spawners):
        if not r.argv or not _changed_since(full, r.spawned):
            continue
        names = {full} | {rel for c in r.cwds if full.startswith(c.rstrip("/") + "/")
                          for rel in [os.path.relpath(full, c)] if len(rel) >= 5}  # "x" is in every argument
        hit = any(n in a for a in r.argv for n in names) or (
            len(base) >= 5 and "." in base and any(base in a for a in r.argv))
        if hit:
            if found is not None and found is not r:
                return None
            found = r
    return found


def _processes() -> list[str]:
    """This process and its child processes (their ``/proc`` folders; Linux only)."""
    out, todo = [], ["self"]
    while todo and len(out) < 256:
        pid = todo.pop()
        out.append(f"/proc/{pid}")
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as fh:
                    todo += fh.read().split()
        except OSError:
            continue
    return out


def _other_processes() -> list[str]:
    """The ``/proc`` folders of every other process this one may look into (those of other
    users cannot be read, and are skipped where they are read), less this process and its
    children (:func:`_processes`): a sibling task's worker process (Dask, a process pool)."""
    mine = {os.path.realpath(p) for p in _processes()}
    try:
        pids = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return []
    return [f"/proc/{pid}" for pid in pids if f"/proc/{pid}" not in mine]


def open_for_writing(paths: Iterable[str], *, others: bool = False) -> set[str]:
    """The ``paths`` that this process or one of its child processes holds open for writing now
    (a C library, or a subprocess, still writing them): read from ``/proc`` (Linux); elsewhere,
    or where ``/proc`` cannot be read, none. ``others``: held open by any other process instead
    (one this process did not start: a task running beside this one in another worker process)."""
    wanted = {os.path.realpath(p): p for p in paths}
    found: set[str] = set()
    if not wanted or not os.path.isdir("/proc/self/fd"):
        return found
    for proc in _other_processes() if others else _processes():
        try:
            fds = os.listdir(f"{proc}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{proc}/fd/{fd}")
            except OSError:
                continue
            if target not in wanted:
                continue
            try:
                with open(f"{proc}/fdinfo/{fd}", encoding="ascii") as fh:
                    flags = next((int(line.split()[1], 8) for line in fh if line.startswith("flags:")), 0)
            except (OSError, ValueError):
                flags = os.O_RDWR  # unknown: take it as written
            if flags & (os.O_WRONLY | os.O_RDWR):
                found.add(wanted[target])
    return found


def unseen_writer_beside(path: str, reads: Reads | None) -> Reads | None:
    """For a file that changed while the attempt ``reads`` ran, with no writer the hook saw and
    no subprocess naming it: another attempt, running beside ``reads`` (at some point), that
    started a subprocess before the file last changed: its process may have written the file,
    maybe not to its end. None when there is none (the file is taken as ``reads``'s own)."""
    if not _spawners:
        return None
    for r in list(_spawners):
        if r is reads:
            continue
        beside = reads is None or r.ended is None or r.ended >= reads.seq
        if beside and _changed_since(path, r.spawned):
            return r
    return None


_ignored_roots: tuple[str, ...] | None = None


def _ignored() -> tuple[str, ...]:
    """Folders whose files are never data: the interpreter, its libraries, reproflow itself."""
    global _ignored_roots
    if _ignored_roots is None:
        import sysconfig

        from ._digest import cache_dir

        roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                 os.path.dirname(os.path.dirname(os.path.abspath(__file__))), str(cache_dir())}  # fmt: skip
        for name in ("stdlib", "platstdlib", "purelib", "platlib"):
            try:
                roots.add(sysconfig.get_path(name))
            except KeyError:
                pass
        import site

        try:
            roots.update(site.getsitepackages())
            roots.add(site.getusersitepackages())
        except AttributeError:  # a virtualenv's old site module
            pass
        roots.update(_MACHINE_DIRS)
        _ignored_roots = tuple(sorted({os.path.realpath(r).rstrip("/") + "/" for r in roots if r}))
    return _ignored_roots


def _home_dotfile(path: str) -> bool:
    """A file under a dot-folder or dotfile of the home (``~/.aws/credentials``, ``~/.netrc``,
    ``~/.config/...``): a tool's own configuration, never data, and often a secret."""
    home = os.path.realpath(os.path.expanduser("~")).rstrip("/")
    return path.startswith(home + "/.")


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == r.rstrip("/") or path.startswith(r) for r in roots)


def undeclared_reads(reads: Reads, known: Iterable[str], *, exclude: Iterable[str] = ()) -> list[str]:
    """The files in ``reads`` that are data the task did not name: absolute real paths.

    ``known`` are the paths the task declared or had inferred (inputs and outputs; a folder
    covers its files); ``exclude`` are further folders to leave out (the store's root)."""
    if not reads.read:
        return []
    known = list(known)
    known_abs = {os.path.abspath(p) for p in known}
    # cheap first pass on the paths as opened: what the task named, wrote, or is code or /proc
    candidates = []
    for raw in reads.read:
        path = os.path.abspath(raw)
        if path in known_abs or path in reads.written or path.startswith(_SYSTEM_DIRS) or path.endswith(CODE_SUFFIXES):
            continue
        candidates.append(path)
    if not candidates:
        return []
    known_roots = tuple({p.rstrip("/") + "/" for p in known_abs} | {os.path.realpath(p).rstrip("/") + "/" for p in known})
    skip = _ignored() + tuple(os.path.realpath(p).rstrip("/") + "/" for p in exclude if p)
    written = {os.path.realpath(p) for p in reads.written}
    out: list[str] = []
    seen: set[str] = set()
    for raw in candidates:
        path = os.path.realpath(raw)
        if path in seen or path in written:
            continue
        seen.add(path)
        if path.startswith(_SYSTEM_DIRS) or path.endswith(CODE_SUFFIXES):
            continue
        if _under(raw, known_roots) or _under(path, skip) or _under(path, known_roots) or _home_dotfile(path):
            continue
        if not os.path.isfile(path):  # a directory, a pipe, or gone by now
            continue
        out.append(path)
    return out


def undeclared_writes(reads: Reads, known: Iterable[str], *, exclude: Iterable[str] = ()) -> list[str]:
    """The files the task only wrote (opened for writing, never for reading) that are data it did
    not name: its undeclared outputs (a report written to a path given as a ``str``), absolute
    paths, sorted. Left out as in :func:`undeclared_reads` (code, the interpreter's and the
    machine's files, the home's dotfiles, ``exclude``), and also: files under a path the task
    named (``known``: a folder it was passed tells its own files apart), files gone by the end (a
    temporary file), files it also read (a counter or cache it updates in place: what it
    held before the task is not known, so it is no output to compare), and log files (opened by a
    logging handler: see :func:`_by_logger`)."""
    if not reads.written:
        return []
    known = list(known)
    known_abs = {os.path.abspath(p) for p in known}
    read = {os.path.abspath(p) for p in reads.read}
    candidates = [p for p in reads.written if p not in known_abs and p not in read and p not in reads.logs
                  and not p.startswith(_SYSTEM_DIRS) and not p.endswith(CODE_SUFFIXES)]
    if not candidates:
        return []
    known_roots = tuple({p.rstrip("/") + "/" for p in known_abs} | {os.path.realpath(p).rstrip("/") + "/" for p in known})
    skip = _ignored() + tuple(os.path.realpath(p).rstrip("/") + "/" for p in exclude if p)
    read_real = {os.path.realpath(p) for p in read}
    out: list[str] = []
    for raw in sorted(candidates):
        path = os.path.realpath(raw)
        if path in read_real or path.startswith(_SYSTEM_DIRS) or path.endswith(CODE_SUFFIXES):
            continue
        if _under(raw, known_roots) or _under(path, known_roots) or _under(path, skip) or _home_dotfile(path):
            continue
        if not os.path.isfile(path) or os.path.islink(raw):
            continue
        out.append(raw)
    return out


__all__ = ["Reads", "claimed_by", "done", "enter", "in_flight", "open_for_writing", "register", "start", "unseen_writer_beside", "stop", "undeclared_reads", "undeclared_writes", "written_by_another"]
