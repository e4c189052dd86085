"""`reproflow gc`: unreferenced blobs go, referenced ones (however deep) and young ones stay."""

from __future__ import annotations

import json
from typing import Any

import fsspec
import pytest
from storage_records import data_ref, put_context, run_record, task_record
from storage_servers import Backend

from reproflow.cli._common import run_cli
from reproflow.store._gc import gc, referenced_blobs
from reproflow.cli import app
from reproflow.store import Store, model_bytes


def _populate(store: Store) -> tuple[dict[str, str], str]:
    """A run whose blobs are reachable only through each kind of reference, plus one orphan."""
    refs = {
        "source_blob": store.put_blob(b"tar of an editable package"),
        "diff_blob": store.put_blob(b"diff --git a/x b/x"),
        "result_blob": store.put_blob(b"pickled result"),
        "stored_blob": store.put_blob(b"copy of an input file"),
    }
    ctx = put_context(store, source_blob=refs["source_blob"], diff_blob=refs["diff_blob"])
    refs["context"] = ctx
    store.write_run(run_record("run-g", ctx))
    referencing = task_record("run-g", ctx, 0, result_blob=refs["result_blob"],
                              inputs=[data_ref("/data/in.csv", refs["stored_blob"])])
    plain = task_record("run-g", ctx, 1)
    # in one batch file (runs/run-g/tasks/*.jsonl), as the flow's writer thread writes them
    store.write_task_batch("run-g", [(t.task_run_id, t.attempt, model_bytes(t)) for t in (referencing, plain)])
    orphan = store.put_blob(b"left over from a deleted run")
    return refs, orphan


def test_gc_removes_only_unreferenced(backend: Backend) -> None:
    """Every blob reachable from a record (context -> environment -> distribution source, git
    diff, result, stored input) survives; the orphan goes; the run still loads and verifies."""
    store = backend.store()
    refs, orphan = _populate(store)
    kept = referenced_blobs(store)
    assert set(refs.values()) <= kept and orphan not in kept

    report = gc(backend.store(), grace_s=0)
    assert report.removed == [orphan]
    assert report.missing == []
    fresh = backend.store()
    assert not fresh.has_blob(orphan)
    for digest in refs.values():
        assert fresh.get_blob(digest)
    run = fresh.load_run("run-g")
    assert run.context is not None and run.context.git.diff_blob == refs["diff_blob"]
    assert gc(backend.store(), grace_s=0).removed == []


def test_gc_grace_period_and_dry_run(backend: Backend) -> None:
    """A young orphan is kept by the default one-hour grace; --dry-run reports without removing."""
    store = backend.store()
    _, orphan = _populate(store)
    report = gc(store)
    assert report.removed == [] and report.young == [orphan]
    report = gc(store, grace_s=0, dry_run=True)
    assert report.removed == [orphan] and report.bytes_freed == len(b"left over from a deleted run")
    assert backend.store().has_blob(orphan)


def test_gc_corrupt_record_still_protects(backend: Backend) -> None:
    """A record that no longer parses still protects every blob it mentions."""
    store = backend.store()
    refs, orphan = _populate(store)
    path = store.path("runs", "run-g", "run.json")
    store.fs.pipe_file(path, bytes(store.fs.cat_file(path))[:-7])  # truncated JSON
    report = gc(backend.store(), grace_s=0)
    assert report.removed == [orphan]
    assert backend.store().get_blob(refs["context"])


def test_gc_cli_json(s3_server: Any, cache_dirs: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`reproflow gc --store s3://... --grace 0 --json` prints the report and removes the orphan."""
    monkeypatch.setitem(fsspec.config.conf, "s3", s3_server.storage_options)
    url = f"s3://{s3_server.new_bucket()}/store"
    _, orphan = _populate(Store(url))
    assert run_cli(app, ["gc", "--store", url, "--dry-run", "--grace", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == [orphan]
    assert Store(url).has_blob(orphan)
    assert run_cli(app, ["gc", "--store", url, "--grace", "0"]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert not Store(url).has_blob(orphan)
