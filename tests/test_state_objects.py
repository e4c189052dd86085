"""Objects of plain classes by the state pickle saves for them: argparse's Namespace, a
SimpleNamespace, a class whose __init__ sets attributes, a slotted class, one with
__getstate__/__setstate__. Each hashes by that state and round-trips through typed JSON as
pickle rebuilds it; anything pickle would not save as state alone stays without a hash and
opaque, saying why, and no walk of a self-referring or deeply shared graph runs away."""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import threading
import types
from typing import Any

import pytest

from reproflow.values._scrub import scrub_json
from reproflow.values._typed import (
    Opaque,
    find_opaque,
    from_typed_json,
    has_opaque,
    opaque_marker,
    stable_hash,
    to_typed_json,
)
from reproflow.values._valuehash import MAX_STATE_OBJECTS, hash_or_reason


class Settings:
    def __init__(self, epochs: int = 3, out: str = "out") -> None:
        self.epochs = epochs
        self.out = pathlib.Path(out)
        self.tags = {"a", "b"}


class Other:
    def __init__(self, epochs: int = 3, out: str = "out") -> None:
        self.epochs = epochs
        self.out = pathlib.Path(out)
        self.tags = {"a", "b"}


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a: int, b: list[int]) -> None:
        self.a, self.b = a, b


class Stated:
    """Saves a scaled copy of its value; __setstate__ undoes it (pickle's protocol, not __dict__)."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __getstate__(self) -> dict[str, int]:
        return {"k10": self.k * 10}

    def __setstate__(self, state: dict[str, int]) -> None:
        self.k = state["k10"] // 10


class Node:
    def __init__(self) -> None:
        self.next: Node | None = None
        self.prev: Node | None = None


class WithArgs:
    """pickle rebuilds it by calling the class with an argument: not state alone."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __reduce__(self) -> tuple[Any, ...]:
        return (WithArgs, (self.n,))


def _state(value: Any) -> Any:
    """What a rebuilt object holds, to compare it with the original."""
    if isinstance(value, Slotted):
        return (type(value), value.a, value.b)
    return (type(value), vars(value))


@pytest.mark.parametrize("value", [
    argparse.Namespace(data=pathlib.Path("data/x.txt"), lr=0.5, epochs=2, layers=[3, 4]),
    types.SimpleNamespace(suffix="json", indent=2, shape=(1, 2)),
    Settings(5, "results"),
    Slotted(1, [2, 3]),
    Stated(7),
    Settings(epochs=Settings(1)),  # type: ignore[arg-type]  (an object inside another's state)
], ids=["argparse", "simplenamespace", "script-class", "slots", "getstate", "nested"])
def test_an_object_saved_as_its_state_hashes_by_it_and_round_trips(value: Any) -> None:
    """The same state hashes the same (in a copy too), the typed JSON names the class and holds
    the state (through json, as a record stores it), and decoding builds an equal object."""
    digest = stable_hash(value)
    assert digest is not None and digest == stable_hash(copy.deepcopy(value))
    enc = json.loads(json.dumps(to_typed_json({"v": value})))
    assert not has_opaque(enc)
    assert enc["v"]["kind"] == "state" and enc["v"]["class"].endswith(type(value).__qualname__)
    back = from_typed_json(enc)["v"]
    assert find_opaque(back) is None and type(back) is type(value)
    if isinstance(value, Settings) and isinstance(value.epochs, Settings):
        assert _state(back.epochs) == _state(value.epochs)
    else:
        assert _state(back) == _state(value)
    assert stable_hash(back) == digest


def test_the_state_and_the_class_are_both_in_the_hash() -> None:
    """Another value of a field, or the same fields in another class, or the bare dict of the
    state, hash differently."""
    a = stable_hash(Settings(3))
    assert a != stable_hash(Settings(4))
    assert a != stable_hash(Other(3))
    assert a != stable_hash(vars(Settings(3)))
    assert stable_hash(argparse.Namespace(x=1)) != stable_hash(types.SimpleNamespace(x=1))


def test_a_custom_setstate_rebuilds_through_it() -> None:
    enc = to_typed_json(Stated(7))
    assert enc["v"] == {"k10": 70}
    assert from_typed_json(enc).k == 7


@pytest.mark.parametrize("value, why", [
    (Settings(epochs=threading.Lock()), "its state holds _thread.lock"),  # type: ignore[arg-type]
    (WithArgs(1), ""),
    (object(), ""),
])
def test_what_pickle_would_not_save_as_state_has_no_hash_and_is_opaque(value: Any, why: str) -> None:
    digest, reason = hash_or_reason(value)
    assert digest is None and why in (reason or "")
    enc = to_typed_json({"v": value})
    marker = opaque_marker(enc)
    assert marker is not None and why in (marker.get("why") or "")
    assert isinstance(from_typed_json(enc)["v"], Opaque)


def test_an_object_that_refers_back_to_itself_stops_at_once() -> None:
    """A doubly linked pair has no hash and is opaque, the reason naming the cycle."""
    a, b = Node(), Node()
    a.next, b.prev = b, a
    digest, reason = hash_or_reason(a)
    assert digest is None and "refers back to itself" in (reason or "")
    assert "refers back to itself" in (opaque_marker(to_typed_json(a)) or {}).get("why", "")


def test_a_deeply_shared_graph_is_not_walked_without_end() -> None:
    """Each node refers twice to the next: 2**30 paths. The walk stops at MAX_STATE_OBJECTS,
    saying so, instead of running for ever."""
    node = Node()
    for _ in range(30):
        up = Node()
        up.next = up.prev = node
        node = up
    digest, reason = hash_or_reason(node)
    assert digest is None and f"more than {MAX_STATE_OBJECTS:,} objects" in (reason or "")
    assert "objects" in (opaque_marker(to_typed_json(node)) or {}).get("why", "")


def test_a_secret_attribute_is_redacted_like_a_field() -> None:
    """A Namespace from the command line holding a token: redacted by the attribute's name, and
    the decoded state says so rather than holding the token."""
    enc = scrub_json(to_typed_json(argparse.Namespace(api_token="sk-live-abcdef0123456789", lr=0.1)))
    assert "sk-live-abcdef0123456789" not in json.dumps(enc)
    assert enc["v"]["lr"] == 0.1


def test_a_reader_from_before_this_kind_rebuilds_nothing() -> None:
    """The class is under "class", not "type": a reader that only knew the kinds before this one
    looks up "type", finds no class, and calls the value opaque, where calling the class with
    no fields would have built a wrong object silently (an empty Namespace, a Settings() with
    its defaults)."""
    enc = to_typed_json(Settings(9))
    assert "type" not in enc and enc["class"] == f"{__name__}:Settings"


def test_plain_decoding_gives_the_attributes() -> None:
    """from_typed_json(rebuild=False) (exports, diffs: no user code imported) gives the state's
    attributes, slots included."""
    plain = from_typed_json(to_typed_json({"a": argparse.Namespace(x=1), "s": Slotted(1, [2])}), rebuild=False)
    assert plain == {"a": {"x": 1}, "s": {"a": 1, "b": [2]}}


def test_a_class_that_is_gone_decodes_to_opaque_naming_it() -> None:
    enc = to_typed_json(Settings())
    enc["class"] = f"{__name__}:NoSuchClass"
    bad = find_opaque([from_typed_json(enc)])
    assert bad is not None and "NoSuchClass" in bad.text
    enc["class"] = "os:getcwd"  # not a class: nothing is called
    bad = find_opaque([from_typed_json(enc)])
    assert bad is not None and "names no class" in bad.text
