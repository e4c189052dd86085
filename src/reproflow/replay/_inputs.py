"""Verify every recorded input by SHA-256 before anything runs; restore stored copies.

Only *external* inputs are checked: data a task read that no earlier task of the replayed set
wrote (an intermediate file is rewritten by the replay itself before it is read). An input that
is missing but was stored as a copy at record time (``@repro_task(store_inputs=True)`` or
``REPROFLOW_STORE_INPUTS=1``) is restored from the store, verified, at its recorded path. A
changed input is never overwritten: the replay stops with :class:`~reproflow.errors.InputChanged`
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
            if ref.kind == "object" or _key(ref) in written:
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
) -> list[InputCheck]:
    """Hash every planned input; restore missing ones from stored copies.

    Raises:
        InputChanged: an input is missing (with no stored copy) or hashes differently, unless
            ``allow_changed``.
    """
    from .._hashing import hash_path, is_local, local_path

    checks: list[InputCheck] = []
    for item in planned:
        if item.kind == "missing" or not item.sha256:
            checks.append(InputCheck(uri=item.uri, status="unchecked", tasks=item.tasks,
                                     note="no hash was recorded (the input did not exist at record time)"))
            continue
        found = hash_path(item.uri)
        if found.kind == "missing" and item.stored_copy and is_local(item.uri):
            ref = _stored_blob(tasks, item.uri)
            assert ref is not None and ref.stored_blob is not None
            restore_copy(store, ref.stored_blob, local_path(item.uri), ref.kind)
            found = hash_path(item.uri)
            if found.sha256 == item.sha256:
                checks.append(InputCheck(uri=item.uri, expected=item.sha256, actual=found.sha256, status="restored",
                                         tasks=item.tasks, note="restored from the copy stored at record time"))
                continue
        if found.sha256 == item.sha256:
            checks.append(InputCheck(uri=item.uri, expected=item.sha256, actual=found.sha256, status="ok", tasks=item.tasks))
            continue
        actual = found.sha256 if found.kind != "missing" else None
        if not allow_changed:
            raise InputChanged.for_input(item.uri, item.sha256, actual)
        checks.append(InputCheck(
            uri=item.uri,
            expected=item.sha256,
            actual=actual,
            status="missing" if actual is None else "changed",
            tasks=item.tasks,
            note="allowed by --allow-changed-inputs",
        ))
    return checks


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
