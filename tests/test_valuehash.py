"""Stable hashes of class instances, and hashers registered for types that have none."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import attrs
import pytest

from reproflow import register_hasher, stable_hash
from reproflow.values._valuehash import hash_or_reason, type_name, unregister_hasher


class Fitted:
    """A fitted model holding a lock (its predict is thread-safe): pickle cannot save its state,
    so it has no content encoding of its own."""

    def __init__(self, coef: list[float]) -> None:
        self.coef = coef
        self._lock = threading.Lock()


class FittedMore(Fitted):
    pass


@attrs.frozen
class Point:
    x: int
    y: int


@pytest.fixture
def fitted_hasher() -> Iterator[None]:
    register_hasher(Fitted, lambda m: {"coef": m.coef})
    try:
        yield
    finally:
        unregister_hasher(Fitted)


def test_an_object_holding_a_lock_has_no_hash_and_the_reason_names_both() -> None:
    """A fitted model holding a lock has no stable hash, also inside a list, and the reason
    names its class and what in its state has none."""
    assert stable_hash(Fitted([1.0])) is None
    digest, why = hash_or_reason({"models": [1, Fitted([1.0])]})
    assert digest is None and why == "test_valuehash.Fitted (its state holds _thread.lock)"


def test_registered_hasher_hashes_by_content(fitted_hasher: None) -> None:
    """With a hasher, equal state hashes equal, other state differently, subclasses use their
    base's hasher (under their own name), and the hash differs from the bare content's."""
    a, b, c = Fitted([1.0, 2.0]), Fitted([1.0, 2.0]), Fitted([1.0, 2.5])
    assert stable_hash(a) is not None and stable_hash(a) == stable_hash(b) != stable_hash(c)
    assert stable_hash([a]) == stable_hash([b])
    assert stable_hash(FittedMore([1.0, 2.0])) not in (None, stable_hash(a))
    assert stable_hash(a) != stable_hash({"coef": [1.0, 2.0]})


def test_unregistering_removes_the_hash(fitted_hasher: None) -> None:
    """unregister_hasher drops it again (and the per-class cache with it)."""
    assert stable_hash(Fitted([1.0])) is not None
    unregister_hasher(Fitted)
    assert stable_hash(Fitted([1.0])) is None


def test_a_raising_hasher_gives_no_hash_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    """A hasher that raises never breaks the task: the value gets no hash, with a warning."""

    def broken(m: Fitted) -> object:
        raise RuntimeError("not fitted yet")

    register_hasher(Fitted, broken)
    try:
        with caplog.at_level(logging.WARNING, logger="reproflow"):
            digest, why = hash_or_reason(Fitted([]))
    finally:
        unregister_hasher(Fitted)
    assert digest is None and "registered hasher raised RuntimeError" in (why or "")
    assert "not fitted yet" in caplog.text


def test_a_registered_hasher_overrides_the_builtin_encoding() -> None:
    """A hasher registered for an attrs class (hashed by its fields otherwise) takes precedence."""
    plain = stable_hash(Point(1, 2))
    assert plain is not None and plain != stable_hash(Point(1, 3))
    register_hasher(Point, lambda p: p.x)
    try:
        assert stable_hash(Point(1, 2)) == stable_hash(Point(1, 3)) != plain
    finally:
        unregister_hasher(Point)


def test_register_hasher_checks_its_arguments() -> None:
    """A value instead of a class, or a non-callable, is refused at once."""
    with pytest.raises(TypeError, match="needs a class"):
        register_hasher(Fitted([1.0]), lambda m: m)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        register_hasher(Fitted, "coef")  # type: ignore[arg-type]


def test_type_names_of_a_replayed_flow_script_are_main(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module marked as the replayed flow script names its classes __main__, as at record time."""
    import reproflow.values._valuehash as vh

    monkeypatch.setattr(vh, "_script_modules", set())
    Replayed = type("Replayed", (), {"__module__": "__reproflow_replay__"})
    assert type_name(Replayed) == "__reproflow_replay__.Replayed"
    vh.mark_script_module("__reproflow_replay__")
    assert type_name(Replayed) == "__main__.Replayed"


def test_an_int_past_the_text_conversion_limit_hashes_and_round_trips() -> None:
    """Python refuses ``str()`` of an int over 4,300 digits (``sys.set_int_max_str_digits``);
    such a parameter once failed the task when its record was written. It hashes and encodes
    through ``decimal``, to the same text and hash whatever the process's limit."""
    import sys

    from reproflow.values._typed import from_typed_json, to_typed_json

    big = 7 * 10**5000 + 3
    encoded = to_typed_json(big)
    digest = stable_hash(big)
    assert encoded == {"__rf__": "int", "v": "7" + "0" * 4999 + "3"} and from_typed_json(encoded) == big
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)  # no limit: str() works, and must give the same text and hash
    try:
        assert stable_hash(big) == digest and to_typed_json(big) == encoded
    finally:
        sys.set_int_max_str_digits(old)


def test_a_task_given_a_huge_int_completes(store_dir) -> None:  # type: ignore[no-untyped-def]
    import reproflow
    from reproflow import repro_task
    from reproflow.store import Store

    @repro_task
    def succ(n: int) -> int:
        return n + 1

    with reproflow.record("huge int") as run:
        assert succ(10**5000) == 10**5000 + 1
    (task,) = Store(store_dir).load_run(run.run_id).final_tasks()
    assert task.state == "COMPLETED" and task.parameters["n"]["v"] == "1" + "0" * 5000
