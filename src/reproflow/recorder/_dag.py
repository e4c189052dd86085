"""The DAG of a run: Prefect's recorded edges, completed by matching content hashes.

Prefect's ``task_inputs`` miss some edges (flow parameters, small cached ints, values computed in
the flow body from a task's result). A parameter whose stable hash equals an earlier task's
return-value hash, or an input file whose SHA-256 equals an earlier task's output, consumed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..records import Run, TaskRecord


@dataclass(frozen=True)
class Edge:
    src: str  #: upstream task_run_id
    dst: str  #: downstream task_run_id
    via: str  #: parameter name
    how: str  #: "prefect" (recorded by Prefect), "value" or "data" (matched by content)


def _trivial_hash(task: TaskRecord, param: str) -> bool:
    value = task.parameters.get(param)
    return value is None or isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) < 8)


def edges(run: Run) -> list[Edge]:
    """Every edge of the run's DAG, recorded and inferred, without duplicates."""
    return task_edges(run.final_tasks())


def task_edges(tasks: list[TaskRecord]) -> list[Edge]:
    """:func:`edges` of a run's final task records, in start order."""
    out: dict[tuple[str, str, str], Edge] = {}
    for t in tasks:
        for param, srcs in t.upstream.items():
            for s in srcs:
                out.setdefault((s, t.task_run_id, param), Edge(s, t.task_run_id, param, "prefect"))
    results: dict[str, str] = {}
    outputs: dict[str, str] = {}  #: sha256 -> the first task that wrote it
    written: dict[tuple[str, str], str] = {}  #: (uri, sha256) -> the last task that wrote it there
    for t in tasks:  # start order: a producer always starts before its consumer
        for param, digest in t.parameter_hashes.items():
            src = results.get(digest)
            if src and src != t.task_run_id and not _trivial_hash(t, param):
                out.setdefault((src, t.task_run_id, param), Edge(src, t.task_run_id, param, "value"))
        for ref in t.inputs:
            if not ref.sha256:
                continue
            # the task that wrote these bytes at this very path, else the first that wrote them
            # anywhere (two tasks writing equal bytes to two files: each reader gets its own)
            src = written.get((ref.uri, ref.sha256)) or outputs.get(ref.sha256)
            if src and src != t.task_run_id and ref.param:
                out.setdefault((src, t.task_run_id, ref.param), Edge(src, t.task_run_id, ref.param, "data"))
        if t.result_hash and t.result is not None and not isinstance(t.result, (bool, int, float)):
            results.setdefault(t.result_hash, t.task_run_id)
        for ref in t.outputs:
            if ref.sha256:
                outputs.setdefault(ref.sha256, t.task_run_id)
                written[(ref.uri, ref.sha256)] = t.task_run_id
    return sorted(out.values(), key=lambda e: (e.dst, e.via, e.src))


def reachable(links: Mapping[str, Iterable[str]], start: Iterable[str]) -> set[str]:
    """The task runs reached from ``start`` along ``links`` (task_run_id -> the next ones: each
    run's downstream runs, or its upstream ones), one step or more."""
    seen: set[str] = set()
    stack = [nxt for tid in start for nxt in links.get(tid, ())]
    while stack:
        cur = stack.pop()
        if cur not in seen:
            seen.add(cur)
            stack += links.get(cur, ())
    return seen


def upstream_map(run: Run) -> dict[str, dict[str, list[str]]]:
    """task_run_id -> {param: [upstream task_run_ids]} including inferred edges."""
    result: dict[str, dict[str, list[str]]] = {}
    for e in edges(run):
        result.setdefault(e.dst, {}).setdefault(e.via, []).append(e.src)
    return result


def task_label(task: TaskRecord) -> str:
    """A task run as a user names it: ``name``, or ``name[i]`` for a mapped run, after
    ``subflow/`` for a run inside a subflow."""
    return (f"{task.subflow}/" if task.subflow else "") + task.task_name + (
        f"[{task.map_index}]" if task.map_index is not None else "")


def _ranges(indexes: list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``0-2,5,7-8``."""
    parts: list[str] = []
    start = prev = None
    for i in sorted(set(indexes)):
        if prev is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = i
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)


def upstream_labels(run: Run) -> dict[str, list[str]]:
    """task_run_id -> ``["param←name", "param←name[0-11]", ...]``: each parameter's upstream task
    runs by name, a mapped task's runs folded into index ranges (ids would all share their
    time-ordered first characters)."""
    tasks = {t.task_run_id: t for t in run.final_tasks()}
    grouped: dict[str, dict[tuple[str, str], list[int]]] = {}
    for e in edges(run):
        src = tasks.get(e.src)
        name = ((f"{src.subflow}/" if src.subflow else "") + src.task_name) if src is not None else e.src
        indexes = grouped.setdefault(e.dst, {}).setdefault((e.via, name), [])
        if src is not None and src.map_index is not None:
            indexes.append(src.map_index)
    return {
        dst: [f"{via}←{name}" + (f"[{_ranges(idx)}]" if idx else "") for (via, name), idx in sorted(by.items())]
        for dst, by in grouped.items()
    }


__all__ = ["Edge", "edges", "task_label", "upstream_labels", "upstream_map"]
