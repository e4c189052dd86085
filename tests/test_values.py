"""Stable value hashes and typed JSON parameters."""

from __future__ import annotations

import datetime as dt
import decimal
import pathlib
import subprocess
import sys
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reproflow._values import Opaque, from_typed_json, has_opaque, hash_mapping, stable_hash, to_typed_json

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(max_size=20)
_values = st.recursive(
    _scalars,
    lambda c: st.lists(c, max_size=4) | st.tuples(c, c) | st.dictionaries(st.text(max_size=5), c, max_size=4)
    | st.frozensets(st.integers(), max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(_values)
def test_typed_json_round_trips(value: object) -> None:
    """Any plain value survives to_typed_json -> JSON -> from_typed_json equal, with the same hash."""
    import json

    back = from_typed_json(json.loads(json.dumps(to_typed_json(value))))
    assert back == value
    assert stable_hash(back) == stable_hash(value)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=6), st.integers(), max_size=8))
def test_hash_is_independent_of_dict_order(d: dict[str, int]) -> None:
    """Reversed insertion order gives the same digest."""
    assert stable_hash(d) == stable_hash(dict(reversed(list(d.items()))))


def test_types_are_distinguished() -> None:
    """1, 1.0, True, "1", b"1", [1] and (1,) all hash differently."""
    values = [1, 1.0, True, "1", b"1", [1], (1,), {1}, None, pathlib.Path("1")]
    assert len({stable_hash(v) for v in values}) == len(values)


def test_rich_types_round_trip() -> None:
    """Paths, sets, tuples, bytes, datetimes, decimals, uuids keep their type (Prefect's JSON loses them)."""
    value = {
        "p": pathlib.Path("/data/x.csv"), "s": {3, 1}, "t": (1, "a"), "b": b"\x00\xff",
        "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), "d": decimal.Decimal("1.10"),
        "u": uuid.UUID(int=5), "nan": float("inf"), "big": 2**80, 3: "int key",
    }
    assert from_typed_json(to_typed_json(value)) == value


def test_numpy_arrays_hash_by_bytes_dtype_and_shape() -> None:
    """Equal arrays hash equal; a changed element, dtype or shape changes the hash."""
    a = np.arange(12, dtype=np.int64)
    assert stable_hash(a) == stable_hash(a.copy())
    assert stable_hash(a) != stable_hash(a.astype(np.int32))
    assert stable_hash(a) != stable_hash(a.reshape(3, 4))
    b = a.copy()
    b[5] = 99
    assert stable_hash(a) != stable_hash(b)
    assert stable_hash(a[::2]) == stable_hash(np.ascontiguousarray(a[::2]))


def test_objects_without_content_get_no_hash_and_opaque_json() -> None:
    """An arbitrary object has no stable hash (never an id-based one) and encodes as opaque."""

    class Thing:
        pass

    assert stable_hash(Thing()) is None
    enc = to_typed_json({"x": Thing()})
    assert has_opaque(enc)
    assert isinstance(from_typed_json(enc)["x"], Opaque)
    per, combined = hash_mapping({"x": Thing()})
    assert per["x"].startswith("unhashable:")


def test_hash_is_stable_across_processes() -> None:
    """A fresh interpreter with another PYTHONHASHSEED computes the same digest."""
    value = {"a": [1, 2.5, "x"], "b": {"k": (True, None)}, "s": frozenset({"u", "v", "w"})}
    code = "from reproflow._values import stable_hash; print(stable_hash(%r))" % (value,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()
    assert out == stable_hash(value)


@pytest.mark.parametrize("value", [float("nan"), -0.0, 10**30])
def test_edge_numbers_hash(value: float) -> None:
    """NaN, negative zero and huge ints hash deterministically."""
    assert stable_hash(value) == stable_hash(value)
