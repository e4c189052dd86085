"""How many requests the store makes on S3 (moto): each one is a round trip to the object store,
paid per record and blob while a flow records and while a replay reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reproflow.store import Store, _PUT_UNCHECKED_MAX


@pytest.fixture
def s3_store(s3_server: Any, cache_dirs: Any) -> Iterator[tuple[Store, list[str]]]:
    """A store in a fresh bucket, and the S3 API calls its client makes (by operation name)."""
    store = Store(f"s3://{s3_server.new_bucket()}/team/store", **s3_server.storage_options)
    store.fs.connect()
    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events = store.fs.s3.meta.events
    events.register("before-call.s3", count)
    try:
        yield store, calls
    finally:
        events.unregister("before-call.s3", count)


def test_a_small_blob_is_one_put_new_or_not(s3_store: tuple[Store, list[str]]) -> None:
    """A new small blob is one create-only PUT (no HEAD, and no LIST for the folder s3fs looks
    for when the HEAD misses); one already there fails that PUT and is left as it was."""
    store, calls = s3_store
    digest = store.put_blob(b"environment " * 100)
    assert calls == ["PutObject"]
    calls.clear()
    again = Store(store.url, **store.storage_options)  # another process: knows nothing of the blob
    assert again.put_blob(b"environment " * 100) == digest
    assert calls == ["PutObject"]
    calls.clear()
    assert store.put_blob(b"environment " * 100) == digest  # known to this store: no request
    assert calls == []
    assert Store(store.url, **store.storage_options).get_blob(digest) == b"environment " * 100


def test_a_large_blob_is_checked_before_it_is_sent(s3_store: tuple[Store, list[str]]) -> None:
    """Above the threshold the bytes are not sent again when the blob is already there."""
    store, calls = s3_store
    data = b"x" * (_PUT_UNCHECKED_MAX + 1)
    digest = store.put_blob(data)
    assert calls[0] == "HeadObject" and calls[-1] == "PutObject"
    calls.clear()
    assert Store(store.url, **store.storage_options).put_blob(data) == digest
    assert calls == ["HeadObject"]


def test_a_record_is_read_in_one_get(s3_store: tuple[Store, list[str]]) -> None:
    """Reading a record or blob is one GET (s3fs asked the object's size first: a HEAD each),
    a missing one included, and many at once are a GET each."""
    store, calls = s3_store
    digest = store.put_blob(b"{}")
    calls.clear()
    reader = Store(store.url, **store.storage_options)
    assert reader.read_bytes(reader.blob_path(digest)) == b"{}"
    assert calls == ["GetObject"]
    calls.clear()
    with pytest.raises(FileNotFoundError):
        reader.read_bytes(reader.path("keys", "absent.key"))
    assert calls == ["GetObject"]
    calls.clear()
    out = reader.read_many([reader.blob_path(digest), reader.path("runs", "absent", "run.json")])
    assert out[reader.blob_path(digest)] == b"{}"
    assert isinstance(out[reader.path("runs", "absent", "run.json")], FileNotFoundError)
    assert calls == ["GetObject", "GetObject"]
