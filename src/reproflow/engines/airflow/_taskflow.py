"""Airflow 3 adapter: TaskFlow tasks recorded into one reproflow run per DAG run.

``@repro_task`` stands where ``@task`` stood (every ``@task`` option passes through); each task
instance's body records one :class:`~reproflow.records.TaskRecord` per try, on whichever worker
and in whichever process Airflow runs it. The reproflow run is derived from the DAG run's identity
(``dag_id`` + ``run_id``), so every task instance of one DAG run joins the same run without
talking to the others: the first one to start writes ``run.json``, the rest find it.

Edges come from the DAG itself: each argument's XCom references (``XComArg`` in ``op_args``,
``op_kwargs`` and a mapped task's ``expand`` input) name the upstream tasks that fed it; a mapped
upstream feeds a reducing task with every map index, and a task mapped over a mapped upstream with
the same map index. Upstream tasks that fed no argument are ``wait_for`` edges, as in Prefect.

:func:`close_run` is a DAG-level ``on_success_callback`` / ``on_failure_callback``: Airflow calls
it once when the DAG run ends (in the DAG processor, or in ``airflow dags test``'s process), and it
writes the run's ``end.json`` and index entry.

This module imports no other engine, and no Airflow module until a task runs.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

log = logging.getLogger("reproflow")

F = TypeVar("F", bound=Callable[..., Any])

#: the reproflow option names beside Airflow's ``@task`` options
_OWN = ("inputs", "outputs", "store", "seed", "strict", "store_inputs", "store_results", "check")


def repro_task(python_callable: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Airflow's ``@task`` that records every try of the task instance into the DAG run's run.

    Use it bare (``@repro_task``) or with arguments; reproflow's own options (``inputs``,
    ``outputs``, ``store``, ``seed``, ``strict``, ``store_inputs``, ``store_results``, ``check``,
    as for Prefect's ``@repro_task``) are taken out, every other option (``task_id``, ``retries``,
    ``multiple_outputs``, ...) goes to ``airflow.sdk.task``.
    """
    own = {k: options.pop(k) for k in _OWN if k in options}

    def decorate(fn: Callable[..., Any]) -> Any:
        from airflow.sdk import task

        return task(**options)(recorded(fn, **own))

    if python_callable is not None:
        return decorate(python_callable)
    return decorate


def recorded(
    fn: F | None = None,
    *,
    inputs: Iterable[str] | None = None,
    outputs: Iterable[str] | None = None,
    store: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    strict: bool | None = None,
    store_inputs: bool | None = None,
    store_results: bool = False,
    check: bool = True,
) -> Any:
    """The recording wrapper alone, for stacking under another Airflow decorator
    (``@task.virtualenv``, ``@task.docker``, ... wherever reproflow is installed)::

        @task(retries=2)
        @recorded(inputs=["raw"])
        def clean(raw: str) -> str: ...

    Outside a running Airflow task the function runs as it is, unrecorded.
    """

    def decorate(func: F) -> F:
        spec = _spec(func, inputs=inputs, outputs=outputs, store=store, seed=seed, strict=strict,
                     store_inputs=store_inputs, store_results=store_results, check=check)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = _materialized(args), {k: _materialized_one(v) for k, v in kwargs.items()}
            rec = _attempt_or_none(spec, args, kwargs)
            return func(*args, **kwargs) if rec is None else rec.call(func, args, kwargs)

        wrapper._rf_spec = spec  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    if fn is not None:
        return decorate(fn)
    return decorate


def _spec(fn: Callable[..., Any], **opts: Any) -> Any:
    from ...recorder._attempt import RecordOptions, task_spec

    store = opts["store"]
    return task_spec(fn, inputs=opts["inputs"], outputs=opts["outputs"], opts=RecordOptions(
        store=os.fspath(store) if store is not None else None, seed=opts["seed"], strict=opts["strict"],
        store_inputs=opts["store_inputs"], store_results=opts["store_results"], check=opts["check"]))


# ----------------------------------------------------------------------------- identities


def run_id_of(dag_id: str, dag_run_id: str) -> str:
    """The reproflow run id of an Airflow DAG run: the same in every process that asks."""
    from ...recorder._join import shared_run_id

    return shared_run_id("airflow", dag_id, dag_run_id)


def task_run_id_of(run_id: str, task_id: str, map_index: int) -> str:
    """The reproflow task-run id of a task instance (all its tries share it)."""
    return str(uuid.uuid5(uuid.UUID(run_id), f"{task_id}\0{map_index}"))


# ----------------------------------------------------------------------------- one attempt


def _attempt_or_none(spec: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The recorder of this try, or None outside an Airflow task (the body then runs unrecorded).
    A failure to find the run or the edges is logged and the task runs unrecorded: recording never
    breaks the user's task."""
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
    except (ImportError, RuntimeError):
        return None
    try:
        return _attempt(spec, context, args, kwargs)
    except Exception as exc:  # noqa: BLE001 - recording never breaks the user's task
        log.warning("reproflow: task %s is not recorded: %s: %s", getattr(spec.fn, "__name__", spec.fn),
                    type(exc).__name__, exc)
        return None


def _attempt(spec: Any, context: Mapping[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from ...recorder._runs import get_store
    from ...recorder._attempt import _Attempt

    ti = context["ti"]
    dag = ti.task.dag
    store = get_store(spec.opts.store)
    run_id = _join(store, context)
    map_index = int(ti.map_index) if ti.map_index is not None else -1
    bound = spec.signature.bind_partial(*args, **kwargs)
    upstream = upstream_of(dag, ti.task_id, map_index, run_id, spec.signature, dict(bound.arguments),
                           sorted(ti.task.upstream_task_ids))
    return _Attempt(
        spec,
        args,
        kwargs,
        run_id=run_id,
        task_run_id=task_run_id_of(run_id, ti.task_id, map_index),
        attempt=max(int(ti.try_number or 1), 1),
        task_name=ti.task_id,
        task_key=f"{ti.dag_id}.{ti.task_id}",
        upstream=upstream,
        engine="airflow",
        tags=sorted(getattr(dag, "tags", None) or []),
        map_index=map_index if map_index >= 0 else None,
        engine_info={"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id,
                     "map_index": map_index, "try_number": int(ti.try_number or 1)},
    )


def _join(store: Any, context: Mapping[str, Any]) -> str:
    """Join (or open, for the first task instance anywhere) the DAG run's reproflow run. The run
    holds no lease: the task's process ends long before the DAG run does (close_run ends it)."""
    from ...recorder._join import open_shared_run

    ti = context["ti"]
    params = context.get("params") or {}
    return open_shared_run(
        run_id_of(ti.dag_id, ti.run_id),
        name=ti.dag_id,
        engine="airflow",
        store=store,
        engine_info={"dag_id": ti.dag_id, "run_id": ti.run_id},
        parameters={str(k): v for k, v in dict(params).items()},
        entry_file=getattr(ti.task.dag, "fileloc", None),
        lease=False,
    )


# ----------------------------------------------------------------------------- edges


def upstream_of(dag: Any, task_id: str, map_index: int, run_id: str, signature: inspect.Signature,
                params: Mapping[str, Any], dependencies: Sequence[str]) -> dict[str, list[str]]:
    """``param -> upstream task-run ids`` of one task instance, from the DAG's XCom references.

    ``params`` are the values the body receives (a reduce over a mapped upstream receives all its
    map indexes); ``dependencies`` are the task's upstream task ids: those that fed no argument
    become ``wait_for``.
    """
    from airflow.sdk.definitions.xcom_arg import XComArg

    task = dag.task_dict[task_id]
    op_args, op_kwargs, expanded = _declared_arguments(task)
    try:
        bound = signature.bind_partial(*op_args, **op_kwargs).arguments
    except TypeError:
        bound = dict(op_kwargs)
    edges: dict[str, list[str]] = {}
    fed: set[str] = set()
    for name, value in {**bound, **expanded}.items():
        ids: list[str] = []
        for op, _key in XComArg.iter_xcom_references(value):
            fed.add(op.task_id)
            if not _is_mapped(op):
                ids.append(task_run_id_of(run_id, op.task_id, -1))
            elif name in expanded and map_index >= 0:
                ids.append(task_run_id_of(run_id, op.task_id, map_index))
            else:
                ids += [task_run_id_of(run_id, op.task_id, i) for i in range(_width(params.get(name)))]
        if ids:
            edges[name] = sorted(set(ids))
    wait = [task_run_id_of(run_id, other, -1) for other in dependencies
            if other not in fed and not _is_mapped(dag.task_dict.get(other))]
    if wait:
        edges["wait_for"] = sorted(wait)
    return edges


def _declared_arguments(task: Any) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """A TaskFlow task's arguments as written in the DAG: positional, keyword, and expanded."""
    partial = getattr(task, "partial_kwargs", None)
    if isinstance(partial, dict):  # a mapped task: .partial(...).expand(...)
        expand = task._get_specified_expand_input()
        value = getattr(expand, "value", None)
        return list(partial.get("op_args") or []), dict(partial.get("op_kwargs") or {}), dict(value) if isinstance(value, dict) else {}
    return list(getattr(task, "op_args", None) or []), dict(getattr(task, "op_kwargs", None) or {}), {}


def _is_mapped(op: Any) -> bool:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    return isinstance(op, MappedOperator)


def _width(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 0


# ----------------------------------------------------------------------------- values


def _materialized_one(value: Any) -> Any:
    """A lazy XCom sequence (a reduce over a mapped task) as the list it stands for, so it is
    recorded and hashed as its values (a list, as the Prefect version of the task receives)."""
    if type(value).__name__ == "LazyXComSequence" and isinstance(value, Sequence):
        return list(value)
    return value


def _materialized(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_materialized_one(a) for a in args)


# ----------------------------------------------------------------------------- the run's end


def close_run(context: Mapping[str, Any] | None = None, *, store: str | os.PathLike[str] | None = None) -> Any:
    """DAG-level callback that writes the run's end when the DAG run ends::

        @dag(on_success_callback=close_run, on_failure_callback=close_run)

    ``close_run(store="s3://bucket/runs")`` gives the callback for a store other than the default
    (``$REPROFLOW_STORE``, else ``./.reproflow``). A DAG run that recorded nothing is left alone.
    """
    if context is None:
        return functools.partial(_close, store=store)
    return _close(context, store=store)


def _close(context: Mapping[str, Any], *, store: str | os.PathLike[str] | None = None) -> None:
    from ...recorder._join import close_shared_run
    from ...recorder._runs import get_store
    from ...values._scrub import scrub_text
    from ...records import ErrorInfo

    dag_run = context["dag_run"]
    the_store = get_store(store)
    run_id = run_id_of(dag_run.dag_id, dag_run.run_id)
    if not the_store.fs.exists(the_store.path("runs", run_id, "run.json")):
        return
    state = str(getattr(dag_run.state, "value", dag_run.state) or "").lower()
    if state == "success":
        close_shared_run(run_id, "COMPLETED", store=the_store)
    else:
        reason = scrub_text(str(context.get("reason") or f"the DAG run ended {state or 'without a state'}"))
        close_shared_run(run_id, "FAILED", store=the_store,
                         error=ErrorInfo(type=f"airflow.{state or 'failed'}", message=reason[:2000]))


__all__ = ["close_run", "recorded", "repro_task", "run_id_of", "task_run_id_of", "upstream_of"]
