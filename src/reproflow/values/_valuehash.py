"""Stable content hashes of Python values, and the hashers users register for their own types.

:func:`stable_hash` gives the same ``sha256:`` digest for equal content in any process, any run,
any dict order: a canonical, type-tagged encoding for plain data; bytes + dtype + shape for numpy
arrays; pandas' row hashes for frames; the fields of dataclasses, attrs classes and pydantic
models; and an instance of any other class by the state pickle would save for it, when pickle
saves it as that state alone (:func:`reduced_state`: ``argparse.Namespace``, a class of the
script whose ``__init__`` sets attributes, a fitted model holding numbers and arrays). A value
with no content-based encoding (an open socket, a lock, an object pickle rebuilds by calling a
function of its own) gets ``None``, never an identity-based digest that would differ on every
run; :func:`register_hasher` gives such a type a content to hash.

A class's name is part of its values' hash. A class defined in a script run as ``python flow.py``
lives in ``__main__``; at replay the same script is imported under another module name, which
:func:`mark_script_module` maps back to ``__main__``, so the same code and data hash the same.
"""

from __future__ import annotations

import copyreg
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import json
import logging
import os
import pathlib
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from .. import _forksafe
from ._text import exception_text

log = logging.getLogger("reproflow")

T = TypeVar("T")

_MAIN = "__main__"
#: module names a flow script was loaded under in place of ``__main__`` (the replay runner's)
_script_modules: set[str] = set()

_hashers: dict[type, Callable[[Any], Any]] = {}
_hasher_cache: dict[type, Callable[[Any], Any] | None] = {}
_hashers_lock = _forksafe.lock()


def mark_script_module(name: str) -> None:
    """Treat module ``name`` as the flow script ``__main__`` was at record time.

    The replay runner imports a recorded ``python flow.py`` under another name (its own script is
    ``__main__``); classes defined in the flow script then hash, and encode in typed JSON, under
    ``__main__`` as they did when recorded.
    """
    _script_modules.add(name)


def script_modules() -> tuple[str, ...]:
    """The module names marked by :func:`mark_script_module`."""
    return tuple(sorted(_script_modules))


def module_of(cls: type) -> str:
    """``cls.__module__``, with a replayed flow script's module named ``__main__`` again."""
    mod = getattr(cls, "__module__", None) or "?"
    return _MAIN if mod in _script_modules else mod


def type_name(cls: type) -> str:
    """``module.qualname`` of a class, stable between recording and replay."""
    return f"{module_of(cls)}.{cls.__qualname__}"


def register_hasher(cls: type[T], fn: Callable[[T], Any]) -> None:
    """Hash values of ``cls`` (and its subclasses) by what ``fn`` returns for them.

    For return values and parameters with no stable content hash of their own: a fitted model,
    a client object, a class holding state. ``fn`` returns what identifies the value's content,
    in anything :func:`reproflow.stable_hash` hashes (numbers, strings, bytes, lists, dicts,
    numpy arrays, ...); the class's name is hashed with it. Without a hasher such values get no
    hash, and a replay reports the task ``unverified``. A registered hasher also takes precedence
    over the built-in encoding of its type (a dataclass, a pydantic model).

    Register at the top level of the module that defines (or imports) the class, next to the
    tasks: the replay imports that module again, so the hasher is there when it compares::

        from reproflow import register_hasher

        register_hasher(LinearRegression, lambda m: (m.coef_, m.intercept_))

    Args:
        cls: the class; subclasses use the hasher of their nearest registered base.
        fn: called with the value, returns its hashable content. If it raises, the value gets
            no hash (logged once per call as a warning), and the task still runs.

    Raises:
        TypeError: ``cls`` is not a class, or ``fn`` is not callable.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_hasher needs a class, got {cls!r}; pass type(value) to register for a value's class")
    if not callable(fn):
        raise TypeError(f"register_hasher needs a callable that returns the value's content, got {fn!r}")
    with _hashers_lock:
        _hashers[cls] = fn
        _hasher_cache.clear()


def unregister_hasher(cls: type) -> None:
    """Remove the hasher registered for exactly ``cls`` (no error when there is none)."""
    with _hashers_lock:
        _hashers.pop(cls, None)
        _hasher_cache.clear()


def _hasher_for(cls: type) -> Callable[[Any], Any] | None:
    try:
        return _hasher_cache[cls]
    except KeyError:
        pass
    found = None
    for base in cls.__mro__:
        if base in _hashers:
            found = _hashers[base]
            break
    with _hashers_lock:
        _hasher_cache[cls] = found
    return found


class _NoStableHash(Exception):
    """Raised inside the encoder: ``value`` (or something inside it) has no content to hash."""

    def __init__(self, value: Any, why: str = "", *, inner: str = "") -> None:
        super().__init__(why)
        self.value = value
        self.why = why
        #: for an object hashed by its state: the innermost value that has no hash, and why
        self.inner = inner


def int_text(value: int) -> str:
    """``str(value)``, also for an int longer than the process's limit on int-to-text conversion
    (``sys.set_int_max_str_digits``, 4,300 digits by default), which ``str`` refuses with
    ValueError: through ``decimal`` (exact, and not limited), so the text, and the hash of the
    value, are the same whatever the limit is."""
    try:
        return str(value)
    except ValueError:
        return str(decimal.Decimal(value))


def int_from_text(text: str) -> int:
    """``int(text)``, also past the process's limit (see :func:`int_text`)."""
    try:
        return int(text)
    except ValueError:
        return int(decimal.Decimal(text))


def _feed(h: Any, value: Any, depth: int = 0) -> None:
    """Feed a canonical, type-tagged encoding of ``value`` into ``h``.

    Raises:
        _NoStableHash: the value has no content-based encoding.
    """
    if depth > 64:
        raise _NoStableHash(value, "nested deeper than 64 levels")
    d = depth + 1
    if _hashers:
        fn = _hasher_for(type(value))
        if fn is not None:
            _feed_registered(h, value, fn, d)
            return
    if value is None:
        h.update(b"N")
    elif isinstance(value, bool):
        h.update(b"T" if value else b"F")
    elif isinstance(value, enum.Enum):
        h.update(b"E" + f"{type(value).__qualname__}.{value.name}".encode() + b"\0")
    elif isinstance(value, int):
        h.update(b"i" + int_text(value).encode() + b"\0")
    elif isinstance(value, float):
        h.update(b"f" + repr(value).encode() + b"\0")
    elif isinstance(value, complex):
        h.update(b"c" + repr(value).encode() + b"\0")
    elif isinstance(value, str):
        b = value.encode("utf-8", "surrogatepass")
        h.update(b"s" + str(len(b)).encode() + b":" + b)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        h.update(b"b" + str(len(b)).encode() + b":" + b)
    elif isinstance(value, pathlib.PurePath):
        b = os.fspath(value).encode("utf-8", "surrogateescape")
        h.update(b"p" + str(len(b)).encode() + b":" + b)
    elif isinstance(value, dict):
        h.update(b"{")
        items = []
        for k, v in value.items():
            kh = hashlib.sha256()
            _feed(kh, k, d)
            items.append((kh.digest(), v))
        items.sort(key=lambda kv: kv[0])
        for kd, v in items:
            h.update(kd)
            _feed(h, v, d)
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[" if isinstance(value, list) else b"(")
        for v in value:
            _feed(h, v, d)
        h.update(b"]")
    elif isinstance(value, (set, frozenset)):
        digests = []
        for v in value:
            eh = hashlib.sha256()
            _feed(eh, v, d)
            digests.append(eh.digest())
        h.update(b"<" + b"".join(sorted(digests)) + b">")
    elif isinstance(value, (dt.datetime, dt.date, dt.time)):
        h.update(b"d" + value.isoformat().encode() + b"\0")
    elif isinstance(value, dt.timedelta):
        h.update(b"D" + repr(value.total_seconds()).encode() + b"\0")
    elif isinstance(value, (decimal.Decimal, uuid.UUID)):
        h.update(b"x" + str(value).encode() + b"\0")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(b"@" + type_name(type(value)).encode() + b"\0")
        _feed(h, {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, d)
    elif getattr(type(value), "__attrs_attrs__", None) is not None and not isinstance(value, type):
        h.update(b"@" + type_name(type(value)).encode() + b"\0")
        _feed(h, {a.name: getattr(value, a.name) for a in type(value).__attrs_attrs__}, d)
    else:
        _feed_foreign(h, value, d)


def _feed_registered(h: Any, value: Any, fn: Callable[[Any], Any], depth: int) -> None:
    try:
        content = fn(value)
    except Exception as exc:  # noqa: BLE001 - a user's hasher must not break the task it records
        log.warning("reproflow: the hasher registered for %s raised %s: %s; the value gets no hash",
                    type_name(type(value)), type(exc).__name__, exc)
        raise _NoStableHash(value, f"its registered hasher raised {type(exc).__name__}") from None
    h.update(b"H" + type_name(type(value)).encode() + b"\0")
    if type(content) is type(value):  # a hasher returning the value itself: no recursion
        raise _NoStableHash(value, "its registered hasher returned the value itself")
    _feed(h, content, depth)


def _feed_foreign(h: Any, value: Any, depth: int) -> None:
    """numpy arrays and scalars, pandas objects, pydantic models; looked up lazily by module."""
    mod = type(value).__module__.split(".")[0]
    if mod == "numpy":
        import numpy as np

        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                _feed(h, value.tolist(), depth)
                return
            arr = np.ascontiguousarray(value)
            h.update(b"A" + str(arr.dtype.str).encode() + b"|" + repr(arr.shape).encode() + b"|")
            try:  # its bytes in place, not copied (tobytes() held a second copy of a large array)
                h.update(arr.reshape(-1).view(np.uint8).data)
            except (TypeError, ValueError):
                h.update(arr.tobytes())
            return
        if isinstance(value, np.generic):
            h.update(b"a" + value.dtype.str.encode() + b"|")
            h.update(value.tobytes())
            return
    if mod == "pandas":
        import pandas as pd

        if isinstance(value, (pd.DataFrame, pd.Series, pd.Index)):
            h.update(b"P" + type(value).__name__.encode() + b"|")
            hashed = pd.util.hash_pandas_object(value, index=not isinstance(value, pd.Index))
            h.update(hashed.to_numpy().tobytes())
            if isinstance(value, pd.DataFrame):
                _feed(h, [str(c) for c in value.columns] + [str(t) for t in value.dtypes], depth)
            else:
                _feed(h, str(getattr(value, "dtype", "")), depth)
            return
    if is_pydantic_model(value):
        h.update(b"M" + type_name(type(value)).encode() + b"\0")
        try:
            dumped = value.model_dump(mode="python")
        except Exception as exc:  # noqa: BLE001 - a model that cannot dump itself has no content to hash
            raise _NoStableHash(value, f"model_dump raised {type(exc).__name__}") from None
        _feed(h, dumped, depth)
        return
    reduced = reduced_state(value)
    if reduced is not None:
        _feed_state(h, value, reduced, depth)
        return
    raise _NoStableHash(value)


#: At most this many objects are hashed (or encoded as typed JSON) by their pickled state within
#: one value: objects that share parts are walked once per path to them, so a deep graph of
#: shared parts could otherwise take forever. Past it the value gets no hash, saying so.
MAX_STATE_OBJECTS = 10_000
_walk = threading.local()


def count_state_object(value: Any) -> None:
    """Count one object walked by its state in the value being hashed or encoded (per thread).

    Raises:
        _NoStableHash: more than :data:`MAX_STATE_OBJECTS` in it.
    """
    n = getattr(_walk, "n", 0) + 1
    _walk.n = n
    if n > MAX_STATE_OBJECTS:
        raise _NoStableHash(value, f"more than {MAX_STATE_OBJECTS:,} objects to walk")


def start_state_walk() -> int:
    """Start counting objects walked by their state; returns the count to restore with
    :func:`end_state_walk` (a hasher may hash values while another value is being hashed)."""
    before = getattr(_walk, "n", 0)
    _walk.n = 0
    return before


def end_state_walk(before: int) -> None:
    _walk.n = before


_OBJECT_REDUCE_EX = object.__reduce_ex__


def reduced_state(value: Any) -> tuple[Any] | None:
    """``(state,)`` when pickle saves ``value`` as its class and a state alone, and rebuilds it
    by ``cls.__new__(cls)`` (or ``cls()``) and setting that state (its ``__dict__``, what its
    ``__getstate__`` returns, or ``(dict, slots)``); else None: a class whose ``__reduce__``
    calls a function or passes arguments (numpy arrays, loggers, a random generator), a
    container subclass whose items pickle apart, a value pickle refuses (a lock, a generator,
    an open file), a class, a bare ``object()`` (a sentinel compared by identity)."""
    cls = type(value)
    if cls is object or isinstance(value, type) or getattr(cls, "__reduce_ex__", None) is not _OBJECT_REDUCE_EX:
        # a class with its own __reduce_ex__ (numpy arrays, torch tensors, array.array) is never
        # state alone, and calling it may copy all its data (a numpy array's bytes): not asked
        return None
    try:
        rv = value.__reduce_ex__(4)
    except Exception:  # noqa: BLE001 - pickle refuses it (or its __reduce__ raised): no state to use
        return None
    if type(rv) is not tuple or not 2 <= len(rv) <= 6 or any(x is not None for x in rv[3:]):
        return None
    func, args = rv[0], rv[1]
    if type(args) is not tuple:
        return None
    if func is copyreg.__newobj__ and len(args) == 1 and args[0] is cls:
        pass
    elif not (func is cls and not args):  # SimpleNamespace: (SimpleNamespace, (), its dict)
        return None
    return (rv[2] if len(rv) > 2 else None,)


def _feed_state(h: Any, value: Any, reduced: tuple[Any], depth: int) -> None:
    count_state_object(value)
    path = _walk.__dict__.setdefault("path", set())
    if id(value) in path:
        raise _NoStableHash(value, "it refers back to itself")
    h.update(b"O" + type_name(type(value)).encode() + b"\0")
    path.add(id(value))
    try:
        _feed(h, reduced[0], depth)
    except _NoStableHash as exc:  # named from the outside in: "flow.Model (its state holds _thread.lock)"
        if exc.value is value:
            raise
        inner = exc.inner or type_name(type(exc.value)) + (f" ({exc.why})" if exc.why else "")
        raise _NoStableHash(value, f"its state holds {inner}", inner=inner) from None
    finally:
        path.discard(id(value))


def is_pydantic_model(value: Any) -> bool:
    """A pydantic (v2) model instance, without importing pydantic."""
    return callable(getattr(value, "model_dump", None)) and hasattr(type(value), "model_fields") and not isinstance(value, type)


def hash_or_reason(value: Any) -> tuple[str | None, str | None]:
    """(``sha256:`` digest, None), or (None, what has no stable hash) for a value without one.

    The reason names the value that has none and, for an object hashed by its state, the
    innermost part of it that has none: ``"flow.Client (its state holds _thread.lock)"``, also
    when it sits in a list.
    """
    h = hashlib.sha256()
    walked = start_state_walk()
    try:
        _feed(h, value)
    except _NoStableHash as exc:
        what = type_name(type(exc.value))
        return None, f"{what} ({exc.why})" if exc.why else what
    except RecursionError:
        return None, f"{type_name(type(value))} (nested too deeply)"
    except Exception as exc:  # noqa: BLE001 - a value whose attributes raise (a proxy) must not break the task
        return None, f"{type_name(type(value))} (reading it raised {type(exc).__name__}: {exception_text(exc)[:200]})"
    finally:
        end_state_walk(walked)
    return "sha256:" + h.hexdigest(), None


def stable_hash(value: Any) -> str | None:
    """A ``sha256:`` digest of a value's content, equal across processes; None if it has none.

    Objects with no content-based encoding (open files, locks, an object holding one, an object
    pickle rebuilds by calling a function: see :func:`reduced_state`) get ``None`` rather than
    an identity-based digest that would differ on every run; see :func:`register_hasher` to give
    a class one.
    """
    return hash_or_reason(value)[0]


#: ``json.dumps(obj, sort_keys=True)``'s encoder, built once (the same text; it keeps no state).
_SORTED_JSON = json.JSONEncoder(sort_keys=True)


def hash_mapping(values: dict[str, Any]) -> tuple[dict[str, str], str]:
    """Per-key hashes and one combined hash of a parameter mapping."""
    per: dict[str, str] = {}
    for k, v in values.items():
        hv = stable_hash(v)
        per[k] = hv if hv is not None else f"unhashable:{type_name(type(v))}"
    combined = hashlib.sha256(_SORTED_JSON.encode(per).encode()).hexdigest()
    return per, "sha256:" + combined


__all__ = [
    "hash_mapping",
    "hash_or_reason",
    "is_pydantic_model",
    "mark_script_module",
    "module_of",
    "register_hasher",
    "stable_hash",
    "type_name",
    "unregister_hasher",
]
