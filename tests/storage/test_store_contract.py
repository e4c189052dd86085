"""One store contract, run on every backend: local folder, memory://, S3 (moto), GCS (emulator)."""

from __future__ import annotations

import hashlib
import threading
import uuid
from typing import Any

import pytest
from storage_servers import S3_KEY_ID, S3_SECRET, Backend
from storage_records import put_context, run_record, task_record, write_run

from reproflow import errors
from reproflow.records import RunRecord, TaskRecord
from reproflow.store import Store, model_bytes


def test_run_roundtrip(backend: Backend) -> None:
    """write_run/write_task/write_run_end land as one Run that load_run validates back, equal."""
    store = backend.store()
    run_id = write_run(store, n_tasks=4)
    run = store.load_run(run_id)
    assert run.record.run_id == run_id and run.record.parameters == {"n": 3}
    assert run.status == "COMPLETED" and run.end is not None and run.end.n_tasks == 4
    assert [t.task_name for t in run.tasks] == [f"step-{i}" for i in range(4)]
    assert run.context is not None and run.context.python_version == "3.11.7"
    # a fresh Store object (another process, say) reads the same thing
    again = backend.store().load_run(run_id[:8])
    assert again.model_dump() == run.model_dump()


def test_list_runs_newest_first_with_unfinished(backend: Backend) -> None:
    """list_runs returns every run newest first, and a run without end.json as RUNNING."""
    store = backend.store()
    old = write_run(store, minutes=0)
    new = write_run(store, minutes=10)
    running = write_run(store, minutes=5, end=False, n_tasks=1)
    runs = store.list_runs()
    assert [r.run_id for r in runs] == [new, running, old]
    assert [r.status for r in runs] == ["COMPLETED", "RUNNING", "COMPLETED"]


def test_create_only_records(backend: Backend) -> None:
    """run.json, end.json and task records are written once: a second write changes nothing."""
    store = backend.store()
    ctx = put_context(store)
    first = run_record("run-a", ctx, flow="first")
    assert store.write_run(first) is True
    assert store.write_run(run_record("run-a", ctx, flow="second")) is False
    assert store.load_run_record("run-a").flow_name == "first"
    task = task_record("run-a", ctx, 0)
    store.write_task(task)
    store.write_task(task.model_copy(update={"state": "FAILED"}))
    loaded = store.load_run("run-a").tasks
    assert len(loaded) == 1 and loaded[0].state == "COMPLETED"
    path = store.path("misc", "once.txt")
    assert store.write_bytes(path, b"1", create_only=True) is True
    assert store.write_bytes(path, b"2", create_only=True) is False
    assert store.read_bytes(path) == b"1"


def test_blobs_roundtrip_and_tamper_detection(backend: Backend, tmp_path: Any) -> None:
    """Blobs are named by SHA-256, stored once, and a modified blob is refused on read."""
    store = backend.store()
    data = b"environment " * 1000
    digest = store.put_blob(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.put_blob(data) == digest
    assert backend.store().get_blob(digest) == data
    src = tmp_path / "big.bin"
    src.write_bytes(b"x" * 300_000)
    fdigest = store.put_blob_file(src)
    out = tmp_path / "back.bin"
    backend.store().get_blob_to_file(fdigest, out)
    assert out.read_bytes() == src.read_bytes()

    store.fs.pipe_file(store.blob_path(digest), b"environment, edited")
    with pytest.raises(errors.TamperedBlob) as info:
        backend.store().get_blob(digest)
    assert info.value.digest == digest
    with pytest.raises(errors.BlobError):
        store.get_blob("0" * 64)


def test_corrupt_record(backend: Backend) -> None:
    """A run.json that is not JSON, or breaks the schema, raises CorruptRecord naming the file."""
    store = backend.store()
    run_id = write_run(store, n_tasks=1)
    path = store.path("runs", run_id, "run.json")
    store.fs.pipe_file(path, b"{not json")
    with pytest.raises(errors.CorruptRecord) as info:
        backend.store().load_run(run_id)
    assert "run.json" in info.value.path
    store.fs.pipe_file(path, b'{"schema_version": "1.0", "run_id": 5}')
    with pytest.raises(errors.CorruptRecord):
        backend.store().load_run(run_id)


def test_task_records_in_batches(backend: Backend) -> None:
    """Task records written in one batch file load like records of their own, with them; the
    first record met of an attempt counts (a ``.json`` before a batch); a batch line naming
    another run, or a torn one, is refused."""
    store = backend.store()
    run_id = write_run(store, n_tasks=1, end=False)
    ctx = store.load_run_record(run_id).context
    batch = [task_record(run_id, ctx, i) for i in (1, 2, 3)]
    store.write_task_batch(run_id, [(t.task_run_id, t.attempt, model_bytes(t)) for t in batch])
    tdir = store.path("runs", run_id, "tasks")
    names = sorted(store.ls(tdir))
    assert len(names) == 2 and sum(n.endswith(".jsonl") for n in names) == 1
    fresh = backend.store()
    assert [t.task_name for t in fresh.load_run(run_id).tasks] == ["step-0", "step-1", "step-2", "step-3"]
    assert fresh.task_run_ids(run_id) == {str(uuid.UUID(int=i + 1)) for i in range(4)}
    # the writing process counts its own batches without reading them (its run's end is written
    # while the store is offline too)
    def unreachable(paths: list[str]) -> Any:
        raise errors.StoreUnreachable.from_exc(store.display_url, OSError("down"))

    store.read_many = unreachable  # type: ignore[method-assign]
    assert store.task_run_ids(run_id) == {str(uuid.UUID(int=i + 1)) for i in range(4)}
    with pytest.raises(errors.StoreUnreachable):
        store.load_run(run_id)  # (records are read, though)
    del store.read_many
    # the same attempt again in a later batch, changed: the first record met stays
    again = task_record(run_id, ctx, 0, task_name="changed")
    store.write_task_batch(run_id, [(again.task_run_id, 1, model_bytes(again)),
                                    (batch[0].task_run_id, 1, model_bytes(batch[0]))])
    assert [t.task_name for t in backend.store().load_run(run_id).tasks] == ["step-0", "step-1", "step-2", "step-3"]
    # a batch line of another run's record
    other = task_record("another-run", ctx, 7)
    bad = store.path("runs", run_id, "tasks", "batch-other.jsonl")
    store.fs.pipe_file(bad, model_bytes(other) + b"\n")
    with pytest.raises(errors.UnsafeRecord, match="another-run"):
        backend.store().load_run(run_id)
    store.fs.pipe_file(bad, model_bytes(batch[1])[:40] + b"\n")
    with pytest.raises(errors.CorruptRecord) as info:
        backend.store().load_run(run_id)
    assert info.value.path.endswith("batch-other.jsonl line 1")


def test_corrupt_task_record(backend: Backend) -> None:
    """A truncated task record (a torn write by some other tool) is refused, never half-read."""
    store = backend.store()
    run_id = write_run(store, n_tasks=2)
    tdir = store.path("runs", run_id, "tasks")
    name = sorted(store.ls(tdir))[0]
    good = store.read_bytes(f"{tdir}/{name}")
    store.fs.pipe_file(f"{tdir}/{name}", good[: len(good) // 2])
    with pytest.raises(errors.CorruptRecord):
        backend.store().load_run(run_id)


def test_newer_schema(backend: Backend) -> None:
    """A record from a newer major schema version raises NewerSchema with both versions."""
    store = backend.store()
    ctx = put_context(store)
    record = run_record("run-n", ctx).model_copy(update={"schema_version": "9.0"})
    store.write_run(record)
    with pytest.raises(errors.NewerSchema) as info:
        backend.store().load_run("run-n")
    assert info.value.found == "9.0"
    # a newer *minor* version with an unknown field still loads
    minor = run_record("run-m", ctx).model_dump(mode="json") | {"schema_version": "1.9", "new_field": 1}
    store.write_bytes(store.path("runs", "run-m", "run.json"), model_bytes(RunRecord.model_validate(minor)))
    assert backend.store().load_run_record("run-m").run_id == "run-m"


def test_unknown_run(backend: Backend) -> None:
    """An id that is not in the store raises RunNotFound (a LookupError) with the id."""
    store = backend.store()
    write_run(store, n_tasks=1)
    with pytest.raises(errors.RunNotFound) as info:
        store.load_run("ffffffff-0000")
    assert info.value.run_id == "ffffffff-0000"
    assert isinstance(info.value, LookupError)


def test_missing_store(backend: Backend) -> None:
    """A location holding no records raises StoreNotFound on list and load."""
    empty = Backend(backend.name, backend.url.rstrip("/") + "-nothing-here", backend.storage_options).store()
    with pytest.raises(errors.StoreNotFound):
        empty.list_runs()
    with pytest.raises(errors.StoreNotFound):
        empty.load_run("abcdef12")


def test_concurrent_task_writes(backend: Backend) -> None:
    """50 threads writing task records at once leave 50 valid records (one file each)."""
    store = backend.store()
    ctx = put_context(store)
    store.write_run(run_record("run-c", ctx))
    records = [task_record("run-c", ctx, i) for i in range(50)]
    threads = [threading.Thread(target=store.write_task, args=(r,)) for r in records]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loaded = backend.store().load_run("run-c").tasks
    assert sorted(t.task_run_id for t in loaded) == sorted(r.task_run_id for r in records)
    assert all(isinstance(t, TaskRecord) for t in loaded)


def test_store_writes_no_storage_options(backend: Backend) -> None:
    """Nothing under the store holds the storage options or the credentials used to reach it."""


    store = backend.store()
    write_run(store, n_tasks=2)
    store.fingerprint("value")
    found = store.fs.find(store.root)
    assert found, "the store wrote nothing"
    blob = b"".join(bytes(store.fs.cat_file(p)) for p in found)
    assert S3_SECRET.encode() not in blob
    for value in _strings(backend.storage_options):
        assert value.encode() not in blob, value


def _strings(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    return [obj] if isinstance(obj, str) and len(obj) > 3 else []


def test_credentials_in_storage_options_never_stored(s3_server: Any, cache_dirs: Any) -> None:
    """Credentials passed as storage_options (not env) reach S3 but never any stored byte."""


    secret = "rf-explicit-" + hashlib.sha256(b"x").hexdigest()[:20]
    bucket = s3_server.new_bucket()
    store = Store(f"s3://{bucket}/s", key=S3_KEY_ID, secret=secret, client_kwargs={"endpoint_url": s3_server.endpoint})
    run_id = write_run(store, n_tasks=1)
    assert store.load_run(run_id).record.run_id == run_id
    client = s3_server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    data = b"".join(client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys)
    assert secret.encode() not in data and b"rf-secret-" not in data
    assert "secret" not in repr(store)


def test_latest_is_the_newest_run_that_is_not_a_replay(store: Store) -> None:
    """`latest` means the newest run the user recorded: after `reproflow replay latest`, the next
    `report latest`/`export latest` must not silently switch to the replay run (issue 10). A
    store holding only replays gives the newest replay."""
    from reproflow.records import RunSummary

    own = write_run(store, minutes=0)
    replay = write_run(store, minutes=10)
    path = f"index/{replay}.json"
    summary = RunSummary.model_validate_json(store.read_bytes(store.path(path)))
    store.write_bytes(store.path(path), model_bytes(summary.model_copy(update={"replay_of": own})))
    assert store.list_runs()[0].run_id == replay
    assert store.resolve_run_id("latest") == own
    assert store.load_run("latest").run_id == own

    only_replays = Store(str(store.root) + "-replays")
    r = write_run(only_replays, minutes=0)
    p = f"index/{r}.json"
    s = RunSummary.model_validate_json(only_replays.read_bytes(only_replays.path(p)))
    only_replays.write_bytes(only_replays.path(p), model_bytes(s.model_copy(update={"replay_of": "x"})))
    assert only_replays.resolve_run_id("latest") == r


@pytest.mark.parametrize("unnamed", [True, False], ids=["unnamed-temporary", "named-temporary"])
def test_local_create_only_writes_are_whole_and_once(store: Store, monkeypatch: pytest.MonkeyPatch,
                                                     unnamed: bool) -> None:
    """A local create-only write, through Linux's unnamed temporary file (O_TMPFILE, linked
    under its name) or the named temporary it falls back to: 16 threads racing for one name
    leave exactly one winner, whose bytes are whole; a missing folder is made; no temporary is
    left behind; the file has the usual permissions."""
    import os

    from reproflow.store import _tmpfile

    if unnamed and not _tmpfile["ok"]:
        pytest.skip("no O_TMPFILE or /proc/self/fd here")
    monkeypatch.setitem(_tmpfile, "ok", unnamed)
    path = store.path("runs", "run-t", "tasks", "one.json")  # the folders do not exist yet
    payloads = [bytes([65 + i]) * (100_000 + i) for i in range(16)]
    results: list[bool] = [False] * 16
    barrier = threading.Barrier(16)

    def write(i: int) -> None:
        barrier.wait()
        results[i] = store.write_bytes(path, payloads[i], create_only=True)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert store.read_bytes(path) == payloads[results.index(True)]
    assert os.listdir(os.path.dirname(path)) == ["one.json"]
    reference = os.path.join(os.path.dirname(store.path("misc")), "reference")
    with open(reference, "wb"):
        pass  # a file made the usual way, for the permissions the umask leaves
    assert os.stat(path).st_mode & 0o777 == os.stat(reference).st_mode & 0o777
    assert _tmpfile["ok"] is unnamed  # the way asked for was the way taken
    other = store.path("runs", "run-t", "tasks", "two.json")
    assert store.write_bytes(other, b"{}", create_only=True) is True
    assert store.write_bytes(other, b"[]", create_only=False) is True  # a replace, as before
    assert store.read_bytes(other) == b"[]"
    assert sorted(os.listdir(os.path.dirname(path))) == ["one.json", "two.json"]

