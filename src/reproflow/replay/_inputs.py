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


def external_inputs(tasks: Iterable[TaskRecord], produced_before: Iterable[TaskRecord] = ()) -> list[PlannedInput]:
    """The inputs of ``tasks`` that none of them (nor ``produced_before``) wrote first.

    Args:
        tasks: the task runs to be replayed, in start order.
        produced_before: task runs not replayed whose outputs count as produced (unused by the
            full replay; a partial replay passes nothing, so their outputs must exist).
    """
    written: set[str] = set()
    for t in produced_before:
        written.update(_key(r) for r in t.outputs)
    found: dict[str, PlannedInput] = {}
    for t in tasks:
        for ref in t.inputs:
            if _key(ref) in written:  # remote objects (kind "object") are verified like files
                continue
            cur = found.get(ref.uri)
            if cur is None:
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
        written.update(_key(r) for r in t.outputs)
    return list(found.values())


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
) -> list[InputCheck]:
    """Hash every planned input; restore missing ones from stored copies.

    With ``relocation``, an input inside the recorded source root is checked at its place in
    the restored code (the replay never reads it from, nor writes it into, the user's tree). If
    it is not there as recorded (a file the snapshot left out, an ignored data file), it is
    restored there from its stored copy, else copied from its original path when that still
    hashes as recorded (reading the user's tree, never writing it).

    Raises:
        InputChanged: an input is missing (with no stored copy) or hashes differently, unless
            ``allow_changed``.
    """
    checks: list[InputCheck] = []
    for item in planned:
        if item.kind == "missing" or not item.sha256:
            checks.append(InputCheck(uri=item.uri, status="unchecked", tasks=item.tasks,
                                     note="no hash was recorded (the input did not exist at record time)"))
            continue
        if relocation is not None and relocation.inside(item.uri):
            checks.append(_verify_relocated(item, tasks, store, relocation, allow_changed))
        else:
            checks.append(_verify_in_place(item, tasks, store, allow_changed))
    return checks


def _verify_in_place(item: PlannedInput, tasks: list[TaskRecord], store: Store, allow_changed: bool) -> InputCheck:
    """An input outside the source root: verified where it is; restored there only if missing."""
    from .._hashing import hash_path, is_local, local_path

    assert item.sha256 is not None
    found = hash_path(item.uri)
    if found.kind == "missing" and item.stored_copy and is_local(item.uri):
        ref = _stored_blob(tasks, item.uri)
        assert ref is not None and ref.stored_blob is not None
        restore_copy(store, ref.stored_blob, local_path(item.uri), ref.kind)
        found = hash_path(item.uri)
        if found.sha256 == item.sha256:
            return InputCheck(uri=item.uri, expected=item.sha256, actual=found.sha256, status="restored",
                              tasks=item.tasks, location=item.uri, note="restored from the copy stored at record time")
    if found.sha256 == item.sha256:
        return InputCheck(uri=item.uri, expected=item.sha256, actual=found.sha256, status="ok", tasks=item.tasks,
                          location=item.uri)
    actual = found.sha256 if found.kind != "missing" else None
    if not allow_changed:
        raise _refusal(item, actual)
    return InputCheck(uri=item.uri, expected=item.sha256, actual=actual, status="missing" if actual is None else "changed",
                      tasks=item.tasks, location=item.uri, note="allowed by --allow-changed-inputs")


def _verify_relocated(item: PlannedInput, tasks: list[TaskRecord], store: Store, relocation: Relocation,
                      allow_changed: bool) -> InputCheck:
    """An input inside the source root, checked (and if need be put) in the restored code."""
    from .._hashing import hash_path, local_path

    assert item.sha256 is not None
    original = local_path(item.uri)
    loc = local_path(relocation.path(item.uri))
    here = hash_path(loc)

    def check(status: str, found: str | None, note: str | None = None) -> InputCheck:
        return InputCheck(uri=item.uri, expected=item.sha256, actual=found, status=status,  # type: ignore[arg-type]
                          tasks=item.tasks, location=loc, note=note)

    if here.sha256 == item.sha256:
        return check("ok", here.sha256, "as restored with the code")
    ref = _stored_blob(tasks, item.uri) if item.stored_copy else None
    if ref is not None and ref.stored_blob is not None:
        _clear(loc)
        restore_copy(store, ref.stored_blob, loc, ref.kind)
        here = hash_path(loc)
        if here.sha256 == item.sha256:
            return check("restored", here.sha256, "restored from the copy stored at record time")
    theirs = hash_path(original)
    if theirs.kind != "missing" and theirs.sha256 == item.sha256:
        _clear(loc)
        _copy(original, loc)
        here = hash_path(loc)
        if here.sha256 == item.sha256:
            return check("restored", here.sha256, f"copied from {original} (read only)")
    # nothing has it as recorded: report what the user can see (their file), else the restored one
    actual = theirs.sha256 if theirs.kind != "missing" else (here.sha256 if here.kind != "missing" else None)
    if not allow_changed:
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


__all__ = ["external_inputs", "restore_copy", "verify_inputs"]
