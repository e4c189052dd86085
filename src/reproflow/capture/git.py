"""Capture the git state of the code: commit, branch, remote, tags, dirty flag, diff, untracked.

Uses the git CLI (a handful of calls, ~10-20 ms) rather than GitPython (65 ms just to import).
Every call goes through a *runner* (``(args, cwd) -> GitResult``), so tests can run git with an
empty ``PATH`` or any other world. No git, not a repository, or a repository without commits are
normal cases: ``GitState(available=False, absent_reason=...)``, never an error.

Each call runs with ``-c core.quotepath=off`` (raw UTF-8 paths), ``GIT_OPTIONAL_LOCKS=0`` (status
never takes the index lock another git process may want), ``GIT_TERMINAL_PROMPT=0``, ``LC_ALL=C``,
and without ``GIT_DIR``-style variables that would point it at another repository. Diffs use
``--no-ext-diff --no-textconv --no-color`` so user configuration cannot change the bytes.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from ..values._urls import strip_credentials
from ..records import GitState

#: Variables that would make git look at another repository than the one asked about.
_REPO_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
              "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
              "GIT_EXTERNAL_DIFF", "GIT_PREFIX")
#: A diff larger than this is not kept (the source snapshot still holds the files).
MAX_DIFF_BYTES = 64 << 20
#: At most this many untracked names are listed (the total is kept in ``untracked_total``).
MAX_UNTRACKED = 1000
_TIMEOUT_S = 60.0


class GitResult(NamedTuple):
    """What one git command returned."""

    returncode: int
    stdout: bytes
    stderr: bytes


#: Runs ``git <args>`` in ``cwd``. Raises OSError when git cannot be started at all.
GitRunner = Callable[[Sequence[str], str], GitResult]


def git_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every git call runs with (see the module docstring)."""
    env = dict(os.environ if environ is None else environ)
    for key in _REPO_VARS:
        env.pop(key, None)
    env.update({"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "LANGUAGE": "C"})
    return env


def subprocess_runner(
    args: Sequence[str],
    cwd: str,
    *,
    environ: Mapping[str, str] | None = None,
    timeout: float = _TIMEOUT_S,
) -> GitResult:
    """The default :data:`GitRunner`: the ``git`` found on ``PATH`` (of ``environ``, if given)."""
    proc = subprocess.run(
        ["git", "-c", "core.quotepath=off", "-c", "core.fsmonitor=false", "-c", "color.ui=never", *args],
        cwd=cwd,
        env=git_env(environ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return GitResult(proc.returncode, proc.stdout, proc.stderr)


def capture_git(
    path: str | os.PathLike[str] | None = None,
    *,
    runner: GitRunner = subprocess_runner,
    max_diff_bytes: int = MAX_DIFF_BYTES,
    exclude: Sequence[str] = (),
) -> tuple[GitState, bytes | None]:
    """The git state of the repository holding ``path`` (default: the current directory).

    Args:
        path: a folder or file inside the repository.
        runner: runs git (see :data:`GitRunner`).
        max_diff_bytes: a larger diff is left out (``GitState.diff_omitted`` says so).
        exclude: folders (absolute paths) whose files are never listed as untracked nor
            diffed, wherever they are: reproflow's own store, spool and caches.

    Returns:
        The state, and the raw ``git diff --binary HEAD`` bytes (staged and unstaged changes to
        tracked files) or None when the tracked files are clean. ``diff_blob`` is left for the
        caller to fill once it has stored the (redacted) diff.
    """
    cwd = os.path.abspath(os.fspath(path) if path is not None else os.getcwd())
    if os.path.isfile(cwd):
        cwd = os.path.dirname(cwd)
    if not os.path.isdir(cwd):
        return GitState(absent_reason=f"path not found: {cwd}"), None
    try:
        return _capture(cwd, runner, max_diff_bytes, exclude)
    except FileNotFoundError:
        return GitState(absent_reason="git is not installed (no `git` on PATH)"), None
    except subprocess.TimeoutExpired as exc:
        return GitState(absent_reason=f"git timed out after {exc.timeout:.0f} s"), None
    except OSError as exc:
        return GitState(absent_reason=f"git could not be run: {exc}"), None


class _GitFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _ok(result: GitResult, ok: Sequence[int] = (0,)) -> bytes:
    if result.returncode not in ok:
        raise _GitFailed(_reason(result.stderr))
    return result.stdout


def _reason(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace").strip()
    if "not a git repository" in text:
        return "not a git repository"
    if "dubious ownership" in text:
        return "git refuses this repository (dubious ownership; see `git config safe.directory`)"
    first = text.splitlines()[0] if text else "no message"
    return f"git failed: {first[:200]}"


#: The git calls of one capture. They all work from any folder of the work tree (porcelain
#: status paths and diff paths are relative to the root), so they run at the same time.
_CALLS: dict[str, list[str]] = {
    "root": ["rev-parse", "--show-toplevel"],
    "status": ["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all"],
    "remotes": ["config", "--get-regexp", r"^remote\..*\.url$"],
    "tags": ["tag", "--points-at", "HEAD"],
    # the short stat line, a blank line, then the patch: one process instead of two
    "diff": ["diff", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--shortstat", "--patch", "HEAD"],
}
_STAT = re.compile(rb"^ \d+ files? changed[^\n]*\n\n?")


def exclude_pathspecs(cwd: str, exclude: Sequence[str]) -> list[str]:
    """``:(exclude)`` pathspecs, relative to ``cwd``, for the ``exclude`` folders under it (git
    refuses a pathspec outside the work tree, so folders elsewhere are left to :func:`outside`)."""
    real_cwd = os.path.realpath(cwd)
    specs = []
    for folder in exclude:
        rel = os.path.relpath(os.path.realpath(folder), real_cwd)
        if rel != "." and not rel.startswith(".." + os.sep) and rel != ".." and not os.path.isabs(rel):
            specs.append(f":(exclude){rel.replace(os.sep, '/')}")
    return specs


def outside(root: str, names: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """``names`` (relative to ``root``) that are not inside one of the ``exclude`` folders."""
    if not exclude:
        return list(names)
    real_root = os.path.realpath(root)
    prefixes = []
    for folder in exclude:
        rel = os.path.relpath(os.path.realpath(folder), real_root)
        if rel == ".":
            return []
        if not rel.startswith("..") and not os.path.isabs(rel):
            prefixes.append(rel.replace(os.sep, "/").rstrip("/") + "/")
    return [n for n in names if not any(n.startswith(p) for p in prefixes)]


def _capture(cwd: str, runner: GitRunner, max_diff_bytes: int,
             exclude: Sequence[str] = ()) -> tuple[GitState, bytes | None]:
    specs = exclude_pathspecs(cwd, exclude)
    calls = {k: (v + ["--", *specs] if specs and k in ("status", "diff") else v) for k, v in _CALLS.items()}
    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="reproflow-git") as pool:
        futures = {key: pool.submit(runner, args, cwd) for key, args in calls.items()}
        results = {key: f.result() for key, f in futures.items()}
    try:
        root = _ok(results["root"]).decode("utf-8", "surrogateescape").strip()
        if not root:
            return GitState(absent_reason="not inside a work tree (bare repository?)"), None
        status = _parse_status(_ok(results["status"]))
    except _GitFailed as exc:
        return GitState(absent_reason=exc.reason), None
    untracked = outside(root, status.untracked, exclude)
    state = GitState(
        root=root,
        branch=status.branch,
        untracked=untracked[:MAX_UNTRACKED],
        untracked_total=len(untracked),
    )
    if status.commit is None:
        state.absent_reason = "repository has no commits yet"
        return state, None
    state.available = True
    state.commit = status.commit
    state.dirty = status.dirty
    # remote URL: origin when it exists, else the first remote (config exits 1 when none)
    state.remote_url = _pick_remote(_ok(results["remotes"], (0, 1)).decode("utf-8", "surrogateescape"))
    tags = _ok(results["tags"]).decode("utf-8", "surrogateescape")
    state.tags = sorted(t for t in tags.splitlines() if t)
    if not state.dirty:
        return state, None
    out = _ok(results["diff"])
    m = _STAT.match(out)
    if m:
        state.diff_stat = m.group(0).decode("utf-8", "replace").strip()
        out = out[m.end():]
    if not out:
        return state, None
    if len(out) > max_diff_bytes:
        state.diff_omitted = f"diff is {len(out)} bytes, over the {max_diff_bytes}-byte limit"
        return state, None
    return state, out


class _Status(NamedTuple):
    commit: str | None
    branch: str | None
    dirty: bool
    untracked: list[str]


def _parse_status(raw: bytes) -> _Status:
    """Parse ``git status --porcelain=v2 --branch -z``."""
    commit: str | None = None
    branch: str | None = None
    dirty = False
    untracked: list[str] = []
    entries = raw.split(b"\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if not entry:
            continue
        text = entry.decode("utf-8", "surrogateescape")
        if text.startswith("# branch.oid "):
            oid = text[len("# branch.oid "):]
            commit = None if oid == "(initial)" else oid
        elif text.startswith("# branch.head "):
            head = text[len("# branch.head "):]
            branch = None if head == "(detached)" else head
        elif text.startswith("? "):
            untracked.append(text[2:])
        elif text[:2] in ("1 ", "u "):
            dirty = True
        elif text.startswith("2 "):
            dirty = True
            i += 1  # a rename/copy entry is followed by its original path
    return _Status(commit, branch, dirty, sorted(untracked))


def _pick_remote(config: str) -> str | None:
    urls: dict[str, str] = {}
    for line in config.splitlines():
        key, _, url = line.partition(" ")
        name = key[len("remote."):-len(".url")]
        if name and url and name not in urls:
            urls[name] = url
    if not urls:
        return None
    url = urls.get("origin") or next(iter(urls.values()))
    return strip_credentials(url)


__all__ = [
    "MAX_DIFF_BYTES",
    "GitResult",
    "GitRunner",
    "capture_git",
    "exclude_pathspecs",
    "git_env",
    "outside",
    "subprocess_runner",
]
