"""recorder._callee: what a task's callable runs, named and bound for the record, for every
kind of callable a pipeline makes a task from."""

from __future__ import annotations

import functools
import inspect

import pytest

from reproflow.recorder._attempt import bind_arguments, task_spec
from reproflow.recorder._callee import callee


def scale(factor: int, x: int, *, offset: int = 0) -> int:
    return factor * x + offset


class Model:
    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, x: int) -> int:
        return x + self.k

    def fit(self, x: int) -> int:
        return x * self.k

    @classmethod
    def make(cls, k: int) -> "Model":
        return cls(k)

    @staticmethod
    def helper(x: int) -> int:
        return x


class Named:
    """A decorator class that takes its function's name (functools.update_wrapper)."""

    def __init__(self, fn):  # type: ignore[no-untyped-def]
        functools.update_wrapper(self, fn)
        self.fn = fn

    def __call__(self, *args):  # type: ignore[no-untyped-def]
        return self.fn(*args)


@Named
def named(x: int) -> int:
    return x


@functools.cache
def cached(x: int) -> int:
    return x


M = f"{__name__}"


@pytest.mark.parametrize(("fn", "function"), [
    (scale, f"{M}:scale"),
    (functools.partial(scale, 3), f"{M}:scale"),
    (functools.partial(functools.partial(scale, offset=1), 2), f"{M}:scale"),
    (Model.make, f"{M}:Model.make"),
    (Model.helper, f"{M}:Model.helper"),
    (cached, f"{M}:cached"),
    (named, f"{M}:named"),
    (Model, f"{M}:Model"),
    (len, "builtins:len"),
    # the object's state is not in the record: a name to read, not to call
    (Model(2), f"?{M}:Model.__call__"),
    (Model(2).fit, f"?{M}:Model.fit"),
    (functools.partial(Model(2).fit), f"?{M}:Model.fit"),
])
def test_each_kind_of_callable_is_named_by_the_code_it_runs(fn, function) -> None:  # type: ignore[no-untyped-def]
    assert task_spec(fn).function == function
    assert "0x" not in function  # never an address, which differs every run


def test_a_partial_s_fixed_arguments_are_bound_with_the_call_s() -> None:
    """The partial's own arguments come first (nested partials flattened as calling them does),
    keywords of the call win over the partial's, and defaults are applied."""
    spec = task_spec(functools.partial(functools.partial(scale, 3), offset=1))
    assert bind_arguments(spec, (5,), {}) == {"factor": 3, "x": 5, "offset": 1}
    assert bind_arguments(spec, (5,), {"offset": 7}) == {"factor": 3, "x": 5, "offset": 7}
    spec = task_spec(functools.partial(scale, x=4))
    assert bind_arguments(spec, (2,), {}) == {"factor": 2, "x": 4, "offset": 0}
    assert str(spec.signature) == str(inspect.signature(functools.partial(scale, x=4)))  # what Prefect binds


def test_the_code_behind_a_callable_is_its_function() -> None:
    """The file, syntax-tree digest and static checks are of the code that runs."""
    assert callee(functools.partial(scale, 3)).code is scale
    assert callee(Model(2)).code is Model.__call__
    assert callee(Model(2).fit).code is Model.fit
    obj = Model(2)
    assert callee(obj).instance is obj and callee(functools.partial(scale, 1)).instance is None
