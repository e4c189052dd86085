"""What replay checks in a record before it acts on it (a record is untrusted input, issue 11).

Every field the replay turns into a path (made, written, read and executed), a word of a
command or an environment variable is checked here, in the plan: one problem per field, each
becoming one :class:`~reproflow.errors.UnsafeRecord` line. The distribution pins are checked by
:func:`reproflow.replay._envbuild.pin_problem` and the Snakemake command by
:func:`reproflow.replay._plan.snakemake_command`; blob digests and run ids by the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..records import Environment, Run, TaskRecord
from ..values._untrusted import (
    commit_problem,
    function_problem,
    hashseed_problem,
    implementation_problem,
    local_path_problem,
    module_problem,
    python_version_problem,
    relative_path_problem,
    show,
    text_problem,
)


def split_entrypoint(entrypoint: str) -> tuple[str, str | None]:
    """("path/to/file.py", "qualname") from "path/to/file.py:qualname"; a script recorded by
    ``reproflow.record()`` is a file alone: ("path/to/script.py", None)."""
    path, sep, qual = entrypoint.rpartition(":")
    if sep and path and qual and all(part.isidentifier() or part == "<locals>" for part in qual.split(".")):
        return path, qual
    return entrypoint, None


_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def _entrypoint_problem(entrypoint: str | None) -> str | None:
    """The flow's file: relative inside the restored code, or a plain absolute path."""
    if entrypoint is None:
        return None
    problem = text_problem(entrypoint, "flow entrypoint")
    if problem:
        return problem
    path, _ = split_entrypoint(entrypoint)
    if path.startswith("/"):
        # a flow defined outside the recorded code (an installed package) is recorded by its
        # absolute path and imported by its module; the path itself must be a plain one
        return local_path_problem(path, "flow entrypoint")
    return relative_path_problem(path, "flow entrypoint")


def _task_problems(task: TaskRecord) -> Iterable[str]:
    label = f"task {task.task_name[:80]!r}"
    yield from filter(None, [function_problem(task.function, f"{label}: function")])
    if task.function_file is not None:
        # recorded absolute (the function may live in an installed package): the runner loads
        # it only from inside the restored code (see replay._execute._moved_file), else imports
        # the function's module
        check = local_path_problem if task.function_file.startswith("/") else relative_path_problem
        problem = check(task.function_file, f"{label}: function file")
        if problem:
            yield problem
    for what, digest in (("stored result", task.result_blob), ("context", task.context),
                         *(("stored input copy", r.stored_blob) for r in task.inputs)):
        if digest is not None and not _DIGEST.match(digest):
            yield f"{label}: the {what} blob digest {show(digest)} is not a SHA-256 hex digest"
    for which, refs in (("input", task.inputs), ("output", task.outputs)):
        for ref in refs:
            # a value reproflow could not hash (a signed URL, ...) is reported, never read or made
            check = text_problem if ref.kind == "unhashed" else local_path_problem
            problem = check(ref.uri, f"{label}: {which}")
            if problem:
                yield problem
            elif ref.kind != "unhashed" and ref.uri.replace("file://", "").replace("local://", "").rstrip("/") == "":
                yield f"{label}: {which} {ref.uri!r} is the whole file system"


def record_problems(run: Run, env: Environment, selected: Iterable[TaskRecord]) -> list[str]:
    """One line per record field that is unsafe to replay (empty: nothing found).

    Args:
        run: the loaded run (record, context, tasks).
        env: its recorded environment.
        selected: the task runs the replay will act on (their inputs are verified or restored,
            their outputs' folders made).
    """
    assert run.context is not None
    ctx, rec = run.context, run.record
    out: list[str] = []
    checks = [
        local_path_problem(ctx.source.root, "source snapshot root"),
        local_path_problem(ctx.git.root, "git root") if ctx.git.available else None,
        commit_problem(ctx.git.commit) if ctx.git.available and not ctx.source.blob else None,
        local_path_problem(rec.cwd, "working folder"),
        _entrypoint_problem(rec.entrypoint),
        module_problem(rec.module),
        module_problem(rec.main_module, "main module", qualname=False),
        hashseed_problem(rec.pythonhashseed),
        python_version_problem(env.python.version, "recorded Python version"),
        implementation_problem(env.python.implementation, "recorded Python implementation"),
    ]
    for what, digest in (("source snapshot", ctx.source.blob), ("git diff", ctx.git.diff_blob),
                         ("system libraries", ctx.system_blob)):
        if digest is not None and not _DIGEST.match(digest):
            checks.append(f"the {what} blob digest {show(digest)} is not a SHA-256 hex digest")
    out += [c for c in checks if c]
    for task in selected:
        out += _task_problems(task)
    return list(dict.fromkeys(out))


__all__ = ["record_problems", "split_entrypoint"]
