"""``@repro_task`` where Prefect is not installed: the same decorator, recording plain Python calls.

``pip install reproflow`` (no extras) brings no engine. ``from reproflow import repro_task`` then
gives this decorator: each call runs the function in this process and records one attempt (with
retries honoured) under the run opened by :func:`reproflow.record`, the run named by
``$REPROFLOW_RUN_ID`` (``reproflow record -- CMD``), or a one-task run of its own. The options
are the recording ones of the Prefect decorator plus ``name``, ``retries``,
``retry_delay_seconds`` and ``tags``; Prefect-only options are refused with the fix.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from .. import errors
from ._attempt import RecordOptions, task_spec

try:  # Python 3.11+
    from typing import ParamSpec
except ImportError:  # pragma: no cover
    from typing_extensions import ParamSpec

P = ParamSpec("P")
R = TypeVar("R")


class PlainTask(Generic[P, R]):
    """A recorded function, called as plain Python (see the module's docstring)."""

    def __init__(self, fn: Callable[P, R], *, inputs: Iterable[str] | None = None, outputs: Iterable[str] | None = None,
                 record_options: RecordOptions | None = None, name: str | None = None, retries: int = 0,
                 retry_delay_seconds: float | list[float] = 0, tags: Iterable[str] = ()) -> None:
        self._rf_spec = task_spec(fn, inputs=inputs, outputs=outputs, opts=record_options)
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "task")
        self.task_key = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', self.name)}"
        self.retries = int(retries or 0)
        self.retry_delay_seconds = retry_delay_seconds
        self.tags = set(tags)
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    @property
    def user_fn(self) -> Callable[P, R]:
        """The decorated function itself."""
        return self._rf_spec.fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        from ._plain import call_plain

        return call_plain(self, args, kwargs)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"PlainTask({self.name})"


_PREFECT_ONLY = ("cache_policy", "cache_key_fn", "persist_result", "result_storage", "task_run_name", "log_prints",
                 "timeout_seconds", "on_completion", "on_failure", "cache_expiration", "refresh_cache")


def plain_task(
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
    name: str | None = None,
    retries: int = 0,
    retry_delay_seconds: float | list[float] = 0,
    tags: Iterable[str] = (),
    **engine_options: Any,
) -> Any:
    """``@repro_task`` without Prefect: records every call of the function (see the module)."""
    if engine_options:
        names = ", ".join(sorted(engine_options))
        known = [n for n in engine_options if n in _PREFECT_ONLY]
        why = "Prefect task options" if known else "not options of @repro_task"
        raise errors.DeclarationError(
            f"@repro_task({names}): {why}, and Prefect is not installed here; "
            "install it with `pip install 'reproflow[prefect]'` or drop them")
    opts = RecordOptions(store=os.fspath(store) if store is not None else None, seed=seed, strict=strict,
                         store_inputs=store_inputs, store_results=store_results, check=check)

    def decorate(fn: Callable[P, R]) -> PlainTask[P, R]:
        return PlainTask(fn, inputs=inputs, outputs=outputs, record_options=opts, name=name, retries=retries,
                         retry_delay_seconds=retry_delay_seconds, tags=tags)

    return decorate(__fn) if __fn is not None else decorate


__all__ = ["PlainTask", "plain_task"]
