"""Stable value hashes and typed JSON parameters."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import pathlib
import subprocess
import sys
import threading
import uuid
from typing import NamedTuple

import attrs
import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reproflow.values._typed import (
    Opaque,
    find_opaque,
    from_typed_json,
    has_opaque,
    hash_mapping,
    opaque_marker,
    stable_hash,
    to_typed_json,
)

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


def test_a_large_array_is_hashed_in_place_and_as_its_bytes() -> None:
    """An array's digest is that of its dtype, shape and bytes (tobytes(), as before, for every
    layout and dtype), read where they are: hashing or recording a 40 MB array never holds a
    second copy of it (tobytes() did), nor asks pickle for one."""
    import hashlib
    import tracemalloc

    def by_copy(a: np.ndarray) -> str:
        arr = np.ascontiguousarray(a)
        h = hashlib.sha256(b"A" + arr.dtype.str.encode() + b"|" + repr(arr.shape).encode() + b"|")
        h.update(arr.tobytes())
        return "sha256:" + h.hexdigest()

    for a in (np.arange(12).reshape(3, 4)[:, ::2], np.zeros((0, 3)), np.array(5.0), np.array(["ab", "c"]),
              np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]), np.arange(0, 10, dtype="datetime64[s]"),
              np.arange(6, dtype=np.complex64).reshape(2, 3).T, np.array([1, 2], dtype=">i4")):
        assert stable_hash(a) == by_copy(a), a.dtype
    big = np.ones(5_000_000)  # 40 MB
    tracemalloc.start()
    try:
        stable_hash(big)
        to_typed_json({"x": big})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < big.nbytes // 4, peak


def test_objects_without_content_get_no_hash_and_opaque_json() -> None:
    """An object whose state pickle cannot save (it holds a lock) has no stable hash (never an
    id-based one) and encodes as opaque."""

    class Thing:
        def __init__(self) -> None:
            self.lock = threading.Lock()

    assert stable_hash(Thing()) is None
    enc = to_typed_json({"x": Thing()})
    assert has_opaque(enc)
    assert isinstance(from_typed_json(enc)["x"], Opaque)
    per, combined = hash_mapping({"x": Thing()})
    assert per["x"].startswith("unhashable:")


def test_hash_is_stable_across_processes() -> None:
    """A fresh interpreter with another PYTHONHASHSEED computes the same digest."""
    value = {"a": [1, 2.5, "x"], "b": {"k": (True, None)}, "s": frozenset({"u", "v", "w"})}
    code = "from reproflow.values._typed import stable_hash; print(stable_hash(%r))" % (value,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()
    assert out == stable_hash(value)


@pytest.mark.parametrize("value", [float("nan"), -0.0, 10**30])
def test_edge_numbers_hash(value: float) -> None:
    """NaN, negative zero and huge ints hash deterministically."""
    assert stable_hash(value) == stable_hash(value)


# ------------------------------------------------------------------------------ class instances
# Module-level classes: importable as this test module, as a flow's config classes would be.


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclasses.dataclass(frozen=True)
class Options:
    src: pathlib.Path = pathlib.Path("data/in.csv")
    scale: float = 2.0
    skip: tuple[int, ...] = (0,)
    derived: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "derived", int(self.scale * 10))


@attrs.define
class Window:
    size: int = 3
    _step: int = attrs.field(default=1, alias="step")
    label: str = attrs.field(default="w", init=False)


class Span(NamedTuple):
    start: int
    end: int


class Paths(pydantic.BaseModel):
    src: pathlib.Path = pathlib.Path("data/numbers.txt")


class TrainConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")
    learning_rate: float = pydantic.Field(0.1, alias="learningRate")
    tags: set[str] = {"baseline"}
    paths: Paths = Paths()
    mode: Mode = Mode.FAST


@dataclasses.dataclass
class NeedsInitVar:
    x: int
    seed: dataclasses.InitVar[int]


def _instances() -> list[object]:
    w = Window(step=2)
    w.label = "set after init"
    return [
        Mode.SLOW,
        Options(scale=3.5, skip=(1, 2)),
        w,
        Span(3, 9),
        TrainConfig(),
        TrainConfig(learningRate=0.5, tags={"a", "b"}, note=[1, 2]),
        {"nested": [Options(), {"k": Span(0, 1)}], "by_mode": {Mode.FAST: Window()}},
    ]


@pytest.mark.parametrize("value", _instances(), ids=lambda v: type(v).__name__)
def test_instances_round_trip_with_their_class_and_hash(value: object) -> None:
    """Enums, dataclasses (frozen, a field set in __post_init__), attrs classes (a private field
    with an alias, a field with init=False), named tuples and pydantic models (alias, set,
    nested model, extra field), alone and nested in lists and dicts, come back equal, of their
    class, with the same stable hash: no longer "opaque"."""
    import json

    enc = json.loads(json.dumps(to_typed_json(value)))
    assert not has_opaque(enc)
    back = from_typed_json(enc)
    assert find_opaque(back) is None
    assert type(back) is type(value) and back == value
    assert stable_hash(back) == stable_hash(value) is not None


def test_pydantic_rebuild_keeps_the_validated_values_and_fields_set() -> None:
    """A model is rebuilt from its recorded, validated values without validating again (a
    validator need not be idempotent) and remembers which fields were left at their default."""

    cfg = TrainConfig(learningRate=0.25)
    back = from_typed_json(to_typed_json(cfg))
    assert back.model_fields_set == {"learning_rate"}
    assert back.model_dump(exclude_unset=True) == cfg.model_dump(exclude_unset=True)
    assert back.model_dump(by_alias=True) == cfg.model_dump(by_alias=True)


def test_plain_decoding_imports_nothing() -> None:
    """from_typed_json(rebuild=False) gives an instance's fields (by alias, as validation expects
    them back), a named tuple's items and an enum's value, for exports and diffs that must not
    import user code."""
    enc = to_typed_json({"cfg": TrainConfig(learningRate=0.5), "span": Span(1, 2), "mode": Mode.SLOW})
    plain = from_typed_json(enc, rebuild=False)
    assert plain["cfg"]["learningRate"] == 0.5 and plain["cfg"]["paths"] == {"src": pathlib.Path("data/numbers.txt")}
    assert plain["span"] == (1, 2) or plain["span"] == [1, 2]
    assert plain["mode"] == "slow"
    assert TrainConfig.model_validate(plain["cfg"]) == TrainConfig(learningRate=0.5)


def test_instances_that_cannot_be_rebuilt_stay_opaque_and_say_why() -> None:
    """A class defined inside a function cannot be imported at replay, and a dataclass whose
    constructor needs an InitVar cannot be built from its fields: both are opaque at record
    time (with the reason), never a guess; a plain object is opaque as before."""

    @dataclasses.dataclass
    class Local:
        x: int = 1

    for value, why in ((Local(), "defined inside a function"), (NeedsInitVar(1, 2), "needs seed")):
        enc = to_typed_json({"v": [value]})
        assert has_opaque(enc)
        marker = opaque_marker(enc)
        assert marker is not None and why in marker["why"]
        assert stable_hash(value) is not None  # still hashable: only its rebuild is refused


def test_a_class_that_is_gone_decodes_to_opaque_naming_it() -> None:
    """A recorded instance whose class cannot be imported any more comes back as Opaque naming
    the class and the reason, also from inside a field of another instance."""
    enc = to_typed_json({"o": Options()})
    enc["o"]["type"] = "test_values:NoSuchClass"
    bad = find_opaque(from_typed_json(enc))
    assert bad is not None and "NoSuchClass" in bad.text
    outer = to_typed_json(TrainConfig())
    outer["v"]["paths"]["type"] = "no_such_module_here:Paths"
    bad = find_opaque(from_typed_json({"cfg": outer}))
    assert bad is not None and "TrainConfig" in bad.type_name and "no_such_module_here" in bad.text


def test_flow_script_classes_hash_and_rebuild_the_same_under_the_replay_module(tmp_path: pathlib.Path) -> None:
    """A class defined in a script run as `python flow.py` (module __main__) hashes the same, and
    its recorded instances rebuild, when the replay imports the same file under another name and
    marks it as the flow script; unmarked, the module name would change the hash."""
    script = tmp_path / "flow.py"
    script.write_text(
        "import dataclasses, enum, json, sys\n"
        "from reproflow.values._typed import stable_hash, to_typed_json\n"
        "class Kind(enum.Enum):\n    A = 1\n"
        "@dataclasses.dataclass\nclass Token:\n    text: str\n    kind: Kind\n"
        "VALUE = {'tokens': [Token('x', Kind.A)]}\n"
        "if __name__ == '__main__':\n"
        "    print(json.dumps([stable_hash(VALUE), to_typed_json(VALUE)]))\n"
    )
    import json

    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
    recorded_hash, typed = json.loads(out)
    assert typed["tokens"][0]["type"] == "__main__:Token"
    code = (
        "import importlib.util, json, sys\n"
        "from reproflow.values._valuehash import mark_script_module\n"
        "from reproflow.values._typed import from_typed_json, stable_hash\n"
        f"mark = sys.argv[1] == 'mark'\n"
        "if mark:\n    mark_script_module('__replayed_flow__')\n"
        f"spec = importlib.util.spec_from_file_location('__replayed_flow__', {str(script)!r})\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules['__replayed_flow__'] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "back = from_typed_json(json.loads(sys.argv[2])) if mark else None\n"
        "print(json.dumps([stable_hash(mod.VALUE), back == mod.VALUE]))\n"
    )
    for mark, same in (("mark", True), ("no", False)):
        res = subprocess.run([sys.executable, "-c", code, mark, json.dumps(typed)], capture_output=True, text=True,
                             check=True).stdout
        replay_hash, rebuilt_equal = json.loads(res)
        assert (replay_hash == recorded_hash) is same
        if same:
            assert rebuilt_equal is True
