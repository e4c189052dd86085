"""Once-per-process capture: environment, hardware, git and source, stored as one ProcessContext.

:func:`get_context` is what the recording side calls before writing a run or task record: the
first call in a process captures everything and stores it in the store as content-addressed
blobs; every later call for the same store and source root returns the cached result at once.
Each part is also a pure function of its own, taking its world as arguments::

    capture_environment(environ, fingerprint)   -> Environment      (capture/environment.py)
    capture_hardware(nvml=...)                  -> Hardware         (capture/hardware.py)
    capture_git(path, runner=...)               -> (GitState, diff) (capture/git.py)
    snapshot_source(root, git=..., entry_file=...) -> (SourceSnapshot, tar.gz)  (capture/source.py)
    capture_system(paths=...)                   -> SystemLibraries  (capture/system.py)

The system libraries are the one part that can change during a process (numpy imported inside
a task): :func:`context_at_task_end` checks, cheaply, whether the process loaded or unloaded a
shared object since its context was captured, and if so stores a new context whose
``system_blob`` lists them again; the task's record points at that one.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..values._redact import redact_bytes
from ..store._spool import spool_root
from ._secret_files import drop_secret_files
from ..records import Environment, GitState, ProcessContext, SourceSnapshot, SystemLibraries, ThreadpoolInfo
from .environment import capture_environment, environment_identity, local_dir
from .git import GitRunner, capture_git, subprocess_runner
from .hardware import capture_hardware
from .source import extract_source, snapshot_distribution, snapshot_source, store_distribution_snapshot
from . import system as _system
from .. import _forksafe

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store

_lock = _forksafe.lock()
_pid = os.getpid()
#: (store url, resolved root) -> (ProcessContext digest, ProcessContext)
_cache: dict[tuple[str, str], tuple[str, ProcessContext]] = {}
#: (root argument, entry file's folder) -> resolved root, so a cached call runs no git at all
_roots: dict[tuple[str | None, str | None], str] = {}
#: (store url, context digest) -> (loader generation, digest to use now, its context): contexts this
#: process stored, and where a context whose libraries changed since was replaced
_contexts: dict[tuple[str, str], tuple[object, str, ProcessContext]] = {}
#: How many full captures this process ran since the last clear_cache() or fork (tests read it).
capture_count = 0


_prefetch_thread: threading.Thread | None = None


def prefetch() -> None:
    """Start loading what the first capture needs, in a daemon thread; calling again is free.

    Imports detect-secrets (a few hundred ms, mostly ``requests``), psutil and threadpoolctl, and
    starts filling the per-machine CPU cache when it is missing. Call it as early as possible,
    e.g. when a task is decorated: the first :func:`get_context` then skips that cost.
    """
    global _prefetch_thread
    with _lock:
        if _prefetch_thread is not None:
            return
        _prefetch_thread = threading.Thread(target=_prefetch, name="reproflow-prefetch", daemon=True)
    _prefetch_thread.start()


def _prefetch() -> None:
    # Best effort: whatever fails here is done again, and reported, by the capture itself.
    try:
        from ..values._redact import warm_up
        from .hardware import cpu_info

        warm_up(background=False)
        import psutil  # noqa: F401
        import threadpoolctl  # noqa: F401

        cpu_info(refresh=True)
        from .environment import provided_by

        provided_by()  # what a run's end maps its imported modules through
    except Exception as exc:  # noqa: BLE001
        import logging

        logging.getLogger("reproflow").debug("capture prefetch failed: %r", exc)


def clear_cache() -> None:
    """Forget every cached capture of this process (for tests, or after changing the code)."""
    global capture_count
    with _lock:
        _cache.clear()
        _roots.clear()
        _contexts.clear()
        capture_count = 0
    _system.forget()


def _after_fork_in_child() -> None:
    # (the lock is unlocked in the child by _forksafe)
    global _pid, capture_count, _prefetch_thread
    _prefetch_thread = None
    _pid = os.getpid()
    capture_count = 0
    _cache.clear()
    _roots.clear()
    _contexts.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def resolve_root(
    entry_file: str | None = None,
    root: str | None = None,
    *,
    runner: GitRunner = subprocess_runner,
) -> str:
    """The source root: ``root``; else the git work tree holding ``entry_file``'s folder (the
    current directory when there is no entry file); else that folder itself."""
    if root is not None:
        return os.path.abspath(root)
    start = os.path.dirname(os.path.abspath(entry_file)) if entry_file else os.getcwd()
    try:
        result = runner(["rev-parse", "--show-toplevel"], start)
    except OSError:
        return start
    top = result.stdout.decode("utf-8", "surrogateescape").strip()
    return top if result.returncode == 0 and top else start


#: absolute entry file -> its folder (a relative one depends on the working folder: not kept)
_entry_dirs: dict[str, str] = {}


def get_context(
    store: Store,
    *,
    entry_file: str | None = None,
    root: str | None = None,
) -> tuple[str, ProcessContext]:
    """Capture (once per process) and store this process's context; return its blob digest.

    Args:
        store: where the Environment, diff, source archives and the ProcessContext are stored.
        entry_file: the flow's (or script's) file, used to find the source root.
        root: the source root, when the caller knows it (see :func:`resolve_root`).

    Returns:
        ``(digest, context)``: the SHA-256 of the stored ProcessContext blob (what RunRecord and
        TaskRecord point at) and the context itself. Cached per (store URL, source root) for the
        life of the process; thread-safe; a forked child captures again.
    """
    global capture_count
    entry_dir = _entry_dirs.get(entry_file) if entry_file else None
    if entry_file and entry_dir is None:
        entry_dir = os.path.dirname(os.path.abspath(entry_file))
        if os.path.isabs(entry_file):  # once per file: every task run asks
            _entry_dirs[entry_file] = entry_dir
    if entry_dir is not None and root is None and os.getpid() == _pid:  # every task run: dict reads, no lock
        resolved = _roots.get((None, entry_dir))
        hit = _cache.get((store.url, resolved)) if resolved is not None else None
        if hit is not None:
            return hit
    with _lock:
        if os.getpid() != _pid:
            _after_fork_in_child()
        root_key = (root, (entry_dir or os.getcwd()) if root is None else None)
        resolved = _roots.get(root_key)
        if resolved is None:
            resolved = resolve_root(entry_file, root)
            _roots[root_key] = resolved
        key = (store.url, resolved)
        hit = _cache.get(key)
        if hit is not None:
            return hit
        result = _capture(store, resolved, entry_file)
        _cache[key] = result
        capture_count += 1
        return result


def _capture(store: Store, root: str, entry_file: str | None) -> tuple[str, ProcessContext]:
    t0 = time.perf_counter()
    # git and the source snapshot spend their time in subprocesses and file I/O: run them beside
    # the environment capture, which is pure Python.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reproflow-capture") as pool:
        code = pool.submit(_capture_code, store, root, entry_file)
        env = capture_environment(fingerprint=store.fingerprint)
        hardware = capture_hardware()
        git, diff, source = code.result()
    if diff is not None:  # after the environment: its secrets are scrubbed from the diff too
        diff, git.diff_excluded = drop_secret_files(diff)
        if diff:
            git.diff_blob = store.put_blob(redact_bytes(diff))
    _snapshot_local_distributions(store, env, source)
    env_blob = store.put_model_blob(env)
    context = ProcessContext(
        environment_blob=env_blob,
        environment_hash=environment_identity(env),
        python_version=env.python.version,
        hardware=hardware,
        git=git,
        source=source,
        pid=os.getpid(),
        hostname=env.platform.hostname or socket.gethostname(),
    )
    gen, libs = _system_now(hardware.threadpools)
    context.system_blob = store.put_model_blob(libs)
    context.capture_ms = round((time.perf_counter() - t0) * 1000, 3)
    digest = store.put_model_blob(context)
    _contexts[(store.url, digest)] = (gen, digest, context)
    return digest, context


def _system_now(pools: list[ThreadpoolInfo] | None = None) -> tuple[object, SystemLibraries]:
    try:
        return _system.current(pools=pools)
    except Exception as exc:  # noqa: BLE001 - recording never breaks the user's task
        return None, SystemLibraries(absent_reason=f"capture failed: {type(exc).__name__}: {exc}"[:500])


def context_at_task_end(store: Store, digest: str) -> str:
    """The context digest a task's record should point at, as the task ends: ``digest`` itself,
    unless this process loaded or unloaded shared libraries since that context was captured;
    then a new context (same environment, hardware, git and source; the libraries and
    threadpoolctl's BLAS/OpenMP as they are now) is stored and later tasks start from it.

    About 1.5 µs when nothing changed (one ``dl_iterate_phdr`` call); a few ms when it did.
    """
    gen = _system.generation()
    entry = _contexts.get((store.url, digest))  # a dict read, atomic: no lock when nothing changed
    if entry is not None and gen is not None and gen == entry[0]:
        return entry[1]
    with _lock:
        entry = _contexts.get((store.url, digest))
        if entry is None:
            return digest  # not a context of this process (a forked child, cleared caches)
        seen, now, context = entry
        if gen is not None and gen == seen:
            return now
        new_gen, libs = _system_now()
        blob = store.put_model_blob(libs)
        if blob == context.system_blob:
            _contexts[(store.url, digest)] = (new_gen, now, context)
            return now
        hardware = context.hardware.model_copy(update={"threadpools": list(libs.threadpools)})
        updated = context.model_copy(update={"system_blob": blob, "hardware": hardware})
        new_digest = store.put_model_blob(updated)
        _contexts[(store.url, digest)] = _contexts[(store.url, now)] = _contexts[(store.url, new_digest)] = (
            new_gen, new_digest, updated)
        for key, (cached_digest, _) in list(_cache.items()):
            if cached_digest in (digest, now):
                _cache[key] = (new_digest, updated)
        return new_digest


def own_folders(store: Store, environ: Mapping[str, str] | None = None) -> list[str]:
    """reproflow's own folders on this machine, never captured as the user's code: the store
    (when local), the spool and the cache (hashes, replay environments)."""
    env = os.environ if environ is None else environ
    cache = env.get("REPROFLOW_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "reproflow")
    folders = [cache, os.fspath(spool_root(env))]
    if store.is_local:
        folders.append(store.root)
    return [os.path.abspath(f) for f in folders]


def _capture_code(store: Store, root: str, entry_file: str | None) -> tuple[GitState, bytes | None, SourceSnapshot]:
    own = own_folders(store)
    git, diff = capture_git(root, exclude=own)
    source, _ = snapshot_source(root, git=git, entry_file=entry_file, exclude=own, sink=store)
    return git, diff, source


def _snapshot_local_distributions(store: Store, env: Environment, source: SourceSnapshot) -> None:
    """Store a source archive for each distribution installed from a local folder.

    A project installed editable from the source root itself reuses the source snapshot.
    """
    done: dict[str, str] = {}
    if source.blob is not None and source.kind == "git" and source.root:
        done[os.path.realpath(source.root)] = source.blob
    for dist in env.distributions:
        folder = local_dir(dist.direct_url)
        if folder is None:
            continue
        folder = os.path.realpath(folder)
        if folder not in done:
            done[folder] = store_distribution_snapshot(folder, store)
        dist.source_blob = done[folder]


__all__ = [
    "capture_count",
    "capture_environment",
    "capture_git",
    "capture_hardware",
    "clear_cache",
    "context_at_task_end",
    "environment_identity",
    "extract_source",
    "get_context",
    "prefetch",
    "resolve_root",
    "snapshot_distribution",
    "snapshot_source",
]
