"""The one schema: JSON Schema kept current, records round-trip, versions are enforced."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reproflow
from reproflow import errors, records
from reproflow.store import Store, model_bytes, parse_record

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_schema", ROOT / "scripts" / "generate_schema.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_json_schema_is_current() -> None:
    """docs/schema/*.json equals what records.py generates (run scripts/generate_schema.py)."""
    for name, text in _generator().schemas().items():
        committed = (ROOT / "docs" / "schema" / name).read_text()
        assert committed == text, f"docs/schema/{name} is stale: run python scripts/generate_schema.py"


def test_public_names_are_exactly_all() -> None:
    """`reproflow.__all__` is the public door, and every name in it resolves."""
    assert reproflow.__all__ == sorted(
        ["CONTENT", "Input", "Output", "ReproTask", "ReproflowError", "Store", "__version__", "hash_path",
         "list_runs", "load_run", "probe", "record", "register_hasher", "repro_task", "replay", "stable_hash",
         "wait_for_artifacts"]
    )
    for name in reproflow.__all__:
        assert getattr(reproflow, name) is not None


_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)
_hex = st.text("0123456789abcdef", min_size=64, max_size=64)
_when = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.timezone.utc))
_json = st.recursive(st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _text, lambda c: st.lists(c, max_size=3) | st.dictionaries(_text, c, max_size=3), max_leaves=8)
_dataref = st.builds(records.DataRef, uri=_text, kind=st.sampled_from(["file", "directory", "object", "missing"]), sha256=st.none() | _hex, size=st.none() | st.integers(0, 2**40), param=st.none() | _text)
_task = st.builds(
    records.TaskRecord,
    run_id=_text, task_run_id=_text, attempt=st.integers(1, 9), task_name=_text, task_key=_text,
    state=st.sampled_from(["COMPLETED", "FAILED", "CACHED"]), started_at=_when, ended_at=_when,
    duration_s=st.floats(0, 1e6, allow_nan=False), parameters=st.dictionaries(_text, _json, max_size=4),
    parameters_hash=_text, result_hash=st.none() | _text, inputs=st.lists(_dataref, max_size=3),
    outputs=st.lists(_dataref, max_size=3), upstream=st.dictionaries(_text, st.lists(_text, max_size=2), max_size=2),
)


@settings(max_examples=60, deadline=None)
@given(_task)
def test_task_records_round_trip(task: records.TaskRecord) -> None:
    """Any TaskRecord dumps to JSON and validates back equal."""
    assert parse_record(model_bytes(task), records.TaskRecord, "t.json") == task


def test_newer_major_schema_is_refused_and_minor_accepted() -> None:
    """A newer major version is refused with NewerSchema; a newer minor's extra fields are ignored."""
    data = json.loads(model_bytes(records.RunEnd(run_id="r", status="COMPLETED")))
    data["schema_version"] = "9.0"
    with pytest.raises(errors.NewerSchema, match="schema version 9.0, newer than this reproflow reads"):
        parse_record(json.dumps(data).encode(), records.RunEnd, "end.json")
    data["schema_version"] = "2.7"
    data["a_field_from_the_future"] = {"x": 1}
    assert parse_record(json.dumps(data).encode(), records.RunEnd, "end.json").status == "COMPLETED"


@pytest.mark.parametrize(
    "payload, reason",
    [(b"{not json", "not valid JSON"), (b"[1, 2]", "expected a JSON object"),
     (b'{"run_id": "r"}', "missing or invalid schema_version"),
     (b'{"schema_version": "1.0", "run_id": "r", "status": "EXPLODED"}', "status")],
)
def test_corrupt_records_get_one_clear_error(payload: bytes, reason: str) -> None:
    """Corrupt bytes raise CorruptRecord naming the file and the problem."""
    with pytest.raises(errors.CorruptRecord, match=reason) as info:
        parse_record(payload, records.RunEnd, "runs/r/end.json")
    assert info.value.path == "runs/r/end.json"
    assert "\n" not in str(info.value)


def test_store_blobs_detect_tampering(tmp_path: pathlib.Path) -> None:
    """A blob whose bytes changed after writing no longer verifies."""
    store = Store(tmp_path)
    digest = store.put_blob(b"original")
    assert store.get_blob(digest) == b"original"
    pathlib.Path(store.blob_path(digest)).write_bytes(b"tampered")
    with pytest.raises(errors.TamperedBlob):
        store.get_blob(digest)


@pytest.mark.parametrize("durable", [False, True])
def test_create_only_writes_never_overwrite(tmp_path: pathlib.Path, durable: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """run.json is written once: a second writer is a no-op and leaves no temp files; with
    REPROFLOW_DURABLE each file is fsynced before it is published, and only then."""
    monkeypatch.setenv("REPROFLOW_DURABLE", "1" if durable else "0")
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    store = Store(tmp_path)
    assert store.durable is durable
    assert store.write_bytes(store.path("x.json"), b"1", create_only=True)
    assert not store.write_bytes(store.path("x.json"), b"2", create_only=True)
    assert pathlib.Path(store.path("x.json")).read_bytes() == b"1"
    assert sorted(p.name for p in tmp_path.iterdir()) in (["x.json"], [".gitignore", "x.json"])  # a new store folder marks itself ignored
    assert len(synced) == (2 if durable else 0)


def test_run_ids_cannot_escape_the_store(tmp_path: pathlib.Path) -> None:
    """Path-like run ids are refused before touching the filesystem."""
    store = Store(tmp_path)
    for bad in ("../x", "a/b", "..", ""):
        with pytest.raises(errors.RunNotFound):
            store.resolve_run_id(bad)
