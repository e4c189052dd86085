"""Stable content hashes and typed JSON for Python values.

* :func:`stable_hash` gives the same ``sha256:`` digest for equal content in any process, any
  run, any dict order: canonical JSON for plain data; bytes + dtype + shape for numpy arrays; a
  column-wise hash for pandas frames; a type-tagged digest of other values' ``__reduce__``-free
  representation is refused rather than guessed (objects without stable content get ``None``).
* :func:`to_typed_json` / :func:`from_typed_json` round-trip parameters without ``eval`` and
  without the losses of Prefect's stored parameters (a ``Path`` stays a ``Path``, a set a set,
  a tuple a tuple, bytes bytes). Values that cannot be encoded become an ``{"__opaque__": ...}``
  marker with their hash, and replay refuses to invent them.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import json
import math
import os
import pathlib
import uuid
from typing import Any

_TAG = "__rf__"


class Opaque:
    """A value that could not be encoded: replay cannot rebuild it from the record."""

    def __init__(self, type_name: str, digest: str | None, text: str) -> None:
        self.type_name = type_name
        self.digest = digest
        self.text = text

    def __repr__(self) -> str:
        return f"<opaque {self.type_name} {self.text[:40]}>"


def _qualname(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _float(x: float) -> Any:
    if math.isnan(x):
        return {_TAG: "float", "v": "nan"}
    if math.isinf(x):
        return {_TAG: "float", "v": "inf" if x > 0 else "-inf"}
    return x


def to_typed_json(value: Any, _depth: int = 0) -> Any:
    """Encode a value as JSON that :func:`from_typed_json` restores to an equal value."""
    if _depth > 64:
        return {_TAG: "opaque", "type": _qualname(value), "hash": None, "repr": "too deep"}
    d = _depth + 1
    if value is None or isinstance(value, (bool, int, str)) and not isinstance(value, enum.Enum):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
            return {_TAG: "int", "v": str(value)}
        return value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, enum.Enum):
        return {_TAG: "enum", "type": f"{type(value).__module__}:{type(value).__qualname__}", "v": to_typed_json(value.value, d)}
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
    return {_TAG: "opaque", "type": _qualname(value), "hash": stable_hash(value), "repr": _short_repr(value)}


def from_typed_json(data: Any) -> Any:
    """Restore a value encoded by :func:`to_typed_json`. Opaque values become :class:`Opaque`."""
    if isinstance(data, list):
        return [from_typed_json(v) for v in data]
    if not isinstance(data, dict):
        return data
    tag = data.get(_TAG)
    if tag is None:
        return {k: from_typed_json(v) for k, v in data.items()}
    v = data.get("v")
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
        return int(v)
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
        import importlib

        mod, _, qual = data["type"].partition(":")
        try:
            obj: Any = importlib.import_module(mod)
            for part in qual.split("."):
                obj = getattr(obj, part)
            return obj(from_typed_json(v))
        except (ImportError, AttributeError, ValueError):
            return Opaque(data["type"], None, repr(v))
    if tag == "opaque":
        return Opaque(data.get("type", "?"), data.get("hash"), data.get("repr", ""))
    if tag == "redacted":  # a secret left out of the record: never rebuilt as a dict or a string
        return Opaque(f"redacted {data.get('type', 'value')}", None, str(data.get("shown") or "[REDACTED]"))
    return {k: from_typed_json(x) for k, x in data.items()}


def has_opaque(data: Any) -> bool:
    """Whether typed JSON holds a value that cannot be rebuilt."""
    if isinstance(data, list):
        return any(has_opaque(v) for v in data)
    if isinstance(data, dict):
        if data.get(_TAG) in ("opaque", "redacted"):
            return True
        return any(has_opaque(v) for v in data.values())
    return False


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not break recording
        text = f"<{_qualname(value)}>"
    return text if len(text) <= 200 else text[:197] + "..."


# ------------------------------------------------------------------------------ hashing


def _feed(h: Any, value: Any, depth: int = 0) -> bool:
    """Feed a canonical, type-tagged encoding of ``value`` into ``h``. False if not hashable."""
    if depth > 64:
        return False
    d = depth + 1
    if value is None:
        h.update(b"N")
    elif isinstance(value, bool):
        h.update(b"T" if value else b"F")
    elif isinstance(value, enum.Enum):
        h.update(b"E" + f"{type(value).__qualname__}.{value.name}".encode() + b"\0")
    elif isinstance(value, int):
        h.update(b"i" + str(value).encode() + b"\0")
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
            if not _feed(kh, k, d):
                return False
            items.append((kh.digest(), v))
        items.sort(key=lambda kv: kv[0])
        for kd, v in items:
            h.update(kd)
            if not _feed(h, v, d):
                return False
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[" if isinstance(value, list) else b"(")
        for v in value:
            if not _feed(h, v, d):
                return False
        h.update(b"]")
    elif isinstance(value, (set, frozenset)):
        digests = []
        for v in value:
            eh = hashlib.sha256()
            if not _feed(eh, v, d):
                return False
            digests.append(eh.digest())
        h.update(b"<" + b"".join(sorted(digests)) + b">")
    elif isinstance(value, (dt.datetime, dt.date, dt.time)):
        h.update(b"d" + value.isoformat().encode() + b"\0")
    elif isinstance(value, dt.timedelta):
        h.update(b"D" + repr(value.total_seconds()).encode() + b"\0")
    elif isinstance(value, (decimal.Decimal, uuid.UUID)):
        h.update(b"x" + str(value).encode() + b"\0")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(b"@" + _qualname(value).encode() + b"\0")
        return _feed(h, {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, d)
    else:
        return _feed_foreign(h, value, d)
    return True


def _feed_foreign(h: Any, value: Any, depth: int) -> bool:
    """numpy arrays and scalars, pandas objects, pydantic models; looked up lazily by module."""
    mod = type(value).__module__.split(".")[0]
    if mod == "numpy":
        import numpy as np

        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                return _feed(h, value.tolist(), depth)
            arr = np.ascontiguousarray(value)
            h.update(b"A" + str(arr.dtype.str).encode() + b"|" + repr(arr.shape).encode() + b"|")
            h.update(arr.tobytes())
            return True
        if isinstance(value, np.generic):
            h.update(b"a" + value.dtype.str.encode() + b"|")
            h.update(value.tobytes())
            return True
    if mod == "pandas":
        import pandas as pd

        if isinstance(value, (pd.DataFrame, pd.Series, pd.Index)):
            h.update(b"P" + type(value).__name__.encode() + b"|")
            hashed = pd.util.hash_pandas_object(value, index=not isinstance(value, pd.Index))
            h.update(hashed.to_numpy().tobytes())
            if isinstance(value, pd.DataFrame):
                return _feed(h, [str(c) for c in value.columns] + [str(t) for t in value.dtypes], depth)
            return _feed(h, str(getattr(value, "dtype", "")), depth)
    dump = getattr(value, "model_dump", None)
    if callable(dump) and hasattr(type(value), "model_fields"):
        h.update(b"M" + _qualname(value).encode() + b"\0")
        return _feed(h, dump(mode="python"), depth)
    return False


def stable_hash(value: Any) -> str | None:
    """A ``sha256:`` digest of a value's content, equal across processes; None if it has none.

    Objects with no content-based encoding (open files, locks, arbitrary class instances) get
    ``None`` rather than an identity-based digest that would differ on every run.
    """
    h = hashlib.sha256()
    if not _feed(h, value):
        return None
    return "sha256:" + h.hexdigest()


def hash_mapping(values: dict[str, Any]) -> tuple[dict[str, str], str]:
    """Per-key hashes and one combined hash of a parameter mapping."""
    per: dict[str, str] = {}
    for k, v in values.items():
        hv = stable_hash(v)
        per[k] = hv if hv is not None else f"unhashable:{_qualname(v)}"
    combined = hashlib.sha256(json.dumps(per, sort_keys=True).encode()).hexdigest()
    return per, "sha256:" + combined


__all__ = ["Opaque", "from_typed_json", "has_opaque", "hash_mapping", "stable_hash", "to_typed_json"]
