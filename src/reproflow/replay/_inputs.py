"""Verify every recorded input by SHA-256 before anything runs; restore stored copies.

Only *external* inputs are checked: data a task read that no earlier task of the replayed set
wrote (an intermediate file is rewritten by the replay itself before it is read). An input that
is missing but was stored as a copy at record time (``@repro_task(store_inputs=True)`` or
``REPROFLOW_STORE_INPUTS=1``) is restored from the store, verified, at its recorded path. Inputs
inside the recorded source root are checked at their place in the restored code instead (see
:func:`verify_inputs`). A changed input outside the source root is never overwritten: the replay stops with :class:`~reproflow.errors.InputChanged`
(file, recorded and found hash) unless ``allow_changed`` is set, and then the verdict says so.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from collections.abc import Iterable

from ..errors import InputChanged, UnsafeArchive
from ..records import DataRef, TaskRecord
from ..store import Store
from ._models import InputCheck, PlannedInput
from ._relocate import Relocation


def external_inputs(tasks: Iterable[TaskRecord], produced_before: Iterable[TaskRecord] = (), *,
                    flow_reruns: bool = False) -> list[PlannedInput]:
    """The inputs of ``tasks`` that none of them (nor ``produced_before``) wrote first.

    A folder counts as written first when, as a task read it, it held only files that other
    tasks had written (its recorded tree hash is the tree of the files that the tasks started
    earlier wrote; or, for the first task to read it, that the tasks which ended first wrote,
    as when tasks run at the same time): it is derived, and the replay fills it again.

    Args:
        tasks: the task runs to be replayed, in start order.
        produced_before: task runs not replayed whose outputs count as produced (unused by the
            full replay; a partial replay passes nothing, so their outputs must exist).
        flow_reruns: the flow (or script) runs again around the tasks: a file the run wrote
            itself outside any task before a task read it (``DataRef.written_in_run``: the flow
            body's settings file, a file it generates) is derived too, written again by the replay.
    """
    tasks, produced_before = list(tasks), list(produced_before)
    written: set[str] = set()
    files: dict[str, str | None] = {}  # local file written so far -> its last recorded sha256
    for t in produced_before:
        _note_outputs(t, written, files)
    by_end = sorted(produced_before + tasks, key=lambda t: t.ended_at or t.started_at)
    found: dict[str, PlannedInput] = {}
    for t in tasks:
        for ref in t.inputs:
            if _key(ref) in written or _is_folder(ref) and _tree_under(files, _key(ref)) == ref.sha256:
                continue  # remote objects (kind "object") are verified like files
            if flow_reruns and ref.written_in_run and ref.uri not in found:
                continue
            cur = found.get(ref.uri)
            if cur is None:
                if _is_folder(ref) and _filled_at_once(ref, t, by_end):
                    continue
                found[ref.uri] = PlannedInput(
                    uri=ref.uri,
                    kind=ref.kind,
                    sha256=ref.sha256,
                    size=ref.size,
                    stored_copy=bool(ref.stored_blob),
                    tasks=[t.task_name],
                )
            else:
                if t.task_name not in cur.tasks:
                    cur.tasks.append(t.task_name)
                cur.stored_copy = cur.stored_copy or bool(ref.stored_blob)
        _note_outputs(t, written, files)
    return list(found.values())


def _note_outputs(t: TaskRecord, written: set[str], files: dict[str, str | None]) -> None:
    for r in t.outputs:
        written.add(_key(r))
        if "://" not in r.uri and r.kind in ("file", "missing"):
            files[_key(r)] = r.sha256 if r.kind == "file" else None


def _tree_under(files: dict[str, str | None], root: str) -> str | None:
    """The tree hash of the files below ``root`` (None when there are none)."""
    from ..capture._files import tree_digest

    entries = [(os.path.relpath(p, root).replace(os.sep, "/"), digest) for p, digest in files.items()
               if digest is not None and p.startswith(root + os.sep)]
    return tree_digest(entries) if entries else None


def _is_folder(ref: DataRef) -> bool:
    return ref.kind == "directory" and bool(ref.sha256) and "://" not in ref.uri


#: Up to this many files of tasks running beside the reader, every combination of them is tried.
_MAX_UNCERTAIN = 12


def _filled_at_once(ref: DataRef, reader: TaskRecord, by_end: list[TaskRecord]) -> bool:
    """Whether a folder input held only files that other tasks of the run wrote (tasks running at
    the same time, say a ``.map`` into one folder, fill it while the others read it).

    When the record lists the names the folder held (``DataRef.entries``), it is derived exactly
    when every one of them is a file some other task of the run wrote (whatever its content at
    that moment: a sibling may have been halfway through writing it). Older records and folders
    too large to list fall back to hashes:

    What the reader saw is known for the tasks that ended before it started (their files were
    there) and for those that started after it ended (theirs were not); the files of the tasks
    running beside it may or may not have been there yet, so every combination of them is
    tried. Only an exact tree-hash match counts, so a wrong guess can only end in a refusal,
    never a false "reproduced"; the result does not depend on which sibling finished first.
    """
    root = _key(ref)
    if ref.entries is not None:  # the names it held were recorded: each must be a file the run wrote
        written = {_key(r) for t in by_end if t is not reader for r in t.outputs
                   if "://" not in r.uri and r.kind in ("file", "missing")}
        return bool(ref.entries) and all(os.path.join(root, *e.split("/")) in written for e in ref.entries)
    start, end = reader.started_at, reader.ended_at or reader.started_at
    certain: dict[str, str | None] = {}
    maybe: dict[str, str | None] = {}
    for t in by_end:
        if t is reader:
            continue
        t_end = t.ended_at or t.started_at
        if t.started_at > end:
            continue
        for r in t.outputs:
            if "://" not in r.uri and r.kind in ("file", "missing") and _key(r).startswith(root + os.sep):
                (certain if t_end < start else maybe)[_key(r)] = r.sha256 if r.kind == "file" else None
    if not certain and not maybe:
        return False
    uncertain = [p for p in maybe if p not in certain]
    if len(uncertain) > _MAX_UNCERTAIN:  # too many to try them all: the ones that ended first
        seen = dict(certain)
        for path in uncertain:
            seen[path] = maybe[path]
            if _tree_under(seen, root) == ref.sha256:
                return True
        return _tree_under(certain, root) == ref.sha256
    import itertools

    for n in range(len(uncertain) + 1):
        for combo in itertools.combinations(uncertain, n):
            seen = {**certain, **{p: maybe[p] for p in combo}}
            if seen and _tree_under(seen, root) == ref.sha256:
                return True
    return False


def mark_written(planned: Iterable[PlannedInput], run_tasks: Iterable[TaskRecord]) -> None:
    """Set ``written_by`` on every local input that a task of the run (any attempt) wrote over
    or wrote into: after the run its original path no longer holds the state the run started from.

    A file whose every output at its path has the bytes it was read with is not written over: a
    task that found its output there already (``if dst.exists(): return dst``) returned it as it
    was, and the original path still holds the state the run started from."""
    writers: dict[str, list[str]] = {}
    digests: dict[str, set[str | None]] = {}  #: what the outputs at exactly this path held
    for t in run_tasks:
        for r in t.outputs:
            if "://" in r.uri:
                continue
            path = _key(r)
            digests.setdefault(path, set()).add(r.sha256 if r.kind == "file" else None)
            while True:  # the path and every folder above it
                names = writers.setdefault(path, [])
                if t.task_name not in names:
                    names.append(t.task_name)
                parent = os.path.dirname(path)
                if parent == path:
                    break
                path = parent
    for item in planned:
        if "://" not in item.uri:
            path = os.path.normpath(item.uri)
            if item.kind == "file" and item.sha256 and digests.get(path) == {item.sha256}:
                continue  # only ever "written" with the bytes it held: left as it was
            item.written_by = list(writers.get(path, []))


def written_files(run_tasks: Iterable[TaskRecord], folder: str) -> list[str] | None:
    """Local paths below ``folder`` that the run wrote (or removed); None when a task wrote the
    folder itself, or a folder inside it, as one output (which of its files are the run's is
    then unknown)."""
    root = os.path.normpath(folder)
    out: set[str] = set()
    for t in run_tasks:
        for r in t.outputs:
            if "://" in r.uri:
                continue
            path = _key(r)
            if path == root or path.startswith(root + os.sep):
                if r.kind == "directory":
                    return None
                out.add(path)
    return sorted(out)


def _key(ref: DataRef) -> str:
    return os.path.normpath(ref.uri) if "://" not in ref.uri else ref.uri


def _stored_blob(tasks: Iterable[TaskRecord], uri: str) -> DataRef | None:
    for t in tasks:
        for ref in t.inputs:
            if ref.uri == uri and ref.stored_blob:
                return ref
    return None


def verify_inputs(
    planned: list[PlannedInput],
    tasks: list[TaskRecord],
    store: Store,
    *,
    allow_changed: bool = False,
    relocation: Relocation | None = None,
    run_tasks: Iterable[TaskRecord] = (),
) -> list[InputCheck]:
    """Hash every planned input; restore missing ones from stored copies.

    With ``relocation``, an input inside the recorded source root is checked at its place in
    the restored code (the replay never reads it from, nor writes it into, the user's tree). If
    it is not there as recorded (a file the snapshot left out, an ignored data file), it is
    restored there from its stored copy, else copied from its original path when that still
    hashes as recorded (reading the user's tree, never writing it).

    The state before the run is what is reproduced: a folder recorded empty is recreated empty
    (when the flow or the first task that reads it starts: ``InputCheck.deferred``),
    and an input the run itself wrote over or into (``written_by``) is never taken from its
    original path, which holds the run's outputs now: a stored copy, or the refusal naming the
    option that keeps one. Outside the source root such a folder is used in place once the
    files the run wrote into it (``run_tasks``' outputs, which the replay writes again) are
    removed, if what is left hashes as recorded.

    Raises:
        InputChanged: an input is missing (with no stored copy) or hashes differently, unless
            ``allow_changed``.
    """
    checks: list[InputCheck] = []
    run_tasks = list(run_tasks) or tasks
    for item in planned:
        if item.kind == "missing" or not item.sha256:
            checks.append(InputCheck(uri=item.uri, status="unchecked", tasks=item.tasks,
                                     note="no hash was recorded (the input did not exist at record time)"))
            continue
        if relocation is not None and relocation.inside(item.uri):
            checks.append(_verify_relocated(item, tasks, store, relocation, allow_changed))
        else:
            checks.append(_verify_in_place(item, tasks, store, allow_changed, run_tasks))
    return checks


#: an empty folder is not made before the run starts: the flow body may make it with a plain
#: ``mkdir()``, which fails on a folder that exists; the recorder makes it when the first task that
#: reads it starts, if the flow has not (``REPROFLOW_REPLAY_MAKE_DIRS``)
DEFERRED_NOTE = "recreated empty, as it was recorded, when the flow or the first task reading it makes it"


def _empty_folder(item: PlannedInput) -> bool:
    from ..capture._files import EMPTY_TREE

    return item.kind == "directory" and item.sha256 == EMPTY_TREE


def _written_note(item: PlannedInput) -> str:
    if not item.written_by:
        return ""
    return f" (the run wrote into it: {', '.join(item.written_by)})"


def _verify_in_place(item: PlannedInput, tasks: list[TaskRecord], store: Store, allow_changed: bool,
                     run_tasks: list[TaskRecord]) -> InputCheck:
    """An input outside the source root: verified where it is; restored there only if missing."""
    from ..capture._files import is_local, local_path

    assert item.sha256 is not None
    found = _hash(item.uri)
    if found.kind == "missing" and item.stored_copy and is_local(item.uri):
        ref = _stored_blob(tasks, item.uri)
        assert ref is not None and ref.stored_blob is not None
        restore_copy(store, ref.stored_blob, local_path(item.uri), ref.kind)
        found = _hash(item.uri)
        if found.sha256 == item.sha256:
            return InputCheck(uri=item.uri, expected=item.sha256, actual=found.sha256, status="restored",
                              tasks=item.tasks, location=item.uri, note="restored from the copy stored at record time")
    if found.kind == "missing" and _empty_folder(item) and is_local(item.uri):
        return InputCheck(uri=item.uri, expected=item.sha256, actual=item.sha256, status="restored", tasks=item.tasks,
                          location=local_path(item.uri), note=DEFERRED_NOTE, deferred=True)
    if found.sha256 == item.sha256:
        return InputCheck(uri=item.uri, expected=item.sha256, actual=found.sha256, status="ok", tasks=item.tasks,
                          location=item.uri)
    actual = found.sha256 if found.kind != "missing" else None
    if (item.written_by and item.stored_copy and found.kind == "file" and is_local(item.uri)
            and actual == _last_written(run_tasks, item.uri)):
        # a file the run updated in place, still holding what the run left (the replay writes it
        # again): back to its state before the run from the stored copy
        ref = _stored_blob(tasks, item.uri)
        assert ref is not None and ref.stored_blob is not None
        restore_copy(store, ref.stored_blob, local_path(item.uri), ref.kind)
        found = _hash(item.uri)
        if found.sha256 == item.sha256:
            return InputCheck(uri=item.uri, expected=item.sha256, actual=found.sha256, status="restored",
                              tasks=item.tasks, location=item.uri,
                              note="restored from the copy stored at record time over what the run wrote"
                                   + _written_note(item))
        actual = found.sha256
    if item.written_by and found.kind == "directory" and is_local(item.uri):
        folder = local_path(item.uri)
        ours = written_files(run_tasks, folder)
        if ours is not None and _tree_without(folder, set(ours)) == item.sha256 and _as_written(run_tasks, ours):
            for path in ours:  # the run's own outputs: the replay writes them again
                if os.path.isfile(path) and not os.path.islink(path):
                    os.unlink(path)
            return InputCheck(uri=item.uri, expected=item.sha256, actual=item.sha256, status="restored",
                              tasks=item.tasks, location=item.uri,
                              note="as before the run once the files the run wrote into it were removed"
                                   + _written_note(item))
    if not allow_changed:
        if item.written_by:
            stored = item.stored_copy and found.kind == "file"
            raise InputChanged.written_by_run(item.uri, item.sha256, actual, item.written_by, stored)
        raise _refusal(item, actual)
    return InputCheck(uri=item.uri, expected=item.sha256, actual=actual, status="missing" if actual is None else "changed",
                      tasks=item.tasks, location=item.uri, note="allowed by --allow-changed-inputs")


def _as_written(run_tasks: list[TaskRecord], paths: list[str]) -> bool:
    """Whether every one of ``paths`` that exists holds what the run last wrote there.

    The replay removes such files before the run writes them again; a record is untrusted, so a
    file that is not byte for byte what the record says the run wrote (someone's own file
    named as an output) is never removed: the folder is then refused as changed.
    """
    from ..capture._files import sha256_file

    for path in paths:
        if os.path.islink(path) or not os.path.lexists(path):
            continue
        if not os.path.isfile(path):
            return False
        last = _last_written(run_tasks, path)
        if last is None or sha256_file(path)[0] != last:
            return False
    return True


def _hash(uri: str) -> DataRef:
    """Hash an input where it is; what cannot be read (permissions, a special file) is one
    line, never a traceback."""
    from ..capture._files import hash_path

    try:
        return hash_path(uri)
    except (OSError, ValueError) as exc:
        raise InputChanged(f"input {uri} cannot be read ({type(exc).__name__}: {exc}); check it, or replay "
                           "with --task to leave the task that reads it out", uri=uri, expected="", actual=None) from exc


def _last_written(run_tasks: list[TaskRecord], uri: str) -> str | None:
    """The hash of what the run last wrote at ``uri`` (tasks in start order)."""
    key = os.path.normpath(uri)
    last = None
    for t in sorted(run_tasks, key=lambda t: (t.started_at, t.attempt)):
        for r in t.outputs:
            if "://" not in r.uri and _key(r) == key:
                last = r.sha256
    return last


def _tree_without(folder: str, skip: set[str]) -> str:
    """The tree hash of ``folder`` without the files in ``skip`` (normalized absolute paths)."""
    from ..capture._files import sha256_file, tree_digest, walk_files

    entries = [(rel, sha256_file(full)[0]) for rel, full in walk_files(folder)
               if os.path.normpath(full) not in skip]
    return tree_digest(entries)


def _verify_relocated(item: PlannedInput, tasks: list[TaskRecord], store: Store, relocation: Relocation,
                      allow_changed: bool) -> InputCheck:
    """An input inside the source root, checked (and if need be put) in the restored code."""
    from ..capture._files import local_path

    assert item.sha256 is not None
    original = local_path(item.uri)
    loc = local_path(relocation.path(item.uri))
    here = _hash(loc)

    def check(status: str, found: str | None, note: str | None = None) -> InputCheck:
        return InputCheck(uri=item.uri, expected=item.sha256, actual=found, status=status,  # type: ignore[arg-type]
                          tasks=item.tasks, location=loc, note=note)

    if here.sha256 == item.sha256 and here.kind == item.kind:
        return check("ok", here.sha256, "as restored with the code")
    ref = _stored_blob(tasks, item.uri) if item.stored_copy else None
    if ref is not None and ref.stored_blob is not None:
        _clear(loc)
        restore_copy(store, ref.stored_blob, loc, ref.kind)
        here = _hash(loc)
        if here.sha256 == item.sha256:
            return check("restored", here.sha256, "restored from the copy stored at record time" + _written_note(item))
    if _empty_folder(item):
        _clear(loc)
        done = check("restored", item.sha256, DEFERRED_NOTE + _written_note(item))
        done.deferred = True
        return done
    theirs = _hash(original)
    if theirs.kind != "missing" and theirs.sha256 == item.sha256:
        _clear(loc)
        _copy(original, loc)
        here = _hash(loc)
        if here.sha256 == item.sha256:
            return check("restored", here.sha256, f"copied from {original} (read only)")
    # nothing has it as recorded: report what the user can see (their file), else the restored one
    actual = theirs.sha256 if theirs.kind != "missing" else (here.sha256 if here.kind != "missing" else None)
    if not allow_changed:
        if item.written_by:
            raise InputChanged.written_by_run(item.uri, item.sha256, actual, item.written_by)
        raise _refusal(item, actual)
    if here.kind == "missing" and theirs.kind != "missing":
        _copy(original, loc)  # run with the changed file, as --allow-changed-inputs asks
    return check("missing" if actual is None else "changed", actual, "allowed by --allow-changed-inputs")


def _refusal(item: PlannedInput, actual: str | None) -> InputChanged:
    """The one-line refusal; a missing input names how to make it restorable."""
    assert item.sha256 is not None
    if actual is not None:
        return InputChanged.for_input(item.uri, item.sha256, actual)
    return InputChanged(
        f"input {item.uri} (recorded sha256:{item.sha256}) is missing: it is not in the restored code, no copy "
        "was stored and the original path does not have it; restore the file, or record again with "
        "@repro_task(store_inputs=True) or REPROFLOW_STORE_INPUTS=1 so the store keeps a copy",
        uri=item.uri, expected=item.sha256, actual=None,
    )


def _clear(path: str) -> None:
    """Remove what stands at ``path`` inside the replay's work folder (a stale copy)."""
    import shutil

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _copy(src: str, dest: str) -> None:
    import shutil

    os.makedirs(os.path.dirname(os.path.abspath(dest)) or ".", exist_ok=True)
    if os.path.isdir(src):
        shutil.copytree(src, dest, symlinks=False)
    else:
        shutil.copyfile(src, dest)


def restore_copy(store: Store, digest: str, dest: str, kind: str) -> None:
    """Write a stored input copy back at ``dest`` (a file, or a directory from its tar)."""
    parent = os.path.dirname(os.path.abspath(dest)) or "."
    os.makedirs(parent, exist_ok=True)
    if kind != "directory":
        store.get_blob_to_file(digest, dest)
        return
    data = store.get_blob(digest)
    tmp = tempfile.mkdtemp(prefix=".reproflow-restore-", dir=parent)
    try:
        _extract_tar(data, tmp, digest)
        os.replace(tmp, dest)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _extract_tar(data: bytes, dest: str, digest: str) -> None:
    """Extract a stored directory tar: regular files and folders only, never outside ``dest``."""
    try:
        _extract_members(data, dest, digest)
    except (OSError, tarfile.TarError, EOFError) as exc:  # a name too long, a damaged tar
        raise UnsafeArchive(f"cannot extract stored input sha256:{digest[:12]}: {exc}") from exc


def _extract_members(data: bytes, dest: str, digest: str) -> None:
    root = os.path.realpath(dest)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar.getmembers():
            name = member.name
            target = os.path.realpath(os.path.join(root, name))
            if (
                os.path.isabs(name)
                or ".." in name.replace("\\", "/").split("/")
                or not (target == root or target.startswith(root + os.sep))
                or not (member.isfile() or member.isdir())
                or (member.isfile() and target == root)
            ):
                raise UnsafeArchive.for_member(f"stored input sha256:{digest[:12]}", name)
            if member.isdir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            with src, open(target, "wb") as fh:
                while chunk := src.read(1 << 20):
                    fh.write(chunk)


__all__ = ["external_inputs", "mark_written", "restore_copy", "verify_inputs", "written_files"]
