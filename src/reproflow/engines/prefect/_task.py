"""``@repro_task``: Prefect's ``@task`` that records the provenance of every task run.

The decorator builds a :class:`ReproTask`, a ``prefect.Task`` whose ``fn`` is a thin wrapper
around the user's function (async for async functions, a generator for generators, so Prefect
sees the same kind). The wrapper runs once per attempt, inside Prefect's task engine, on
whatever worker the task runner chose, and writes one :class:`~reproflow.records.TaskRecord`
per attempt. The task key is derived from the user's function, not the wrapper, so same-named
tasks in two modules never collide.

Outside any flow the same task runs as plain Python (no Prefect engine, no API server) and
records under a fresh run id, or under the run opened by :func:`reproflow.record`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, overload

from prefect.context import TaskRunContext
from prefect.tasks import Task, _generate_task_key

from ... import errors
from ...recorder._declare import is_data_value
from ...recorder._runs import env_seed, get_store, owns_run, source_file
from ._flowrun import FlowPlace, ensure_prefect_run, place_for, place_of
from ...store._writer import writer
from ...values._valuehash import hash_or_reason
from ...recorder._attempt import (
    task_spec,
    RecordOptions,
    _Attempt,
    _content_parts,
    _Spec,
)
from ...records import MapRecord, TaskRecord, utcnow

try:  # Python 3.11+
    from typing import ParamSpec
except ImportError:  # pragma: no cover
    from typing_extensions import ParamSpec

P = ParamSpec("P")
R = TypeVar("R")

def _prefect_attempt(spec: _Spec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Attempt | None:
    """The attempt for the current Prefect task run, or None when not inside one."""
    ctx = TaskRunContext.get()
    if ctx is None or getattr(ctx.task, "_rf_spec", None) is not spec:
        return None
    task_run = ctx.task_run
    place = place_for(task_run.flow_run_id) if task_run.flow_run_id else FlowPlace(f"adhoc-{task_run.id}")
    run_id = place.run_id
    if task_run.flow_run_id is None:
        _ensure_adhoc_run(spec, run_id)
    upstream: dict[str, list[str]] = {}
    for param, refs in (task_run.task_inputs or {}).items():
        ids = [str(r.id) for r in refs if getattr(r, "input_type", None) == "task_run"]
        if ids:
            upstream[param] = sorted(set(ids))
    return _Attempt(
        spec,
        args,
        kwargs,
        run_id=run_id,
        task_run_id=str(task_run.id),
        attempt=max(int(task_run.run_count or 1), 1),
        task_name=ctx.task.name,
        task_key=ctx.task.task_key,
        upstream=upstream,
        engine="prefect",
        tags=sorted(task_run.tags or []),
        subflow=place.subflow,
        subflow_run_id=place.subflow_run_id,
        defer_write=True,  # the flow end hook waits for the writer before end.json
    )


_adhoc_started: set[str] = set()


def _ensure_adhoc_run(spec: _Spec, run_id: str) -> None:
    """A Prefect task run outside any flow run gets a run of its own."""
    if run_id in _adhoc_started:
        return
    _adhoc_started.add(run_id)
    from ...recorder._runs import finish_run, start_run

    store = get_store(spec.opts.store)
    start_run(store, run_id=run_id, flow_name=_name_of(spec.fn), flow_run_name=None, fn=spec.code,
              parameters={}, engine="prefect", seed=spec.opts.seed)
    import atexit

    atexit.register(lambda: finish_run(store, run_id, "COMPLETED"))


def _make_wrapper(spec: _Spec) -> Callable[..., Any]:
    """The function Prefect's task calls: the user's function in an attempt, its signature
    stated (``__signature__``). Prefect asks ``inspect.signature(task.fn)`` three or four times a
    task run (the map's defaults and keyword collapse, the call's binding, the wrapper's own
    signature); without it each ask unwraps the ``functools.wraps`` chain and builds the
    signature again, 5 us, with it 0.4-0.9 us: the same ``Signature`` ``inspect`` would find by
    unwrapping (issue 16)."""
    wrapper = _wrapper_for(spec)
    wrapper.__signature__ = spec.signature  # type: ignore[attr-defined]
    if not hasattr(spec.fn, "__name__"):
        wrapper.__name__ = wrapper.__qualname__ = _name_of(spec.fn)
    return wrapper


def _name_of(fn: Any) -> str:
    """A task function's name; a partial's, a callable object's is its type's, as Prefect names one."""
    return getattr(fn, "__name__", None) or type(fn).__name__


def _wrapper_for(spec: _Spec) -> Callable[..., Any]:
    fn = spec.fn
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
            rec = _prefect_attempt(spec, args, kwargs)
            if rec is None:
                async for item in fn(*args, **kwargs):
                    yield item
                return
            await asyncio.to_thread(rec.begin, watch=False)
            rec.watch(steps=True)  # the body's opens, step by step, where it runs (not the consumer's)
            agen = fn(*args, **kwargs)
            sent: Any = None
            thrown: BaseException | None = None
            try:
                while True:
                    with rec.step():
                        try:
                            if thrown is not None:
                                exc, thrown = thrown, None
                                item = await agen.athrow(exc)
                            else:
                                item = await agen.asend(sent)
                        except StopAsyncIteration:
                            break
                    try:
                        sent = yield item
                    except GeneratorExit:
                        with rec.step():
                            await agen.aclose()
                        raise
                    except BaseException as exc:  # thrown into the wrapper: into the body
                        thrown = exc
            except BaseException as exc:
                await rec.failure_async(exc)
                raise
            await asyncio.to_thread(rec.success, None, has_result=False)

        return agen_wrapper

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            rec = _prefect_attempt(spec, args, kwargs)
            if rec is None:
                return await fn(*args, **kwargs)
            await asyncio.to_thread(rec.begin, watch=False)
            rec.watch()  # in this asyncio task's context, where the body runs
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                rec.unwatch()
                await rec.failure_async(exc)
                raise
            rec.unwatch()
            await asyncio.to_thread(rec.success, result)
            return result

        return async_wrapper

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            rec = _prefect_attempt(spec, args, kwargs)
            if rec is None:
                return (yield from fn(*args, **kwargs))
            rec.begin(watch=False)
            rec.watch(steps=True)  # the body's opens, step by step (not the consumer's between items)
            try:
                value = yield from _stepped(rec, fn(*args, **kwargs))
            except BaseException as exc:
                rec.failure(exc)
                raise
            rec.success(None, has_result=False)
            return value

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        rec = _prefect_attempt(spec, args, kwargs)
        return fn(*args, **kwargs) if rec is None else rec.call(fn, args, kwargs)

    return wrapper


def _stepped(rec: _Attempt, gen: Any) -> Any:
    """``yield from gen``, each step of ``gen`` (sent values and thrown exceptions forwarded) in
    ``rec.step()``: the consumer's code between two items is not the task's."""
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        with rec.step():
            try:
                if thrown is not None:
                    exc, thrown = thrown, None
                    item = gen.throw(exc)
                else:
                    item = gen.send(sent)
            except StopIteration as stop:
                return stop.value
        try:
            sent = yield item
        except GeneratorExit:
            with rec.step():
                gen.close()
            raise
        except BaseException as exc:  # thrown into the wrapper: into the body
            thrown = exc


def _may_hit_cache(task: Task[Any, Any]) -> bool:
    """Whether a run of ``task`` in the current context can be a cache hit."""
    from prefect.cache_policies import NO_CACHE

    if task.cache_policy in (None, NO_CACHE):
        return False
    if task.persist_result is not None:
        return bool(task.persist_result)
    from prefect.results import should_persist_result

    return should_persist_result()


def _cache_hook(task: Any, task_run: Any, state: Any) -> None:
    """on_completion hook: a cache hit skips the body, so record it here (state CACHED)."""
    spec: _Spec | None = getattr(task, "_rf_spec", None)
    if spec is None or getattr(state, "name", None) != "Cached" or task_run.flow_run_id is None:
        return
    from ...capture import get_context

    store = get_store(spec.opts.store)
    digest, _ = get_context(store, entry_file=source_file(spec.code))
    result_hash: str | None = None
    unhashable: str | None = None
    try:
        result_hash, unhashable = hash_or_reason(state.result(raise_on_failure=False))
    except Exception:  # noqa: BLE001 - a result that cannot be loaded is simply not hashed
        result_hash, unhashable = None, "the cached result (it could not be loaded)"
    now = utcnow()
    place = place_of(str(task_run.flow_run_id))
    fields: dict[str, Any] = {"parameters_hash": f"cache-key:{task_run.cache_key}"}
    if _content_parts(str(task_run.id)) is not None:
        from ...recorder._content import reused_fields

        fields.update(reused_fields(store, task_run))
    store.write_task(
        TaskRecord(
            run_id=place.run_id,
            subflow=place.subflow,
            subflow_run_id=place.subflow_run_id,
            task_run_id=str(task_run.id),
            attempt=max(int(task_run.run_count or 1), 1),
            task_name=task.name,
            task_key=task.task_key,
            function=spec.function,
            state="CACHED",
            started_at=now,
            ended_at=now,
            duration_s=0.0,
            result_hash=result_hash,
            result_unhashable=unhashable,
            context=digest,
            engine="prefect",
            **fields,
        )
    )


# ----------------------------------------------------------------------------- the Task subclass

_PARAM_TO_ATTR = {
    "on_completion": "on_completion_hooks",
    "on_failure": "on_failure_hooks",
    "on_running": "on_running_hooks",
    "on_rollback": "on_rollback_hooks",
    "on_commit": "on_commit_hooks",
    "persist_result": "_user_persist_result",
    "cache_policy": "_user_cache_policy",
}


class ReproTask(Task[P, R], Generic[P, R]):
    """A ``prefect.Task`` that records provenance. Build it with :func:`repro_task`."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        inputs: Iterable[str] | None = None,
        outputs: Iterable[str] | None = None,
        record_options: RecordOptions | None = None,
        **task_kwargs: Any,
    ) -> None:
        spec = task_spec(fn, inputs=inputs, outputs=outputs, opts=record_options)
        hooks = [h for h in (task_kwargs.pop("on_completion", None) or []) if h is not _cache_hook]
        super().__init__(fn=_make_wrapper(spec), on_completion=hooks, **task_kwargs)
        self._rf_spec = spec
        # Prefect derives the key from fn's code: use the user's function, not our wrapper.
        self.task_key = _generate_task_key(fn)
        # Decoration happens at import, well before the first task run: warm the capture's lazy
        # imports (detect-secrets, psutil) in a daemon thread now, once per process.
        from ...capture import prefetch

        prefetch()

    @property
    def user_fn(self) -> Callable[P, R]:
        """The decorated function itself."""
        return self._rf_spec.fn

    # Prefect returns a plain Task from with_options; keep recording.
    def with_options(self, **options: Any) -> ReproTask[P, R]:  # type: ignore[override]
        spec = self._rf_spec
        rf = {k: options.pop(k) for k in ("inputs", "outputs", "store", "seed", "strict", "store_inputs", "store_results", "check") if k in options}
        plain = Task.with_options(self, **options)
        init_kwargs: dict[str, Any] = {}
        for param in inspect.signature(Task.__init__).parameters:
            if param in ("self", "fn"):
                continue
            init_kwargs[param] = getattr(plain, _PARAM_TO_ATTR.get(param, param))
        init_kwargs["on_completion"] = [h for h in init_kwargs.get("on_completion") or [] if h is not _cache_hook]
        opts = spec.opts
        new_opts = RecordOptions(
            store=rf.get("store", opts.store),
            seed=rf.get("seed", opts.seed),
            strict=rf.get("strict", opts.strict),
            store_inputs=rf.get("store_inputs", opts.store_inputs),
            store_results=rf.get("store_results", opts.store_results),
            check=rf.get("check", opts.check),
        )
        inputs = rf.get("inputs", _declared(spec, "inputs"))
        outputs = rf.get("outputs", _declared(spec, "outputs"))
        return ReproTask(spec.fn, inputs=inputs, outputs=outputs, record_options=new_opts, **init_kwargs)

    # The process that runs the flow records the run before its first task starts.
    def _rf_prepare(self) -> None:
        ensure_prefect_run(get_store(self._rf_spec.opts.store), self._rf_spec.opts.seed or env_seed())
        # A cache hit skips the body, so only an on_completion hook can record it. Prefect logs
        # two INFO lines per hook call (console and API), so the hook is attached only while a
        # cache hit is possible: a cache policy and persisted results (task, flow or setting).
        hooks = self.on_completion_hooks
        if _may_hit_cache(self):
            if _cache_hook not in hooks:
                hooks.append(_cache_hook)
        elif _cache_hook in hooks:
            hooks.remove(_cache_hook)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from prefect.context import FlowRunContext, TaskRunContext

        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            from ...recorder._plain import call_plain

            return call_plain(self, args, kwargs)
        self._rf_prepare()
        return super().__call__(*args, **kwargs)

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        self._rf_prepare()
        return super().submit(*args, **kwargs)

    def map(self, *args: Any, **kwargs: Any) -> Any:
        self._rf_prepare()
        futures = super().map(*args, **kwargs)
        _record_map(self, futures)
        return futures


def _record_map(task: ReproTask[Any, Any], futures: Any) -> None:
    """Write the map call's task-run ids in order: Prefect keeps no map index on a task run."""
    from prefect.context import FlowRunContext, TaskRunContext

    flow_ctx, task_ctx = FlowRunContext.get(), TaskRunContext.get()
    if flow_ctx is not None and flow_ctx.flow_run is not None:
        run_id = place_of(str(flow_ctx.flow_run.id)).run_id
    elif task_ctx is not None and task_ctx.task_run.flow_run_id is not None:
        run_id = place_of(str(task_ctx.task_run.flow_run_id)).run_id
    else:
        return
    ids = [str(f.task_run_id) for f in futures]
    if not ids:
        return
    store = get_store(task._rf_spec.opts.store)
    record = MapRecord(run_id=run_id, map_id=uuid.uuid4().hex, task_name=task.name, task_key=task.task_key, task_run_ids=ids)
    if not store.strict and owns_run(run_id):
        writer().submit(store.write_map, record)
    else:
        store.write_map(record)


def _declared(spec: _Spec, which: str) -> list[str]:
    """Explicitly declared names (Annotated markers are re-read from the signature)."""
    return sorted(getattr(spec.decl, which))


@overload
def repro_task(__fn: Callable[P, R]) -> ReproTask[P, R]: ...


@overload
def repro_task(
    __fn: None = None,
    *,
    inputs: Iterable[str] | None = None,
    outputs: Iterable[str] | None = None,
    store: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    strict: bool | None = None,
    store_inputs: bool | None = None,
    store_results: bool = False,
    check: bool = True,
    cache: Any = None,
    **task_options: Any,
) -> Callable[[Callable[P, R]], ReproTask[P, R]]: ...


def repro_task(
    __fn: Callable[P, R] | None = None,
    *,
    inputs: Iterable[str] | None = None,
    outputs: Iterable[str] | None = None,
    store: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    strict: bool | None = None,
    store_inputs: bool | None = None,
    store_results: bool = False,
    check: bool = True,
    cache: Any = None,
    **task_options: Any,
) -> ReproTask[P, R] | Callable[[Callable[P, R]], ReproTask[P, R]]:
    """Prefect's ``@task`` that records every task run's provenance.

    Use it bare (``@repro_task``) or with arguments; every ``prefect.task`` option (``name``,
    ``retries``, ``cache_policy``, ``tags``, ...) passes through unchanged.

    Args:
        inputs: parameter names that are data inputs (paths or fsspec URLs), hashed before the run.
        outputs: parameter names the task writes, and/or ``"return"``; hashed after the run.
        store: the store URL for this task's records (default ``$REPROFLOW_STORE`` or ``./.reproflow``).
        seed: seed Python's ``random``, numpy, torch, ... before each attempt, and record it.
        strict: fail the task before it runs if static checks find problems or the git tree is dirty.
        store_inputs: also store a copy of each input in the store, for replay elsewhere.
        store_results: also store the pickled return value (for partial replays).
        check: run the static reproducibility checks on the task's code (once per process).
        cache: ``True`` for ``reproflow.CONTENT`` (keyed by input content, parameters, code and the
            environment), or any Prefect cache policy; the same as ``cache_policy=``.
        **task_options: any ``prefect.task`` option.
    """
    if cache is not None and cache is not False:
        if "cache_policy" in task_options:
            raise errors.DeclarationError("@repro_task(cache=..., cache_policy=...): pass one of them, not both")
        if cache is True:
            from ._cache import CONTENT

            cache = CONTENT
        task_options["cache_policy"] = cache
    opts = RecordOptions(
        store=os.fspath(store) if store is not None else None,
        seed=seed,
        strict=strict,
        store_inputs=store_inputs,
        store_results=store_results,
        check=check,
    )

    def decorate(fn: Callable[P, R]) -> ReproTask[P, R]:
        return ReproTask(fn, inputs=inputs, outputs=outputs, record_options=opts, **task_options)

    if __fn is not None:
        return decorate(__fn)
    return decorate



__all__ = ["RecordOptions", "ReproTask", "repro_task"]

# `is_data_value` is re-exported for the plain engine
_ = is_data_value
