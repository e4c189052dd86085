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
import logging
import os
import pickle
import tarfile
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from prefect.tasks import Task, _generate_task_key

from . import errors
from ._declare import RETURN, Declaration, declare, is_data_value, iter_data_values
from ._hashing import changed_in_tree, hash_path, is_local, local_path, stat_signature
from ._redact import remember_url_secrets
from ._scrub import scrub_json, scrub_mapping, scrub_text
from ._urls import strip_credentials
from ._run import (STORE_INPUTS_ENV, STRICT_ENV, FlowPlace, ensure_prefect_run, env_flag, env_seed, get_store, owns_run,
                   place_of, source_file)
from ._writer import writer
from ._values import hash_mapping, stable_hash, to_typed_json
from ._valuehash import hash_or_reason, type_name
from .records import DataRef, ErrorInfo, Finding, MapRecord, TaskRecord, utcnow
from .store import Store, canonical_json

try:  # Python 3.11+
    from typing import ParamSpec
except ImportError:  # pragma: no cover
    from typing_extensions import ParamSpec

P = ParamSpec("P")
R = TypeVar("R")

#: Typed JSON of a return value is kept in the record only below this size.
MAX_INLINE_JSON = 16 * 1024
_NOT_SET: Any = object()


@dataclass(frozen=True)
class RecordOptions:
    """reproflow's own options, beside Prefect's."""

    store: str | None = None
    seed: int | None = None
    strict: bool | None = None
    store_inputs: bool | None = None
    store_results: bool = False
    check: bool = True


@dataclass(frozen=True)
class _Spec:
    fn: Callable[..., Any]
    decl: Declaration
    opts: RecordOptions
    signature: inspect.Signature
    function: str  #: module:qualname


_findings_cache: dict[Any, list[Finding]] = {}
_findings_lock = threading.Lock()


def _findings_for(fn: Callable[..., Any]) -> list[Finding]:
    """Static findings for a task function, computed once per function per process."""
    key = getattr(fn, "__code__", fn)
    with _findings_lock:
        hit = _findings_cache.get(key)
    if hit is not None:
        return hit
    from .checks import check_function

    found = list(check_function(fn))
    with _findings_lock:
        _findings_cache[key] = found
    return found


# ----------------------------------------------------------------------------- the recorder


class _Attempt:
    """Records one attempt of one task run: inputs before the body, the rest after."""

    def __init__(
        self,
        spec: _Spec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        run_id: str,
        task_run_id: str,
        attempt: int,
        task_name: str,
        task_key: str,
        upstream: dict[str, list[str]],
        engine: str,
        tags: Iterable[str] = (),
        map_index: int | None = None,
        subflow: str | None = None,
        subflow_run_id: str | None = None,
    ) -> None:
        self.spec = spec
        self.args, self.kwargs = args, kwargs
        self.run_id, self.task_run_id, self.attempt = run_id, task_run_id, attempt
        self.task_name, self.task_key = task_name, task_key
        self.upstream, self.engine = upstream, engine
        self.tags, self.map_index = list(tags), map_index
        self.subflow, self.subflow_run_id = subflow, subflow_run_id
        self.store: Store = get_store(spec.opts.store)

    # ------------------------------------------------------------------ before
    def begin(self) -> None:
        from .capture import get_context

        spec = self.spec
        self.started_at = utcnow()
        self.t0 = time.perf_counter()
        bound = spec.signature.bind_partial(*self.args, **self.kwargs)
        bound.apply_defaults()
        params = dict(bound.arguments)
        var_kw = spec.decl.var_kw
        if var_kw and isinstance(params.get(var_kw), dict):
            params.update(params.pop(var_kw))
        self.params = params
        self.context_digest, context = get_context(self.store, entry_file=source_file(spec.fn))
        self.findings = _findings_for(spec.fn) if spec.opts.check else []
        strict = spec.opts.strict if spec.opts.strict is not None else env_flag(STRICT_ENV)
        self.seed = spec.opts.seed if spec.opts.seed is not None else env_seed()
        self.inputs: list[DataRef] = []
        self._pending_out: list[tuple[str, Any, bool]] = []  # (param, value, declared)
        self._watch: list[tuple[str, Any, Any]] = []  # inferred inputs: (param, value, stat)
        store_inputs = spec.opts.store_inputs if spec.opts.store_inputs is not None else env_flag(STORE_INPUTS_ENV)
        for name, value in params.items():
            is_in, is_out = name in spec.decl.inputs, name in spec.decl.outputs
            for item in iter_data_values(value, declared=is_in or is_out):
                if is_out:
                    self._pending_out.append((name, item, True))
                    continue
                ref = self._hash(item, name, declared=is_in)
                if ref.kind == "missing" and not is_in:
                    self._pending_out.append((name, item, False))  # a path the task will create
                    continue
                if store_inputs and ref.kind in ("file", "directory"):
                    ref.stored_blob = self._store_copy(ref)
                self.inputs.append(ref)
                if not is_in:
                    self._watch.append((name, item, stat_signature(_uri(item))))
        if strict:
            problems = [f"{f.code} {f.message} ({f.path}:{f.line})" for f in self.findings if f.severity != "info"]
            if context.git.available and context.git.dirty:
                problems.insert(0, "the git working tree is dirty (commit or stash your changes)")
            if problems:
                exc = errors.StrictModeViolation(
                    f"strict mode stopped task {self.task_name!r} before it ran: {problems[0]}"
                    + (f" (and {len(problems) - 1} more; see `reproflow check`)" if len(problems) > 1 else "")
                )
                self.failure(exc)  # the refusal is part of the run's history too
                raise exc
        if self.seed is not None:
            from ._seeds import apply_seed

            apply_seed(self.seed)

    def _hash(self, value: Any, param: str, *, declared: bool) -> DataRef:
        uri = _uri(value)
        if "://" in uri:  # its credentials are secrets wherever a message quotes them, in any encoding
            remember_url_secrets(uri)
        try:
            ref = hash_path(uri)
        except Exception as exc:  # noqa: BLE001 - recording never breaks the user's task
            # e.g. a presigned URL (s3://b/k?X-Amz-Signature=...) fsspec cannot open, a backend
            # without credentials here: recorded as unhashed, with the reason, and the task runs
            reason = scrub_text(f"{type(exc).__name__}: {exc}")[:500]
            ref = DataRef(uri=strip_credentials(uri), kind="unhashed", reason=reason)
        if "://" in ref.uri:  # a URL that could be hashed (a presigned one whose store is reachable
            ref.uri = strip_credentials(ref.uri)  # here) keeps no signature or password either
        ref.param, ref.declared = param, declared
        return ref

    def _store_copy(self, ref: DataRef) -> str | None:
        if ref.kind == "file" and ref.sha256:
            return self.store.put_blob_file(ref.uri, ref.sha256)
        if ref.kind == "directory":
            with tempfile.TemporaryDirectory() as tmp:
                tar_path = os.path.join(tmp, "dir.tar")
                _deterministic_tar(ref.uri, tar_path)
                return self.store.put_blob_file(tar_path)
        return None

    # ------------------------------------------------------------------ after
    def success(self, result: Any, *, has_result: bool = True) -> None:
        outputs = self._collect_outputs(result if has_result else None)
        result_hash, unhashable = hash_or_reason(result) if has_result else (None, None)
        inline = None
        if has_result:
            typed = to_typed_json(result)
            if len(canonical_json(typed)) <= MAX_INLINE_JSON:
                inline = scrub_json(typed, self.store.fingerprint)
        result_blob = None
        if has_result and self.spec.opts.store_results:
            import cloudpickle

            try:
                result_blob = self.store.put_blob(cloudpickle.dumps(result))
            except (pickle.PicklingError, TypeError, AttributeError):
                result_blob = None
        self._write("COMPLETED", outputs=outputs, result_hash=result_hash, result_unhashable=unhashable, result=inline,
                    result_blob=result_blob)

    def failure(self, exc: BaseException) -> None:
        outputs = self._collect_outputs(None)
        self._typed_params()  # secrets found by key in the parameters are scrubbed from the error too
        error = ErrorInfo(
            type=f"{type(exc).__module__}.{type(exc).__qualname__}",
            message=scrub_text(str(exc))[:2000],
            traceback=scrub_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))[-8000:],
        )
        self._write("FAILED", outputs=outputs, error=error)

    def _collect_outputs(self, result: Any) -> list[DataRef]:
        outputs: list[DataRef] = []
        for name, item, declared in self._pending_out:
            ref = self._hash(item, name, declared=declared)
            if ref.kind != "missing" or declared:
                outputs.append(ref)
        returned: list[DataRef] = []
        if result is not None:
            declared = RETURN in self.spec.decl.outputs
            for item in iter_data_values(result, declared=declared):
                returned.append(self._hash(item, RETURN, declared=declared))
        named = {os.path.normpath(r.uri) for r in returned if is_local(r.uri)}
        for name, item, before in self._watch:  # inferred inputs changed in place are outputs too
            if before is None:
                continue
            after = stat_signature(_uri(item))
            if after == before:
                continue
            outputs += [r for r in self._written_into(name, item, before, after)
                        if os.path.normpath(r.uri) not in named]
        return outputs + returned

    def _written_into(self, name: str, item: Any, before: Any, after: Any) -> list[DataRef]:
        """What the task changed in an inferred input: the files it wrote into (or removed
        from) a folder, each its own output, so the task's verdict compares what this task
        wrote and not the whole folder, which other tasks fill too; else the path itself."""
        changed = changed_in_tree(before, after)
        if changed is None:
            return [self._hash(item, name, declared=False)]
        root = os.path.abspath(local_path(os.fspath(_uri(item))))
        written, removed = changed
        refs = [self._hash(os.path.join(root, *rel.split("/")), name, declared=False) for rel in written]
        refs += [DataRef(uri=os.path.join(root, *rel.split("/")), kind="missing", param=name) for rel in removed]
        return refs

    def _typed_params(self) -> dict[str, Any]:
        """The parameters as typed JSON, secrets redacted (computed once per attempt)."""
        cached: dict[str, Any] | None = getattr(self, "_typed", None)
        if cached is not None:
            return cached
        typed: dict[str, Any] = {}
        for k, v in self.params.items():
            enc = to_typed_json(v)
            if len(canonical_json(enc)) > MAX_INLINE_JSON:
                enc = {"__rf__": "opaque", "type": type_name(type(v)), "hash": stable_hash(v), "repr": "too large to inline"}
            typed[k] = enc
        self._typed = scrub_mapping(typed, self.store.fingerprint)
        return self._typed

    def _write(self, state: str, **fields: Any) -> None:
        ended = utcnow()
        try:  # the shared libraries mapped now, when the task loaded some (numpy imported inside it)
            from .capture import context_at_task_end

            self.context_digest = context_at_task_end(self.store, self.context_digest)
        except Exception as exc:  # noqa: BLE001 - recording never breaks the user's task
            logging.getLogger("reproflow").debug("system libraries not captured again: %r", exc)
        typed = self._typed_params()
        per, combined = hash_mapping(self.params)
        record = TaskRecord(
            run_id=self.run_id,
            task_run_id=self.task_run_id,
            attempt=self.attempt,
            task_name=self.task_name,
            task_key=self.task_key,
            function=self.spec.function,
            function_file=source_file(self.spec.fn),
            state=state,  # type: ignore[arg-type]
            started_at=self.started_at,
            ended_at=ended,
            duration_s=time.perf_counter() - self.t0,
            parameters=typed,
            parameter_hashes=per,
            parameters_hash=combined,
            inputs=self.inputs,
            upstream=self.upstream,
            context=self.context_digest,
            seed=self.seed,
            findings=self.findings,
            tags=self.tags,
            engine=self.engine,  # type: ignore[arg-type]
            map_index=self.map_index,
            subflow=self.subflow,
            subflow_run_id=self.subflow_run_id,
            cache=_content_parts(self.task_run_id),
            **fields,
        )
        if record.cache is not None:
            from ._incremental import remember_origin

            remember_origin(self.store, record)
        if self.engine == "prefect" and not self.store.strict and owns_run(self.run_id):
            writer().submit(self.store.write_task, record)  # waited for before the run's end
        else:
            self.store.write_task(record)


def _uri(value: Any) -> str:
    if isinstance(value, os.PathLike):
        return os.path.abspath(os.fspath(value))
    if isinstance(value, str) and is_local(value):
        return os.path.abspath(local_path(value))
    return str(value)


def _deterministic_tar(src_dir: str, tar_path: str) -> None:
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(src_dir):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                if not os.path.isfile(full):
                    continue
                info = tar.gettarinfo(full, arcname=os.path.relpath(full, src_dir).replace(os.sep, "/"))
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(full, "rb") as fh:
                    tar.addfile(info, fh)


# ----------------------------------------------------------------------------- Prefect side


def _prefect_attempt(spec: _Spec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Attempt | None:
    """The attempt for the current Prefect task run, or None when not inside one."""
    from prefect.context import TaskRunContext

    ctx = TaskRunContext.get()
    if ctx is None or getattr(ctx.task, "_rf_spec", None) is not spec:
        return None
    task_run = ctx.task_run
    place = place_of(str(task_run.flow_run_id)) if task_run.flow_run_id else FlowPlace(f"adhoc-{task_run.id}")
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
    )


_adhoc_started: set[str] = set()


def _ensure_adhoc_run(spec: _Spec, run_id: str) -> None:
    """A Prefect task run outside any flow run gets a run of its own."""
    if run_id in _adhoc_started:
        return
    _adhoc_started.add(run_id)
    from ._run import finish_run, start_run

    store = get_store(spec.opts.store)
    start_run(store, run_id=run_id, flow_name=spec.fn.__name__, flow_run_name=None, fn=spec.fn,
              parameters={}, engine="prefect", seed=spec.opts.seed)
    import atexit

    atexit.register(lambda: finish_run(store, run_id, "COMPLETED"))


def _make_wrapper(spec: _Spec) -> Callable[..., Any]:
    fn = spec.fn
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
            rec = _prefect_attempt(spec, args, kwargs)
            if rec is None:
                async for item in fn(*args, **kwargs):
                    yield item
                return
            await asyncio.to_thread(rec.begin)
            try:
                async for item in fn(*args, **kwargs):
                    yield item
            except BaseException as exc:
                await asyncio.to_thread(rec.failure, exc)
                raise
            await asyncio.to_thread(rec.success, None, has_result=False)

        return agen_wrapper

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            rec = _prefect_attempt(spec, args, kwargs)
            if rec is None:
                return await fn(*args, **kwargs)
            await asyncio.to_thread(rec.begin)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                await asyncio.to_thread(rec.failure, exc)
                raise
            await asyncio.to_thread(rec.success, result)
            return result

        return async_wrapper

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            rec = _prefect_attempt(spec, args, kwargs)
            if rec is None:
                return (yield from fn(*args, **kwargs))
            rec.begin()
            try:
                value = yield from fn(*args, **kwargs)
            except BaseException as exc:
                rec.failure(exc)
                raise
            rec.success(None, has_result=False)
            return value

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        rec = _prefect_attempt(spec, args, kwargs)
        if rec is None:
            return fn(*args, **kwargs)
        rec.begin()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            rec.failure(exc)
            raise
        rec.success(result)
        return result

    return wrapper


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
    from .capture import get_context

    store = get_store(spec.opts.store)
    digest, _ = get_context(store, entry_file=source_file(spec.fn))
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
        from ._incremental import reused_fields

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


def _content_parts(task_run_id: str) -> Any:
    """The ``reproflow.CONTENT`` key parts of this task run, if that policy computed them."""
    import sys

    module = sys.modules.get("reproflow._incremental")  # loaded only when the policy is used
    return None if module is None else module.take(task_run_id)


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
        if not callable(fn):
            raise errors.DeclarationError(f"@repro_task needs a function, got {fn!r}")
        opts = record_options or RecordOptions()
        if opts.seed is not None:
            from ._seeds import validate_seed

            validate_seed(opts.seed, "@repro_task(seed=...)")
        spec = _Spec(
            fn=fn,
            decl=declare(fn, inputs, outputs),
            opts=opts,
            signature=inspect.signature(fn),
            function=f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}",
        )
        hooks = [h for h in (task_kwargs.pop("on_completion", None) or []) if h is not _cache_hook]
        super().__init__(fn=_make_wrapper(spec), on_completion=hooks, **task_kwargs)
        self._rf_spec = spec
        # Prefect derives the key from fn's code: use the user's function, not our wrapper.
        self.task_key = _generate_task_key(fn)
        # Decoration happens at import, well before the first task run: warm the capture's lazy
        # imports (detect-secrets, psutil) in a daemon thread now, once per process.
        from .capture import prefetch

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
            from ._plain import call_plain

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
        **task_options: any ``prefect.task`` option.
    """
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


def new_task_run_id() -> str:
    return str(uuid.uuid4())


__all__ = ["RecordOptions", "ReproTask", "repro_task"]

# `is_data_value` is re-exported for the plain engine
_ = is_data_value
