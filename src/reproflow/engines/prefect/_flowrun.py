"""A Prefect flow run as a reproflow run: where its tasks belong, when it starts and ends.

The process that runs the flow records it: the first ``@repro_task`` called, submitted or mapped
inside it writes ``run.json`` (with the flow's typed parameters and the process context), and adds
reproflow's end hook to the flow so ``end.json``, the index entry and the Prefect UI artifacts are
written when the flow run ends. Workers (threads, processes, Dask) only write their own task records.
A subflow's tasks are recorded in the run of the top-level flow run that called it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...recorder._runs import _forked, _lock, _started, finish_run, get_store, log, note_run_began, start_run
from ...records import ErrorInfo, RunStatus
from ...store import Store
from ...values._scrub import scrub_text

_pid = os.getpid()


def _forked_places() -> None:
    global _pid
    if os.getpid() != _pid:
        _pid = os.getpid()
        _places.clear()
        _places_by_id.clear()


@dataclass(frozen=True)
class FlowPlace:
    """Where a Prefect flow run belongs in reproflow's records."""

    run_id: str  #: the recorded run: the top-level flow run's id
    subflow: str | None = None  #: the subflow's name, when the flow run is a subflow
    subflow_run_id: str | None = None  #: the subflow's own flow-run id


#: flow-run id -> its place, for subflows seen in this process (their tasks may run on threads
#: whose context no longer reaches the parent flow's)
_places: dict[str, FlowPlace] = {}
#: the same places by the flow-run id as Prefect gives it (a UUID): every task run asks, and
#: the id's text costs more than the lookup (issue 16)
_places_by_id: dict[Any, FlowPlace] = {}


def _parent_context(ctx: Any) -> Any:
    """The in-process parent of a subflow's FlowRunContext, or None.

    Prefect enters a subflow's context over its parent's, in the same context variable, and
    keeps the token of that ``set``: its ``old_value`` is the context the subflow was called
    from. A context sent to another process (``detached``) reaches no parent.
    """
    from prefect.context import FlowRunContext

    if ctx.flow_run is None or not _is_subflow(ctx.flow_run) or getattr(ctx, "detached", False):
        return None
    old = getattr(getattr(ctx, "_token", None), "old_value", None)
    if (isinstance(old, FlowRunContext) and old.flow_run is not None and old.flow is not None
            and old.flow_run.id != ctx.flow_run.id and not getattr(old, "detached", False)):
        return old
    return None


def root_context(ctx: Any) -> Any:
    """The top-level flow run's context above ``ctx`` in this process (``ctx`` itself if none)."""
    seen = 0
    while seen < 64:  # a guard against a cycle that Prefect never makes
        parent = _parent_context(ctx)
        if parent is None:
            return ctx
        ctx, seen = parent, seen + 1
    return ctx


def place_of(flow_run_id: str) -> FlowPlace:
    """The recorded run (and subflow) a Prefect flow run's tasks belong to.

    A subflow's tasks are recorded in the run of the top-level flow run that called it, with the
    subflow's name; every other flow run is its own run.
    """
    _forked_places()
    hit = _places.get(flow_run_id)
    if hit is not None:
        return hit
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is not None and ctx.flow_run is not None and str(ctx.flow_run.id) == flow_run_id:
        return _place_of_context(ctx)
    return FlowPlace(flow_run_id)


def place_for(flow_run_id: Any) -> FlowPlace:
    """:func:`place_of` for a flow-run id as Prefect gives it (a UUID)."""
    _forked_places()
    hit = _places_by_id.get(flow_run_id)
    if hit is not None:
        return hit
    key = str(flow_run_id)
    place = place_of(key)
    with _lock:
        if _places.get(key) is place:  # known for good (until the run ends): remembered by id too
            _places_by_id[flow_run_id] = place
    return place


def _place_of_context(ctx: Any) -> FlowPlace:
    flow_run_id = str(ctx.flow_run.id)
    hit = _places.get(flow_run_id)
    if hit is not None:
        return hit
    name = ctx.flow.name if ctx.flow is not None else None
    if getattr(ctx, "detached", False):
        place = _place_from_api(ctx.flow_run, name)  # a worker: the parent ran in another process
    else:
        root = root_context(ctx)
        # a top-level flow run is its own run (remembered too: each of its tasks asks)
        place = FlowPlace(flow_run_id) if root is ctx else FlowPlace(str(root.flow_run.id), name, flow_run_id)
    with _lock:
        _places[flow_run_id] = place
    return place


def _is_subflow(flow_run: Any) -> bool:
    """Called from a flow run (``run_deployment`` children run apart: they are runs of their own)."""
    return flow_run.parent_task_run_id is not None and getattr(flow_run, "deployment_id", None) is None


def _place_from_api(flow_run: Any, name: str | None) -> FlowPlace:
    """A subflow's top-level flow run, asked of Prefect's API (on a task runner's worker process,
    where the flow's context arrived serialized and reaches no parent): one or two reads per
    subflow run and process, then cached."""
    flow_run_id = str(flow_run.id)
    if not _is_subflow(flow_run):
        return FlowPlace(flow_run_id)
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            current = flow_run
            for _ in range(64):
                parent_task = client.read_task_run(current.parent_task_run_id)
                if parent_task.flow_run_id is None:
                    break
                current = client.read_flow_run(parent_task.flow_run_id)
                if not _is_subflow(current):
                    break
    except Exception as exc:  # noqa: BLE001 - recording never breaks the user's task
        log.warning("reproflow: could not find the flow run that called subflow %s (%s): its tasks are "
                    "recorded as a run of their own", flow_run_id, exc)
        return FlowPlace(flow_run_id)
    if str(current.id) == flow_run_id:
        return FlowPlace(flow_run_id)
    return FlowPlace(str(current.id), name, flow_run_id)


def ensure_prefect_run(store: Store, seed: int | None) -> str | None:
    """In the process running a Prefect flow, record the run once. Returns the run id.

    Inside a subflow, the run is the top-level flow run's: its flow, typed parameters and end
    hooks, so that replaying it re-runs the whole (and the subflow's tasks land in it).
    """
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return None
    _forked()
    _forked_places()
    place = _place_of_context(ctx)
    run_id = place.run_id
    with _lock:
        if run_id in _started:
            return run_id
        _started[run_id] = store.url  # claim before the slow part: other threads skip
    top = root_context(ctx) if place.subflow is not None else ctx
    flow = top.flow
    _note_began(run_id, top)
    try:
        start_run(
            store,
            run_id=run_id,
            flow_name=flow.name,
            flow_run_name=top.flow_run.name,
            fn=flow.fn,
            parameters=dict(top.parameters or {}),
            engine="prefect",
            seed=seed,
        )
    except BaseException:
        with _lock:
            _started.pop(run_id, None)
        raise
    _attach_end_hooks(flow)
    return run_id


def _note_began(run_id: str, ctx: Any) -> None:
    """When the flow run's context was entered (before its body ran): the files its body writes
    before a task reads them are the run's own (``DataRef.written_in_run``)."""
    try:
        note_run_began(run_id, int(ctx.start_time.timestamp() * 1_000_000_000))
    except (AttributeError, TypeError, ValueError, OverflowError):  # an older Prefect: the run's record time
        pass


class _HookChatter(logging.Filter):
    """Prefect logs "Running hook '…'" and "Hook '…' finished running successfully" at INFO for
    every flow hook, into the console and the flow run's logs in the UI; for reproflow's own end
    hook (bookkeeping the user never wrote) those two lines become DEBUG. Its errors stay."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self._quoted = tuple(f"ook {n!r}" for n in names)  # "Running hook '_flow_end_hook' ..."

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not isinstance(record.msg, str):
            return True
        msg = record.msg
        if not any(q in msg for q in self._quoted) or not (msg.startswith("Running hook") or msg.endswith("finished running successfully")):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_hook_filter: _HookChatter | None = None


def _quiet_hook_logs() -> None:
    global _hook_filter
    if _hook_filter is None:
        _hook_filter = _HookChatter((_flow_end_hook.__name__,))
        logging.getLogger("prefect.flow_runs").addFilter(_hook_filter)


def _attach_end_hooks(flow: Any) -> None:
    _quiet_hook_logs()
    for attr in ("on_completion_hooks", "on_failure_hooks", "on_crashed_hooks", "on_cancellation_hooks"):
        hooks = getattr(flow, attr, None)
        if isinstance(hooks, list) and _flow_end_hook not in hooks:
            hooks.append(_flow_end_hook)


def _status_of(state: Any) -> RunStatus:
    if state.is_completed():
        return "COMPLETED"
    if state.is_crashed():
        return "CRASHED"
    if state.is_cancelled() or state.is_cancelling():
        return "CANCELLED"
    return "FAILED"


def _flow_end_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect flow hook: write end.json, the index entry and the UI artifacts.

    Unless artifacts are published in the hook (``REPROFLOW_ARTIFACTS=sync``), all of it happens
    on a background thread after the flow returns: the run's last task records, its end and its
    artifacts, in that order. Readers of the store in this process, a subprocess it starts and
    the interpreter's exit wait for it (``store._writer.finishing``); the flow's caller does not."""
    run_id = str(flow_run.id)
    with _lock:
        url = _started.pop(run_id, None)
        if url is not None:
            for key in [k for k, v in _places.items() if v.run_id == run_id]:
                del _places[key]
            for key in [k for k, v in _places_by_id.items() if v.run_id == run_id]:
                del _places_by_id[key]
    if url is None:
        return  # this flow run recorded nothing through reproflow (or another process did)
    store = get_store(url)
    error = None
    if not state.is_completed():
        error = ErrorInfo(type=f"prefect.{state.type.value}", message=scrub_text(state.message or state.name or ""))
    status = _status_of(state)
    modules = list(sys.modules)  # what the run imported, as it ends (its end is written later)
    from ._artifacts import end_in_background, publish_mode, publish_or_warn

    mode = publish_mode()
    if mode == "sync":
        _finish(store, run_id, status, error, modules)
        publish_or_warn(store, run_id)  # the engine's client, still open in this hook
    else:
        end_in_background(store, run_id, finish=lambda: _finish(store, run_id, status, error, modules),
                          publish=mode == "background", returned=_returned(run_id))


def _returned(run_id: str) -> Callable[[], bool] | None:
    """Whether the flow call running this end hook is over; None where the hook runs outside
    that run's context.

    Prefect calls the hook inside the flow run's context and leaves it a few milliseconds later
    (``ContextModel.__exit__`` clears a context's token). Then the run's engine (the object whose
    ``call_hooks`` called this hook) logs the final state and ends its run (10-40 ms of a 100-task
    flow here): its ``_is_started`` turns False last, as the call returns. Where no such engine is
    found on the stack (another Prefect), the context's exit is the end."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    run = getattr(ctx, "flow_run", None)
    if run is None or str(getattr(run, "id", "")) != run_id or getattr(ctx, "_token", None) is None:
        return None
    engine = None
    frame = sys._getframe(2)  # the hook's caller: the engine's call_hooks
    for _ in range(8):
        if frame is None:
            break
        this = frame.f_locals.get("self")
        if getattr(this, "_is_started", None) is True and str(getattr(getattr(this, "flow_run", None), "id", "")) == run_id:
            engine = this
            break
        frame = frame.f_back
    del frame
    if engine is None:
        return lambda: ctx._token is None
    return lambda: ctx._token is None and not engine._is_started


def _finish(store: Store, run_id: str, status: RunStatus, error: ErrorInfo | None, modules: list[str]) -> None:
    """Every task record of the run lands before its end record, then the end."""
    from ...store._writer import writer

    for exc in writer().flush():
        log.error("reproflow: run %s may be missing a record: %s", run_id, exc)
    finish_run(store, run_id, status, error, modules=modules)


__all__ = ["FlowPlace", "ensure_prefect_run", "place_of", "root_context"]
