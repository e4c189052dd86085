"""What a task's callable runs when it is not a plain function.

``repro_task`` takes any callable, as Prefect's ``task`` does, and pipelines make tasks from more
than functions: ``repro_task(functools.partial(scale, 3))`` (one function, several tasks with
different fixed arguments), ``repro_task(Model(cfg))`` (a callable object), ``repro_task(m.fit)``
(a bound method). A record names the code a task ran (``module:qualname``, its file, its
syntax-tree digest for the content cache) and the arguments it ran with, so for each of these:

* **a partial** names the function it wraps, and the arguments it fixes are the task's
  arguments as much as the call's: they are bound with the call's against the function's own
  signature, recorded and hashed with them, and so a replay of the task alone calls the
  function with all of them (``reproflow replay --task``), and a changed fixed argument changes
  the content cache key;
* **a callable object or a bound method** names its class's method (``Model.__call__``,
  ``Model.fit``) with ``?`` first: the object's state (what ``__init__`` was given, what earlier
  calls changed) is not in the record, so the name is one to read, not one to call: a replay
  of the whole run builds the object again by running the flow, a replay of the task alone is
  refused with that reason. The object itself is part of the content cache key (its stable hash,
  or no caching where it has none).

Before this, a partial's record named ``functools:functools.partial(<function scale at 0x...>, 3)``
(a memory address: differing every run) and a callable object's its ``repr``, and ``reproflow
replay`` refused the whole record as damaged.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

#: a parameter without a default, in ``_Spec.plain_params``
_NOT_SET: Any = object()

#: the mark, first in a recorded ``module:qualname``, of a name that cannot be called by itself
#: (a method of an object whose state the record does not hold; no module known)
UNCALLABLE = "?"


@dataclass(frozen=True)
class Callee:
    """The code behind a task's callable, and what the callable fixes before the call."""

    #: the function (or class) whose code runs: its file, digest and static checks are the task's
    code: Any
    #: ``module:qualname`` of ``code``; :data:`UNCALLABLE` first where calling it by that name
    #: would not run the task (see the module's text)
    function: str
    #: a partial's function's own signature, with the positional and keyword arguments the
    #: partial fixes (nested partials flattened), or None
    partial: Optional[tuple[inspect.Signature, tuple[Any, ...], dict[str, Any]]] = None
    #: the object a callable object or bound method calls with (its state is the task's), or None
    instance: Any = field(default=None, compare=False)


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None) or UNCALLABLE}:{getattr(obj, '__qualname__', None) or type(obj).__qualname__}"


def callee(fn: Callable[..., Any]) -> Callee:
    """What ``fn`` runs when a task calls it: see the module's text."""
    target: Any = fn
    args: tuple[Any, ...] = ()
    keywords: dict[str, Any] = {}
    while isinstance(target, functools.partial):  # partial(partial(f, a), b)(x) is f(a, b, x)
        args = target.args + args
        keywords = {**target.keywords, **keywords}
        target = target.func
    partial = None
    if target is not fn:
        try:
            partial = (inspect.signature(target), args, keywords)
        except (TypeError, ValueError):  # a builtin without a signature: the call's own names only
            partial = None
    named = None  # what the record names, where it is not the code itself
    if inspect.ismethod(target) and not isinstance(target.__self__, type):
        code, instance, callable_by_name = target.__func__, target.__self__, False  # bound to an object
    elif inspect.isroutine(target) or inspect.isclass(target):
        code, instance, callable_by_name = target, None, True  # a function, a class, a classmethod
    elif getattr(target, "__wrapped__", None) is not None and hasattr(target, "__qualname__"):
        # a function wrapped by an object that took its name (functools.cache, a decorator class
        # using functools.update_wrapper): the module's attribute of that name is this object
        code, instance, callable_by_name, named = inspect.unwrap(target), None, True, target
    else:  # a callable object: its class's __call__ runs, with the object's state
        call = getattr(type(target), "__call__", None)
        code = call if inspect.isfunction(call) else type(target)
        instance, callable_by_name = target, False
    function = _name(code if named is None else named)
    if target is not fn and partial is None:
        callable_by_name = False  # the fixed arguments could not be named: calling the name misses them
    if not callable_by_name and not function.startswith(UNCALLABLE):
        function = UNCALLABLE + function
    return Callee(code=code, function=function, partial=partial, instance=instance)


def _plain_params(signature: inspect.Signature) -> tuple[tuple[str, Any], ...] | None:
    out = []
    for p in signature.parameters.values():
        if p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
            return None
        out.append((p.name, _NOT_SET if p.default is inspect.Parameter.empty else p.default))
    return tuple(out)


def bind_arguments(spec: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``signature.bind_partial(*args, **kwargs)`` with ``apply_defaults()``: its arguments in
    signature order. Plain parameters are bound here, once per task run: ``inspect`` costs
    10-20 µs a call (issue 16); anything else (``*args``, keyword-only, an unknown keyword, too
    many arguments) goes to ``inspect``, which also raises its errors. ``spec``: a
    ``recorder._attempt._Spec`` (its ``plain_params``, ``callee`` and ``signature``)."""
    plain = spec.plain_params
    partial = spec.callee.partial if spec.callee is not None else None
    if partial is not None:  # the partial's fixed arguments are the task's too, bound with the call's
        signature, fixed, keywords = partial
        bound = signature.bind_partial(*fixed, *args, **{**keywords, **kwargs})
        bound.apply_defaults()
        return dict(bound.arguments)
    if plain is not None and len(args) <= len(plain):
        out: dict[str, Any] = {}
        for (name, _), value in zip(plain, args):
            out[name] = value
        used = 0
        for name, default in plain[len(args):]:
            if name in kwargs:
                out[name] = kwargs[name]
                used += 1
            elif default is not _NOT_SET:
                out[name] = default
        if used == len(kwargs):  # no keyword was unknown or given twice
            return out
    bound = spec.signature.bind_partial(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)
