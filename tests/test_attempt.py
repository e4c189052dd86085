"""The task-attempt recorder's own helpers (recorder/_attempt.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reproflow.recorder._attempt import MAX_INLINE_JSON, _fits_inline, _json_bound
from reproflow.store import canonical_json

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_the_inline_bound_is_never_below_the_real_size(value: Any) -> None:
    """The cheap bound that spares encoding a small value is an upper bound, so the inline
    decision is the one the encoded size gives."""
    assert _json_bound(value, 10**9) >= len(canonical_json(value))
    assert _fits_inline(value) == (len(canonical_json(value)) <= MAX_INLINE_JSON)


def test_values_at_the_inline_limit() -> None:
    """Around the limit the exact size decides (the bound alone would refuse these)."""
    at = "a" * (MAX_INLINE_JSON - 2)  # its JSON: the quotes and the letters, exactly the limit
    assert _fits_inline(at) and not _fits_inline(at + "a")
    assert _fits_inline({"__rf__": "path", "v": "/data/in/00001.bin"})
    assert not _fits_inline(["x" * 1000] * 20)


def _signatures() -> list[Any]:
    def plain(a, b, c=3, d=None):  # type: ignore[no-untyped-def]
        return a

    def no_params():  # type: ignore[no-untyped-def]
        return 0

    def var(a, *rest, k=1, **more):  # type: ignore[no-untyped-def]
        return a

    def kw_only(a, *, b=2):  # type: ignore[no-untyped-def]
        return a

    def pos_only(a, /, b=2):  # type: ignore[no-untyped-def]
        return a

    return [plain, no_params, var, kw_only, pos_only]


_CALLS = [((), {}), ((1,), {}), ((1, 2), {}), ((1, 2, 3, 4), {}), ((1, 2, 3, 4, 5), {}), ((), {"a": 1, "b": 2}),
          ((1,), {"b": 2, "d": 4}), ((1,), {"a": 2}), ((1, 2), {"zz": 1}), ((1, 2), {"c": None}), ((), {"b": 1}),
          ((1,), {"rest": 2, "k": 5, "x": 1})]


def test_binding_plain_parameters_is_inspects_binding() -> None:
    """bind_arguments gives what Signature.bind_partial + apply_defaults gives (the same names, values
    and order), and the same TypeError where inspect refuses a call, for every kind of signature."""
    import inspect

    import pytest

    from reproflow.recorder._attempt import bind_arguments, task_spec

    for fn in _signatures():
        spec = task_spec(fn)
        for args, kwargs in _CALLS:
            try:
                bound = inspect.signature(fn).bind_partial(*args, **kwargs)
            except TypeError:
                with pytest.raises(TypeError):
                    bind_arguments(spec, args, kwargs)
                continue
            bound.apply_defaults()
            got = bind_arguments(spec, args, kwargs)
            assert list(got.items()) == list(bound.arguments.items()), (fn.__name__, args, kwargs)


def test_a_large_parameter_or_result_is_hashed_once(monkeypatch: Any) -> None:
    """A numpy array as a parameter or a result is hashed once for its record: its typed JSON
    (an opaque marker) and the "too large to inline" marker of a long list carry the hash
    already computed for parameter_hashes / result_hash, the same digest as hashing it again
    (each was hashed two or three times)."""
    import numpy as np

    from reproflow.recorder._attempt import parameter_fields, result_fields
    from reproflow.values import _valuehash
    from reproflow.values._typed import stable_hash

    arr, longlist = np.arange(100_000, dtype=np.float64), [0.5] * 100_000
    calls: list[str] = []
    feed_foreign, feed = _valuehash._feed_foreign, _valuehash._feed

    def counting_foreign(h: Any, value: Any, depth: int) -> None:
        if value is arr:
            calls.append("array")
        feed_foreign(h, value, depth)

    def counting_feed(h: Any, value: Any, depth: int = 0) -> None:
        if value is longlist:
            calls.append("list")
        feed(h, value, depth)

    monkeypatch.setattr(_valuehash, "_feed_foreign", counting_foreign)
    monkeypatch.setattr(_valuehash, "_feed", counting_feed)
    fields = parameter_fields({"x": arr, "xs": longlist, "n": 3}, None)
    assert calls == ["array", "list"], calls
    assert fields["parameters"]["x"]["hash"] == fields["parameter_hashes"]["x"]
    assert fields["parameters"]["xs"]["hash"] == fields["parameter_hashes"]["xs"]
    assert fields["parameters"]["xs"]["repr"] == "too large to inline"
    calls.clear()
    result = result_fields(arr, None)
    assert calls == ["array"] and result["result_hash"] is not None
    monkeypatch.undo()
    assert fields["parameter_hashes"]["x"] == stable_hash(arr) == result["result_hash"]
    assert fields["parameter_hashes"]["xs"] == stable_hash(longlist)
