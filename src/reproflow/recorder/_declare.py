"""Input/output declarations: ``inputs=``/``outputs=`` names and ``Annotated`` markers.

Declared names are checked when decorating (a typo fails at import, not mid-run). Undeclared
values are inferred: ``os.PathLike`` arguments and returned paths, and strings that are fsspec
URLs (``s3://...``), one level into lists, tuples and dicts.
"""

from __future__ import annotations

import inspect
import os
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..capture._files import abspath, is_local, local_path
from ..values._urls import looks_like_data_url
from ..errors import DeclarationError


class _Marker:
    def __init__(self, role: str) -> None:
        self.role = role

    def __repr__(self) -> str:
        return f"reproflow.{self.role.capitalize()}"


#: ``Annotated[Path, Input]``: this parameter is a data input, hashed before the task runs.
Input = _Marker("input")
#: ``Annotated[Path, Output]``: this parameter (or the return value) is written by the task.
Output = _Marker("output")

RETURN = "return"


@dataclass(frozen=True)
class Declaration:
    """What a task's signature says about its data."""

    inputs: frozenset[str] = frozenset()
    outputs: frozenset[str] = frozenset()  #: parameter names, and "return"
    params: tuple[str, ...] = ()
    var_kw: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _markers(annotation: Any) -> set[str]:
    roles: set[str] = set()
    if typing.get_origin(annotation) is typing.Annotated:
        for meta in typing.get_args(annotation)[1:]:
            if isinstance(meta, _Marker):
                roles.add(meta.role)
    return roles


def declare(fn: Callable[..., Any], inputs: Iterable[str] | None, outputs: Iterable[str] | None) -> Declaration:
    """Read a function's declarations and check that every declared name is a parameter."""
    sig = inspect.signature(fn)
    names = tuple(sig.parameters)
    var_kw = next((p.name for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD), None)
    declared_in = set(_as_names(inputs, "inputs"))
    declared_out = set(_as_names(outputs, "outputs"))
    for label, given in (("inputs", declared_in), ("outputs", declared_out)):
        unknown = sorted(n for n in given if n not in names and n != RETURN)
        if unknown and var_kw is None:
            raise DeclarationError(
                f"@repro_task({label}=...) on {fn.__qualname__} names {', '.join(map(repr, unknown))}, "
                f"which {'is not a parameter' if len(unknown) == 1 else 'are not parameters'}; "
                f"parameters are: {', '.join(names) or '(none)'}"
                + (" (use 'return' for the return value)" if label == "outputs" else "")
            )
    if RETURN in declared_in:
        raise DeclarationError(f"@repro_task(inputs=...) on {fn.__qualname__}: 'return' can only be an output")
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable forward refs: fall back to raw annotations
        hints = {k: p.annotation for k, p in sig.parameters.items()}
        hints["return"] = sig.return_annotation
    for name, annotation in hints.items():
        roles = _markers(annotation)
        if "input" in roles:
            if name == RETURN:
                raise DeclarationError(f"{fn.__qualname__}: the return value cannot be annotated as an Input")
            declared_in.add(name)
        if "output" in roles:
            declared_out.add(name)
    return Declaration(frozenset(declared_in), frozenset(declared_out), names, var_kw)


def _as_names(value: Iterable[str] | str | None, label: str) -> Sequence[str]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    names = list(value)
    for n in names:
        if not isinstance(n, str):
            raise DeclarationError(f"@repro_task({label}=...) takes parameter names (str), got {n!r}")
    return names


def is_data_value(value: Any) -> bool:
    """Whether a value is inferred to be a data reference (a path or an fsspec URL)."""
    if isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and looks_like_data_url(value)


def iter_data_values(value: Any, *, declared: bool) -> Iterator[str | os.PathLike[str]]:
    """The data references inside a value: itself, or one level into list/tuple/set/dict values.

    A declared parameter also counts plain strings as local paths.
    """
    if is_data_value(value) or (declared and isinstance(value, str)):
        yield value
        return
    if isinstance(value, (list, tuple, set, frozenset)):
        items: Iterable[Any] = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
    elif isinstance(value, dict):
        items = value.values()
    else:
        return
    for item in items:
        if is_data_value(item) or (declared and isinstance(item, str)):
            yield item




def data_uri(value: Any) -> str:
    """The URI a data value is hashed and recorded under: local paths made absolute."""
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        return abspath(path) if isinstance(path, str) else os.path.abspath(path)
    if isinstance(value, str) and is_local(value):
        return abspath(local_path(value))
    return str(value)


__all__ = ["Declaration", "data_uri", "Input", "Output", "declare", "is_data_value", "iter_data_values"]
