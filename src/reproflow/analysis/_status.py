"""``reproflow status``: which tasks of a run are stale now, and why, without running anything.

Each task that ran under ``reproflow.CONTENT`` keeps its key's parts in its record
(``TaskRecord.cache``). Status recomputes each part from what is on disk and installed now:

- ``input changed``: an input file's or folder's SHA-256 (stat-keyed, so unchanged files are
  not read again), a file the task read without declaring it included;
- ``code changed``: the syntax tree of the task's function or of a project function it calls;
- ``parameter default changed``: a parameter that took its default, whose default (a literal)
  is now different;
- ``package changed``: the environment identity, naming each distribution that changed (its
  version, where it was installed from, or the files a direct install put there);
- ``upstream task stale``: a task it consumed (recorded or matched DAG edge) is stale.

A task recorded without a content key cannot be judged, and is reported as not cached.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from ..capture import capture_environment, environment_identity
from ..capture.environment import canonical_name, distribution_pin
from ..records import CacheKey, Distribution, Environment, ProcessContext, Run
from ..store import Store


@dataclass
class TaskStatus:
    """One task run of the judged run."""

    task_run_id: str
    task_name: str
    state: str  #: as recorded: COMPLETED, CACHED, FAILED
    cached: bool  #: whether it ran under reproflow.CONTENT (its key's parts are recorded)
    stale: bool
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"task_run_id": self.task_run_id, "task_name": self.task_name, "state": self.state,
                "cached": self.cached, "stale": self.stale, "reasons": self.reasons}


def _show(path: str) -> str:
    rel = os.path.relpath(path, os.getcwd()) if os.path.isabs(path) else path
    return path if rel.startswith("..") else rel


def _show_label(lbl: str) -> str:
    path, _, qual = lbl.rpartition(":")
    return f"{_show(path)}:{qual}" if path else lbl


def _input_reasons(parts: CacheKey, undeclared: dict[str, str]) -> list[str]:
    """Inputs of the key, then the files the task read without declaring them (in its key too)."""
    from ..capture._files import hash_path

    out = []
    for uri, recorded in sorted(parts.inputs.items()):
        try:
            ref = hash_path(uri)
            now = ref.sha256 or ref.kind
        except Exception as exc:  # noqa: BLE001 - an input that cannot be read now is a reason too
            now = f"unreadable ({type(exc).__name__})"
        if now != recorded:
            what = "missing now" if now == "missing" else "new content"
            out.append(f"input changed: {_show(uri)} ({what})")
    for uri, recorded in sorted(undeclared.items()):
        if uri in parts.inputs:
            continue
        try:
            ref = hash_path(uri)
            now = ref.sha256 or ref.kind
        except Exception as exc:  # noqa: BLE001 - as above
            now = f"unreadable ({type(exc).__name__})"
        if now != recorded:
            what = "missing now" if now == "missing" else "new content"
            out.append(f"input changed: {_show(uri)} ({what}; read without being declared)")
    return out


def _code_reasons(parts: CacheKey) -> list[str]:
    from ..recorder._content import digest_of

    out = []
    for lbl, recorded in sorted(parts.code.items()):
        path, _, qual = lbl.rpartition(":")
        if "<locals>" in qual:
            continue  # a nested function cannot be found in its file by name; its parent covers it
        now = digest_of(path, qual)
        if now is None:
            out.append(f"code changed: {_show_label(lbl)} (definition not found)")
        elif now != recorded:
            out.append(f"code changed: {_show_label(lbl)}")
    return out


def _default_reasons(parts: CacheKey) -> list[str]:
    from ..recorder._content import definition
    from ..values._typed import stable_hash

    if not parts.defaults:
        return []
    path, _, qual = parts.function.rpartition(":")
    node = definition(path, qual)
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return []
    a = node.args
    positional = [*a.posonlyargs, *a.args]
    exprs: dict[str, Optional[ast.expr]] = dict(zip([p.arg for p in positional[len(positional) - len(a.defaults):]], a.defaults))
    exprs.update({p.arg: d for p, d in zip(a.kwonlyargs, a.kw_defaults)})
    out = []
    for name in parts.defaults:
        expr = exprs.get(name)
        if expr is None:
            if name in {p.arg for p in [*positional, *a.kwonlyargs]}:
                out.append(f"parameter default changed: {name} (no default now)")
            continue
        try:
            value = ast.literal_eval(expr)
        except (ValueError, SyntaxError, TypeError):
            continue  # not a literal: cannot be judged without running the module
        if stable_hash(value) != parts.parameters.get(name):
            out.append(f"parameter default changed: {name} (now {ast.unparse(expr)})")
    return out


class _Environments:
    """The recorded environments (by context digest) against the one installed now."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._now: Optional[Environment] = None
        self._recorded: dict[str, Optional[Environment]] = {}

    def now(self) -> Environment:
        if self._now is None:
            self._now = capture_environment(fingerprint=self.store.fingerprint)
        return self._now

    def recorded(self, context: Optional[str]) -> Optional[Environment]:
        if context is None:
            return None
        if context not in self._recorded:
            from .. import errors

            try:
                ctx = self.store.get_model_blob(context, ProcessContext)
                self._recorded[context] = self.store.get_model_blob(ctx.environment_blob, Environment)
            except errors.ReproflowError:
                self._recorded[context] = None
        return self._recorded[context]

    def reasons(self, parts: CacheKey, context: Optional[str]) -> list[str]:
        now = self.now()
        if parts.environment is None or environment_identity(now) == parts.environment:
            return []
        before = self.recorded(context)
        if before is None:
            return ["package changed: the environment differs from the recorded one"]
        old = {canonical_name(d.name): d for d in before.distributions}
        new = {canonical_name(d.name): d for d in now.distributions}
        out = []
        for n in sorted(old.keys() & new.keys()):
            a, b = old[n], new[n]
            if a.version != b.version:
                out.append(f"package changed: {n} {a.version} -> {b.version}")
                continue
            pa, pb = distribution_pin(a), distribution_pin(b)
            if pa[2] != pb[2]:
                out.append(f"package changed: {n} {b.version} (installed from {_origin(a)}, now from {_origin(b)})")
            elif pa[3] != pb[3]:
                out.append(f"package changed: {n} {b.version} (installed again with other files, from {_origin(b)})")
        out += [f"package changed: {n} {new[n].version} installed" for n in sorted(new.keys() - old.keys())]
        out += [f"package changed: {n} {old[n].version} removed" for n in sorted(old.keys() - new.keys())]
        if before.python.version != now.python.version:
            out.insert(0, f"package changed: Python {before.python.version} -> {now.python.version}")
        return out or ["package changed: the environment differs from the recorded one"]


def _origin(d: Distribution) -> str:
    u = d.direct_url
    if u is None:
        return "an index"
    if u.vcs:
        return f"{u.url}@{u.commit_id or u.requested_revision or '?'}"
    return f"{u.url} (editable)" if u.editable else u.url


def stale_tasks(store: Store, run_id: str) -> list[TaskStatus]:
    """Each task run of ``run_id`` (final attempts, in start order) with whether it is stale now."""
    from ..recorder._dag import upstream_map

    run: Run = store.load_run(store.resolve_run_id(run_id), with_context=False)
    tasks = run.final_tasks()
    upstream = upstream_map(run)
    envs = _Environments(store)
    rows: dict[str, TaskStatus] = {}
    for task in tasks:
        parts = task.cache
        row = TaskStatus(task.task_run_id, task.task_name, task.state, parts is not None, False)
        if parts is not None:
            undeclared = {r.uri: r.sha256 or r.kind for r in task.inputs if r.undeclared}
            row.reasons = (_input_reasons(parts, undeclared) + _code_reasons(parts) + _default_reasons(parts)
                           + envs.reasons(parts, task.context))
        rows[task.task_run_id] = row
    for task in tasks:  # start order: an upstream task is judged before its consumers
        row = rows[task.task_run_id]
        if not row.cached:
            continue
        srcs = sorted({s for ids in upstream.get(task.task_run_id, {}).values() for s in ids})
        for src in srcs:
            up = rows.get(src)
            if up is not None and up.stale:
                row.reasons.append(f"upstream task stale: {up.task_name}")
        row.stale = bool(row.reasons)
    return [rows[t.task_run_id] for t in tasks]


__all__ = ["TaskStatus", "stale_tasks"]
