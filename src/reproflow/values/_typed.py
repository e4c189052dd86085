"""Typed JSON for Python values, and (re-exported from :mod:`reproflow.values._valuehash`) their stable hashes.

* :func:`to_typed_json` / :func:`from_typed_json` round-trip parameters without ``eval`` and
  without the losses of Prefect's stored parameters (a ``Path`` stays a ``Path``, a set a set,
  a tuple a tuple, bytes bytes). Instances of dataclasses, attrs classes, pydantic models, named
  tuples and enums are recorded as their class's import path and their (validated) field values,
  and rebuilt from the restored code at replay; a class defined in a script run as
  ``python flow.py`` is found in that script again. An instance of any other class that pickle
  saves as its state alone (``argparse.Namespace``, ``types.SimpleNamespace``, a class whose
  ``__init__`` sets attributes: :func:`reproflow.values._valuehash.reduced_state`) is recorded
  as its class and that state, when everything in the state can be encoded, and rebuilt as
  pickle does (``cls.__new__(cls)``, then ``__setstate__`` or its ``__dict__``). Values that
  cannot be encoded (an open socket, an object holding a lock, a class defined inside a
  function) become an ``{"__rf__": "opaque", ...}`` marker with their hash, and replay refuses
  to invent them.
* :func:`stable_hash` gives the same ``sha256:`` digest for equal content in any process (see
  :mod:`reproflow.values._valuehash`).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import functools
import importlib
import inspect
import json
import math
import os
import pathlib
import sys
import threading
import uuid
from typing import Any

from ._text import exception_text
from ._valuehash import (
    _NoStableHash,
    count_state_object,
    end_state_walk,
    hash_mapping,
    int_from_text,
    int_text,
    is_pydantic_model,
    module_of,
    reduced_state,
    register_hasher,
    script_modules,
    stable_hash,
    start_state_walk,
    type_name,
)

_TAG = "__rf__"


class Opaque:
    """A value that could not be encoded (or rebuilt): replay cannot pass it to the flow."""

    def __init__(self, type_name: str, digest: str | None, text: str) -> None:
        self.type_name = type_name
        self.digest = digest
        self.text = text

    def __repr__(self) -> str:
        return f"<opaque {self.type_name} {self.text[:40]}>"


def _qualname(obj: Any) -> str:
    return type_name(type(obj))


def _import_path(cls: type) -> str:
    """``module:qualname``, the module of a flow script run as ``python flow.py`` being ``__main__``."""
    return f"{module_of(cls)}:{cls.__qualname__}"


def _float(x: float) -> Any:
    if math.isnan(x):
        return {_TAG: "float", "v": "nan"}
    if math.isinf(x):
        return {_TAG: "float", "v": "inf" if x > 0 else "-inf"}
    return x


class _NotEncodable(Exception):
    """Raised inside an object's state (see :func:`_state_object`): something in it is opaque."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


#: ``on``: an object's state is being encoded, where any opaque value makes the whole object
#: opaque (raised as _NotEncodable, nothing inside hashed for nothing); ``path``: the ids of the
#: objects being encoded (one met again refers back to itself)
_state = threading.local()


def _opaque(value: Any, why: str | None = None) -> dict[str, Any]:
    if getattr(_state, "on", False):
        raise _NotEncodable(_qualname(value) + (f" ({why})" if why else ""))
    given = getattr(_state, "given", None)  # (the value, its hash) that to_typed_json was given
    digest = given[1] if given is not None and given[0] is value else stable_hash(value)
    out = {_TAG: "opaque", "type": _qualname(value), "hash": digest, "repr": _short_repr(value)}
    if why:
        out["why"] = why
    return out


#: to_typed_json's ``digest`` left out (None is the hash of a value that has none)
_NO_DIGEST: Any = object()


def to_typed_json(value: Any, _depth: int = 0, *, digest: Any = _NO_DIGEST) -> Any:
    """Encode a value as JSON that :func:`from_typed_json` restores to an equal value. A value
    whose encoding raises (a proxy whose every attribute raises, a property that fails) is
    opaque, saying why: recording never breaks the task.

    ``digest``: the value's :func:`stable_hash`, already computed by the caller: an opaque
    marker for the value itself carries it instead of hashing the value again (a large array)."""
    if digest is not _NO_DIGEST:
        before = getattr(_state, "given", None)
        _state.given = (value, digest)
        try:
            return to_typed_json(value, _depth)
        finally:
            _state.given = before
    try:
        return _to_typed_json(value, _depth)
    except _NotEncodable:
        raise  # to the object whose state holds it (see _state_object)
    except Exception as exc:  # noqa: BLE001 - see above
        why = f"encoding it raised {type(exc).__name__}: {exception_text(exc)[:200]}"
        if getattr(_state, "on", False):
            raise _NotEncodable(f"{_qualname(value)} ({why})") from None
        return {_TAG: "opaque", "type": _qualname(value), "hash": None, "repr": _short_repr(value), "why": why}


def _to_typed_json(value: Any, _depth: int) -> Any:
    if _depth > 64:
        if getattr(_state, "on", False):
            raise _NotEncodable(f"{_qualname(value)} (nested too deeply)")
        return {_TAG: "opaque", "type": _qualname(value), "hash": None, "repr": "too deep"}
    d = _depth + 1
    if value is None or isinstance(value, (bool, int, str)) and not isinstance(value, enum.Enum):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
            return {_TAG: "int", "v": int_text(value)}
        return value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, enum.Enum):
        if "<locals>" in type(value).__qualname__:
            return _opaque(value, "its class is defined inside a function")
        return {_TAG: "enum", "type": _import_path(type(value)), "v": to_typed_json(value.value, d)}
    if isinstance(value, os.PathLike) and isinstance(value, pathlib.PurePath):
        return {_TAG: "path", "v": os.fspath(value)}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and _TAG not in value:
            return {k: to_typed_json(v, d) for k, v in value.items()}
        return {_TAG: "dict", "items": [[to_typed_json(k, d), to_typed_json(v, d)] for k, v in value.items()]}
    if isinstance(value, list):
        return [to_typed_json(v, d) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {_TAG: "tuple", "v": [to_typed_json(v, d) for v in value]}
    if isinstance(value, (set, frozenset)):
        items = sorted((to_typed_json(v, d) for v in value), key=lambda x: json.dumps(x, sort_keys=True))
        return {_TAG: "frozenset" if isinstance(value, frozenset) else "set", "v": items}
    if isinstance(value, (bytes, bytearray)):
        return {_TAG: "bytes", "v": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dt.datetime):
        return {_TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, dt.date):
        return {_TAG: "date", "v": value.isoformat()}
    if isinstance(value, dt.time):
        return {_TAG: "time", "v": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {_TAG: "timedelta", "v": value.total_seconds()}
    if isinstance(value, decimal.Decimal):
        return {_TAG: "decimal", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {_TAG: "uuid", "v": str(value)}
    if isinstance(value, complex):
        return {_TAG: "complex", "v": [_float(value.real), _float(value.imag)]}
    return _object(value, d)


# ------------------------------------------------------------------------------ class instances


def _object(value: Any, depth: int) -> dict[str, Any]:
    """A dataclass, attrs class, pydantic model or named tuple as its class and field values."""
    cls = type(value)
    kind = _kind(value)
    if kind is None:
        return _state_object(value, depth)
    if "<locals>" in cls.__qualname__:
        return _opaque(value, "its class is defined inside a function, so replay cannot import it")
    why = _not_rebuildable(cls, kind)
    if why:
        return _opaque(value, why)
    out: dict[str, Any] = {_TAG: "object", "kind": kind, "type": _import_path(cls)}
    if kind == "namedtuple":
        out["v"] = [to_typed_json(v, depth) for v in value]
        return out
    out["v"] = {name: to_typed_json(getattr(value, name), depth) for name in _field_names(cls, kind)}
    if kind == "pydantic":
        extra = getattr(value, "__pydantic_extra__", None)
        if extra:
            out["extra"] = {str(k): to_typed_json(v, depth) for k, v in extra.items()}
        unset = set(out["v"]) - set(value.model_fields_set)
        if unset:
            out["unset"] = sorted(unset)  # fields left at their default (model_dump(exclude_unset=...) sees it)
        aliases = {name: f.alias for name, f in cls.model_fields.items() if f.alias and f.alias != name}
        if aliases:
            out["aliases"] = aliases  # the names validation expects in plain data (see from_typed_json(rebuild=False))
    return out


def _state_object(value: Any, depth: int) -> dict[str, Any]:
    """An instance of a class that pickle saves as its state alone (see ``reduced_state``) as
    ``{"__rf__": "object", "kind": "state", "class": "module:qualname", "v": state}``; opaque
    when anything in that state is (the innermost named in ``why``).

    The class is under ``class``, not ``type``: a reader from before this kind looks for
    ``type``, finds no class to import, and rebuilds nothing (it calls the value opaque), where
    calling the class with no fields would have made a wrong object silently."""
    reduced = reduced_state(value)
    if reduced is None:
        return _opaque(value)
    cls = type(value)
    if "<locals>" in cls.__qualname__:
        return _opaque(value, "its class is defined inside a function, so replay cannot import it")
    outer = not getattr(_state, "on", False)
    if outer:
        _state.on, _state.path, walked = True, set(), start_state_walk()
    try:
        if id(value) in _state.path:
            raise _NotEncodable(f"{_qualname(value)} (it refers back to itself)")
        count_state_object(value)
        _state.path.add(id(value))
        try:
            encoded = to_typed_json(reduced[0], depth)
        finally:
            _state.path.discard(id(value))
    except (_NotEncodable, _NoStableHash) as exc:
        if not outer:
            raise _NotEncodable(exc.what if isinstance(exc, _NotEncodable) else f"{_qualname(value)} ({exc.why})") from None
        inner = exc.what if isinstance(exc, _NotEncodable) else f"{_qualname(exc.value)} ({exc.why})"
        _state.on = False
        return _opaque(value, f"its state holds {inner}")
    finally:
        if outer:
            _state.on = False
            end_state_walk(walked)
    return {_TAG: "object", "kind": "state", "class": _import_path(cls), "v": encoded}


def _kind(value: Any) -> str | None:
    if isinstance(value, type):
        return None
    if dataclasses.is_dataclass(value):
        return "dataclass"
    if getattr(type(value), "__attrs_attrs__", None) is not None:
        return "attrs"
    if is_pydantic_model(value):
        return "pydantic"
    if isinstance(value, tuple) and hasattr(type(value), "_fields") and hasattr(type(value), "_make"):
        return "namedtuple"
    return None


def _field_names(cls: type, kind: str) -> list[str]:
    if kind == "dataclass":
        return [f.name for f in dataclasses.fields(cls)]
    if kind == "attrs":
        return [a.name for a in cls.__attrs_attrs__]  # type: ignore[attr-defined]
    if kind == "pydantic":
        return list(cls.model_fields)  # type: ignore[attr-defined]
    return list(cls._fields)  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=512)
def _init_fields(cls: type, kind: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """((field, constructor argument) for fields set through ``__init__``, fields set after it)."""
    if kind == "dataclass":
        fields = dataclasses.fields(cls)
        return tuple((f.name, f.name) for f in fields if f.init), tuple(f.name for f in fields if not f.init)
    if kind == "attrs":
        attrs_ = cls.__attrs_attrs__  # type: ignore[attr-defined]
        init = tuple((a.name, getattr(a, "alias", None) or a.name.lstrip("_")) for a in attrs_ if a.init)
        return init, tuple(a.name for a in attrs_ if not a.init)
    return (), ()


@functools.lru_cache(maxsize=512)
def _not_rebuildable(cls: type, kind: str) -> str | None:
    """Why instances of ``cls`` could not be rebuilt from their fields (None when they can)."""
    if kind not in ("dataclass", "attrs"):
        return None
    init, _ = _init_fields(cls, kind)
    args = {arg for _, arg in init}
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    missing = [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               and p.name not in args]
    if missing:
        return f"its constructor needs {', '.join(missing)}, which is not a field"
    return None


def _find_class(path: str) -> Any:
    """The class at ``module:qualname``; ``__main__`` is the flow script, also when replay
    imported it under another name.

    Raises:
        LookupError: no such class can be imported here.
    """
    mod_name, _, qual = path.partition(":")
    if mod_name == "__main__":
        modules = [sys.modules[m] for m in script_modules() if m in sys.modules]
        if "__main__" in sys.modules:
            modules.append(sys.modules["__main__"])
    else:
        try:
            modules = [importlib.import_module(mod_name)]
        except ImportError as exc:
            raise LookupError(f"cannot import module {mod_name!r}: {exc}") from None
    for mod in modules:
        obj: Any = mod
        try:
            for part in qual.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return obj
    raise LookupError(f"module {mod_name!r} has no {qual!r}")


def _rebuild_state(data: dict[str, Any]) -> Any:
    """An object of kind "state" built as pickle builds it: ``cls.__new__(cls)``, then its
    ``__setstate__(state)``, or the state's items set in its ``__dict__`` (and its slots)."""
    path = str(data.get("class"))
    name = path.replace(":", ".")
    try:
        cls = _find_class(path)
    except LookupError as exc:
        return Opaque(name, None, f"cannot be rebuilt: {exc}")
    if not isinstance(cls, type):
        return Opaque(name, None, "cannot be rebuilt: it names no class")
    state = from_typed_json(data.get("v"))
    inner = find_opaque(state)
    if inner is not None:
        return Opaque(name, None, f"cannot be rebuilt: its state holds {inner.type_name} ({inner.text})")
    try:
        obj = cls.__new__(cls)
        setstate = getattr(obj, "__setstate__", None)
        if setstate is not None:
            setstate(state)
            return obj
        slots = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slots = state
        if state:
            obj.__dict__.update(state)
        for k, v in (slots or {}).items():
            setattr(obj, k, v)
        return obj
    except Exception as exc:  # noqa: BLE001 - the restored class may not take the recorded state
        return Opaque(name, None, f"cannot be rebuilt: {type(exc).__name__}: {exception_text(exc)[:200]}")


def _rebuild(data: dict[str, Any]) -> Any:
    if data.get("kind") == "state":
        return _rebuild_state(data)
    kind, path = data.get("kind"), str(data.get("type"))
    try:
        cls = _find_class(path)
    except LookupError as exc:
        return Opaque(path.replace(":", "."), None, f"cannot be rebuilt: {exc}")
    if kind == "namedtuple":
        items = [from_typed_json(v) for v in data["v"]]
        inner = find_opaque(items)
        if inner is not None:
            return Opaque(path.replace(":", "."), None, f"cannot be rebuilt: it holds {inner.type_name} ({inner.text})")
        return cls(*items)
    values = {k: from_typed_json(v) for k, v in data["v"].items()}
    inner = find_opaque(list(values.values()))
    if inner is not None:
        return Opaque(path.replace(":", "."), None, f"cannot be rebuilt: its field holds {inner.type_name} ({inner.text})")
    try:
        if kind == "pydantic":
            extra = {k: from_typed_json(v) for k, v in data.get("extra", {}).items()}
            fields_set = set(values) - set(data.get("unset", ()))
            # The recorded values were validated when the model was made: set them as they were
            # (validators may not be idempotent, and aliases need not be accepted by name).
            return cls.model_construct(_fields_set=fields_set | set(extra), **values, **extra)
        init, after = _init_fields(cls, str(kind))
        obj = cls(**{arg: values[name] for name, arg in init if name in values})
        for name in after:
            if name in values:
                object.__setattr__(obj, name, values[name])
        return obj
    except (TypeError, ValueError, AttributeError) as exc:
        return Opaque(path.replace(":", "."), None, f"cannot be rebuilt: {type(exc).__name__}: {exc}")


def from_typed_json(data: Any, *, rebuild: bool = True) -> Any:
    """Restore a value encoded by :func:`to_typed_json`.

    Args:
        rebuild: import the classes of recorded instances (dataclasses, attrs classes, pydantic
            models, named tuples, enums) and build them. With False, nothing is imported: an
            instance becomes the dict of its fields (a named tuple a list, an enum member its
            value), which is what a flow's parameter validation accepts back.

    Opaque values, and class instances whose class cannot be imported or built here, become
    :class:`Opaque` (see :func:`find_opaque`).
    """
    if not rebuild:
        return _plain(data)
    if isinstance(data, list):
        return [from_typed_json(v) for v in data]
    if not isinstance(data, dict):
        return data
    tag = data.get(_TAG)
    if tag is None:
        return {k: from_typed_json(v) for k, v in data.items()}
    v: Any = data.get("v")
    if tag == "path":
        return pathlib.Path(v)
    if tag == "tuple":
        return tuple(from_typed_json(x) for x in v)
    if tag == "set":
        return {from_typed_json(x) for x in v}
    if tag == "frozenset":
        return frozenset(from_typed_json(x) for x in v)
    if tag == "dict":
        return {from_typed_json(k): from_typed_json(x) for k, x in data["items"]}
    if tag == "bytes":
        return base64.b64decode(v)
    if tag == "float":
        return float(v)
    if tag == "int":
        return int_from_text(v)
    if tag == "datetime":
        return dt.datetime.fromisoformat(v)
    if tag == "date":
        return dt.date.fromisoformat(v)
    if tag == "time":
        return dt.time.fromisoformat(v)
    if tag == "timedelta":
        return dt.timedelta(seconds=v)
    if tag == "decimal":
        return decimal.Decimal(v)
    if tag == "uuid":
        return uuid.UUID(v)
    if tag == "complex":
        return complex(float(v[0]), float(v[1]))
    if tag == "enum":
        try:
            return _find_class(data["type"])(from_typed_json(v))
        except (LookupError, ValueError, TypeError) as exc:
            return Opaque(data["type"].replace(":", "."), None, f"cannot be rebuilt: {exc}")
    if tag == "object":
        return _rebuild(data)
    if tag == "opaque":
        return Opaque(data.get("type", "?"), data.get("hash"), data.get("why") or data.get("repr", ""))
    if tag == "redacted":  # a secret left out of the record: never rebuilt as a dict or a string
        return Opaque(f"redacted {data.get('type', 'value')}", None, str(data.get("shown") or "[REDACTED]"))
    return {k: from_typed_json(x) for k, x in data.items()}


def _plain(data: Any) -> Any:
    """:func:`from_typed_json` without importing any class: instances as their fields."""
    if isinstance(data, list):
        return [_plain(v) for v in data]
    if not isinstance(data, dict):
        return data
    tag = data.get(_TAG)
    if tag == "enum":
        return _plain(data.get("v"))
    if tag == "object":
        if data.get("kind") == "state":  # its attributes (slots too), or __getstate__'s own value
            fields = object_fields(data)
            return {k: _plain(x) for k, x in fields.items()} if fields is not None else _plain(data.get("v"))
        if isinstance(data.get("v"), list):
            return [_plain(v) for v in data["v"]]
        aliases = data.get("aliases", {})
        fields = {aliases.get(k, k): _plain(v) for k, v in data.get("v", {}).items()}
        fields.update({k: _plain(v) for k, v in data.get("extra", {}).items()})
        return fields
    if tag is None:
        return {k: _plain(v) for k, v in data.items()}
    if tag == "tuple":
        return tuple(_plain(x) for x in data["v"])
    if tag in ("set", "frozenset"):
        items = [_plain(x) for x in data["v"]]
        try:
            return set(items) if tag == "set" else frozenset(items)
        except TypeError:  # instances became dicts: keep them in a list
            return items
    if tag == "dict":
        try:
            return {_plain(k): _plain(x) for k, x in data["items"]}
        except TypeError:  # an instance as a key
            return [[_plain(k), _plain(x)] for k, x in data["items"]]
    return from_typed_json(data)


def object_fields(data: Any) -> dict[str, Any] | None:
    """The fields of an object marker in typed JSON, still typed, by name: a dataclass's, attrs
    class's or pydantic model's fields, or the attributes of an object recorded by its state (its
    ``__dict__``, and its slots from a ``(dict, slots)`` state); None for anything else (a named
    tuple, a state that ``__getstate__`` made something else)."""
    if not isinstance(data, dict) or data.get(_TAG) != "object":
        return None
    v = data.get("v")
    if not isinstance(v, dict):
        return None
    if _TAG not in v:
        return v
    parts = v.get("v") if data.get("kind") == "state" and v.get(_TAG) == "tuple" else None
    if isinstance(parts, list) and len(parts) == 2 and all(p is None or (isinstance(p, dict) and _TAG not in p)
                                                            for p in parts):
        return {**(parts[0] or {}), **(parts[1] or {})}
    return None


def has_opaque(data: Any) -> bool:
    """Whether typed JSON holds a value that cannot be rebuilt from the record alone (an opaque
    value, or a secret redacted when recorded)."""
    return _marker(data, ("opaque", "redacted")) is not None


def has_state_object(data: Any) -> bool:
    """Whether typed JSON holds an object recorded by its state (kind "state"): its plain
    attributes (``rebuild=False``) are no value a flow's parameter validation builds it back
    from, as it does a dataclass or a pydantic model from its fields."""
    return _marker(data, ("object",), kind="state") is not None


def opaque_marker(data: Any) -> dict[str, Any] | None:
    """The first opaque marker in typed JSON (``type``, ``hash``, ``repr``, maybe ``why``), or
    None; redacted secrets are not opaque (a replay asks for them)."""
    return _marker(data, ("opaque",))


def _marker(data: Any, tags: tuple[str, ...], kind: str | None = None) -> dict[str, Any] | None:
    """The first marker in typed JSON with one of ``tags`` (and ``kind``, when given), or None."""
    if isinstance(data, list):
        for v in data:
            found = _marker(v, tags, kind)
            if found is not None:
                return found
        return None
    if isinstance(data, dict):
        if data.get(_TAG) in tags and (kind is None or data.get("kind") == kind):
            return data
        for v in data.values():
            found = _marker(v, tags, kind)
            if found is not None:
                return found
    return None


def find_opaque(value: Any, _depth: int = 0) -> Opaque | None:
    """The first :class:`Opaque` inside a decoded value (lists, tuples, sets, dicts, fields)."""
    if isinstance(value, Opaque):
        return value
    if _depth > 64:
        return None
    if isinstance(value, dict):
        items: Any = list(value.keys()) + list(value.values())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return None
    for v in items:
        found = find_opaque(v, _depth + 1)
        if found is not None:
            return found
    return None


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not break recording
        text = f"<{_qualname(value)}>"
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = [
    "Opaque",
    "find_opaque",
    "from_typed_json",
    "has_opaque",
    "has_state_object",
    "object_fields",
    "hash_mapping",
    "opaque_marker",
    "register_hasher",
    "stable_hash",
    "to_typed_json",
]
