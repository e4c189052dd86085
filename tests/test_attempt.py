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
