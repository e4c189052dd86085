"""Restore the recorded code into a work folder, never into the user's own tree.

Two ways, in order of preference:

1. the stored source snapshot (``ProcessContext.source.blob``): a tar.gz of the working tree as
   it was (tracked and untracked-not-ignored files, so the uncommitted diff is already in it),
   extracted through :func:`reproflow.capture.source.extract_source`, which refuses absolute
   paths, ``..`` and links;
2. with no snapshot, the recorded commit from the recorded repository (``git archive``, read
   only: the user's checkout, index and branches are untouched) plus the stored uncommitted diff
   applied with ``git apply`` inside the work folder.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..records import ProcessContext
from ..store import Store
from ..errors import SourceNotAvailable, UnsafeArchive


@dataclass
class RestoredSource:
    root: Path  #: the folder standing in for the recorded source root
    how: str  #: "snapshot" or "git <commit> + diff"


def describe_source(context: ProcessContext, store: Store, *, elsewhere: bool = False) -> tuple[str, list[str]]:
    """How the code will be restored, and the problems that would stop it (for the plan);
    ``elsewhere``: on another machine, where the recorded repository is not."""
    src, git = context.source, context.git
    problems: list[str] = []
    if src.blob:
        if not store.has_blob(src.blob):
            problems.append(f"source snapshot sha256:{src.blob[:12]} is missing from the store")
        how = f"stored {src.kind} snapshot ({src.files} files, {src.bytes} bytes) of {src.root}"
        return how, problems
    if git.available and git.commit:
        how = f"git commit {git.commit[:12]} of {git.root}"
        if git.diff_blob:
            how += " + stored uncommitted diff"
            if not store.has_blob(git.diff_blob):
                problems.append(f"the stored git diff sha256:{git.diff_blob[:12]} is missing from the store")
        if elsewhere:
            problems.append(f"no source snapshot stored: commit {git.commit[:12]} can only be restored where its "
                            f"repository is ({git.root} on the recording machine)")  # fmt: skip
        elif not git.root or not _has_commit(git.root, git.commit):
            problems.append(f"no source snapshot stored, and commit {git.commit[:12]} is not in a repository at {git.root}")
        return how, problems
    problems.append(f"no source snapshot stored ({src.absent_reason or 'none recorded'}) and no git commit recorded")
    return "nothing to restore the code from", problems


def snapshot_names(context: ProcessContext, store: Store) -> set[str] | None:
    """The file names in the stored source snapshot (relative, posix), or None without one
    (or when it cannot be read: the replay says so when it restores the code)."""
    import io
    import tarfile

    blob = context.source.blob
    if not blob or not store.has_blob(blob):
        return None
    try:
        with tarfile.open(fileobj=io.BytesIO(store.get_blob(blob)), mode="r:*") as tar:
            return {m.name[2:] if m.name.startswith("./") else m.name for m in tar.getmembers()}
    except (tarfile.TarError, OSError, EOFError):
        return None


def _git(args: list[str], cwd: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(Path(cwd).resolve().parent), GIT_TERMINAL_PROMPT="0")
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(var, None)
    try:
        return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, env=env, check=False, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        return subprocess.CompletedProcess(["git", *args], 127, b"", str(exc).encode())


def _has_commit(root: str, commit: str) -> bool:
    from ..values._untrusted import commit_problem, local_path_problem

    # a record is untrusted: a "commit" such as --output=FILE must never reach git as an option
    if commit_problem(commit) or local_path_problem(root, "git root") or not os.path.isdir(root):
        return False
    proc = _git(["cat-file", "-e", f"{commit}^{{commit}}"], root)
    return proc.returncode == 0


def _no_escaping_links(dest: Path, label: str) -> None:
    """Refuse a restored tree holding a symbolic link that leaves it (absolute, or through
    ``..``): the replayed flow would read or write through it, outside the work folder. The
    same rule the archive extraction applies, for what ``git apply`` made."""
    root = os.path.realpath(dest)
    for folder, dirs, files in os.walk(dest):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                target = os.path.realpath(path)
                if target != root and not target.startswith(root + os.sep):
                    raise UnsafeArchive.for_member(label, os.path.relpath(path, dest))


def restore_source(context: ProcessContext, store: Store, dest: Path) -> RestoredSource:
    """Put the recorded code in ``dest`` (created).

    Raises:
        SourceNotAvailable: neither a snapshot nor the recorded commit can be had.
        UnsafeArchive: the stored snapshot holds a member outside its root.
    """
    from ..capture.source import extract_source

    dest.mkdir(parents=True, exist_ok=True)
    src, git = context.source, context.git
    if src.blob:
        extract_source(store.get_blob(src.blob), dest)
        return RestoredSource(dest, "snapshot")
    if git.available and git.commit and git.root and _has_commit(git.root, git.commit):
        proc = _git(["archive", "--format=tar.gz", git.commit], git.root)
        if proc.returncode != 0:
            raise SourceNotAvailable.because(f"git archive of {git.commit[:12]} failed: {proc.stderr.decode(errors='replace').strip()}")
        extract_source(proc.stdout, dest)
        how = f"git {git.commit[:12]}"
        if git.diff_blob:
            diff = store.get_blob(git.diff_blob)
            if diff.strip():
                applied = _git(["apply", "--binary", "--whitespace=nowarn", "-"], dest, stdin=diff)
                if applied.returncode != 0:
                    raise SourceNotAvailable.because(
                        f"the stored diff does not apply to {git.commit[:12]}: "
                        f"{applied.stderr.decode(errors='replace').strip()}"
                    )
                _no_escaping_links(dest, "the stored git diff")
                how += " + diff"
        return RestoredSource(dest, how)
    _, problems = describe_source(context, store)
    raise SourceNotAvailable.because("; ".join(problems) or "nothing recorded")


def checkout_note(context: ProcessContext, cwd: str | None = None) -> str | None:
    """One line when the user's checkout on this machine is not the code the replay restores.

    A rebuild replay runs the recorded commit and uncommitted diff (from the snapshot), never the
    user's tree; a user who edited or committed since may expect otherwise. Looks at the current
    folder and at the recorded repository root, in that order; a repository counts when it is the
    recorded one or holds the recorded commit (a clone). None when neither is such a checkout
    (another machine), or when it is at the recorded commit with the same uncommitted diff.
    """
    import hashlib

    from ..capture.git import capture_git

    git = context.git
    if not git.available or not git.commit:
        return None
    seen: set[str] = set()
    for path in (cwd or os.getcwd(), git.root or context.source.root):
        if not path or not os.path.isdir(path):
            continue
        state, diff = capture_git(path)
        if not state.available or not state.root or not state.commit or state.root in seen:
            continue
        seen.add(state.root)
        recorded_root = bool(git.root) and os.path.realpath(state.root) == os.path.realpath(git.root or "")
        if not recorded_root and not _has_commit(state.root, git.commit):
            continue  # another project
        if state.commit == git.commit and state.dirty == git.dirty:
            if not state.dirty:
                return None
            if diff is not None and git.diff_blob:
                from ..values._redact import redact_bytes

                if hashlib.sha256(redact_bytes(diff)).hexdigest() == git.diff_blob:
                    return None
        now = state.commit[:12] + (" + uncommitted changes" if state.dirty else "")
        then = git.commit[:12] + (" + its uncommitted diff" if git.dirty else "")
        return f"your checkout at {state.root} is at {now}; the replay runs the recorded {then} snapshot"
    return None


__all__ = ["RestoredSource", "checkout_note", "describe_source", "restore_source", "snapshot_names"]
