"""Faults: a store that goes away mid-run never fails the user's work; `reproflow sync` lands
every spooled record exactly once afterwards. Strict mode re-raises instead."""

from __future__ import annotations

import json
import os
import posixpath
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from storage_records import put_context, run_record, task_record, write_run
from storage_servers import S3_SECRET, S3Server, free_port

from reproflow.store import _spool
from reproflow import errors
from reproflow.cli._common import run_cli
from reproflow.cli import app
from reproflow.records import RunEnd
from reproflow.store import Store


@pytest.fixture
def own_s3(s3_env: None, cache_dirs: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """A moto server of this test's own, so it can be stopped and restarted (same port).

    Its endpoint is also put in fsspec's config, as a user's ~/.config/fsspec file would, so the
    CLI reaches it from the URL alone.
    """
    port = free_port()
    srv = S3Server(port=port, server=None)
    srv.start()
    monkeypatch.setitem(fsspec.config.conf, "s3", srv.storage_options)
    yield srv
    try:
        srv.stop()
    except Exception:  # noqa: BLE001 - already stopped by the test
        pass


def _objects(srv: S3Server, bucket: str) -> dict[str, bytes]:
    client = srv.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def test_store_down_mid_run_spools_then_sync_lands_once(own_s3: S3Server, capsys: pytest.CaptureFixture[str]) -> None:
    """Server stopped between tasks: later writes succeed locally (spool), the run can still be
    closed, and after a restart `reproflow sync` lands every record once; a second sync is a no-op."""
    bucket = own_s3.new_bucket()
    url = f"s3://{bucket}/store"
    store = Store(url, **own_s3.storage_options)
    ctx = put_context(store)
    store.write_run(run_record("run-x", ctx))
    for i in range(2):
        store.write_task(task_record("run-x", ctx, i))
    before = set(_objects(own_s3, bucket))

    own_s3.stop()
    for i in range(2, 6):
        store.write_task(task_record("run-x", ctx, i))  # no exception: spooled
    assert _spool.is_offline(store.display_url)
    blob = store.put_blob(b"a result written while offline")
    # closing the run reads back what this process wrote, and lists its task names
    assert store.load_run_record("run-x").run_id == "run-x"
    assert len(store.ls(store.path("runs", "run-x", "tasks"))) == 6
    store.write_run_end(RunEnd(run_id="run-x", status="COMPLETED", n_tasks=6))
    spooled = store.spool.files()
    assert len(spooled) == 6  # 4 tasks, 1 blob, end.json
    assert spooled[0].startswith("objects/") and spooled[-1].endswith("end.json")
    assert S3_SECRET.encode() not in b"".join((store.spool.dir / p).read_bytes() for p in spooled)

    own_s3.start()
    code = run_cli(app, ["sync", "--store", url, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    [report] = json.loads(out)
    assert report["uploaded"] == 6 and report["remaining"] == 0
    assert not store.spool.dir.exists()

    objects = _objects(own_s3, bucket)
    assert set(objects) - before == {f"store/{p}" for p in spooled}
    run = Store(url, **own_s3.storage_options).load_run("run-x")
    assert len(run.tasks) == 6 and len({t.task_run_id for t in run.tasks}) == 6
    assert run.status == "COMPLETED"
    assert Store(url, **own_s3.storage_options).get_blob(blob) == b"a result written while offline"

    assert run_cli(app, ["sync", "--store", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["uploaded"] == 0
    assert _objects(own_s3, bucket) == objects


def test_sync_never_overwrites_what_landed(cache_dirs: Any, tmp_path: Path) -> None:
    """A record that reached the store and was also spooled (lost reply) is not rewritten by sync."""
    store = Store(tmp_path / "store")
    run_id = write_run(store, n_tasks=1)
    rel = f"runs/{run_id}/run.json"
    landed = store.read_bytes(store.path(*rel.split("/")))
    store.spool.put(rel, b'{"schema_version":"1.0","stale":true}')
    [report] = _spool.sync(str(tmp_path / "store"))
    assert report.already_present == [rel] and report.uploaded == []
    assert store.read_bytes(store.path(*rel.split("/"))) == landed
    assert not store.spool.dir.exists()


def test_sync_without_store_finds_every_spool(cache_dirs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`reproflow sync` with no --store uploads the spool of every store that has one."""
    stores = [Store(tmp_path / f"s{i}") for i in range(2)]
    for i, s in enumerate(stores):
        ctx = put_context(s)
        s.spool.put(f"runs/r{i}/run.json", run_record(f"r{i}", ctx).model_dump_json().encode())
    assert run_cli(app, ["sync"]) == 0
    assert "uploaded" in capsys.readouterr().out
    for i, s in enumerate(stores):
        assert s.load_run_record(f"r{i}").run_id == f"r{i}"
    assert run_cli(app, ["sync"]) == 0
    assert "nothing to sync" in capsys.readouterr().out


def test_sync_while_still_down_keeps_the_spool(own_s3: S3Server, capsys: pytest.CaptureFixture[str]) -> None:
    """Syncing while the store is still unreachable keeps every file and exits 3 with one line."""
    bucket = own_s3.new_bucket()
    url = f"s3://{bucket}/store"
    store = Store(url, **own_s3.storage_options)
    ctx = put_context(store)
    own_s3.stop()
    store.write_run(run_record("run-y", ctx))
    assert store.spool.files() == ["runs/run-y/run.json"]
    code = run_cli(app, ["sync", "--store", url])
    err = capsys.readouterr().err
    assert code == errors.StoreUnreachable.exit_code
    assert "still spooled" in err and len([x for x in err.splitlines() if x.strip()]) == 1
    assert store.spool.files() == ["runs/run-y/run.json"]


def test_sync_to_a_bucket_that_no_longer_exists_is_one_line(own_s3: S3Server, capsys: pytest.CaptureFixture[str]) -> None:
    """A spooled record whose bucket was deleted since: `reproflow sync` says so in one line (no
    traceback), exits 3 and keeps the spool (issue 17: it printed FileNotFoundError's traceback)."""
    bucket = own_s3.new_bucket()
    url = f"s3://{bucket}/store"
    store = Store(url, **own_s3.storage_options)
    ctx = put_context(store)
    own_s3.stop()
    store.write_run(run_record("run-b", ctx))
    own_s3.start()
    client = own_s3.client()
    for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)
    code = run_cli(app, ["sync", "--store", url])
    captured = capsys.readouterr()
    lines = [x for x in captured.err.splitlines() if x.strip()]
    assert code == errors.StoreUnreachable.exit_code == 3
    assert len(lines) == 1 and "bucket does not exist" in lines[0] and "still spooled" in lines[0], captured.err
    assert "Traceback" not in captured.out + captured.err
    assert store.spool.files() == ["runs/run-b/run.json"]


def test_strict_mode_reraises(own_s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """strict=True, or REPROFLOW_STRICT=1, raises StoreUnreachable and spools nothing."""
    bucket = own_s3.new_bucket()
    url = f"s3://{bucket}/store"
    ctx = put_context(Store(url, **own_s3.storage_options))
    own_s3.stop()
    strict = Store(url, strict=True, **own_s3.storage_options)
    with pytest.raises(errors.StoreUnreachable):
        strict.write_task(task_record("run-z", ctx, 0))
    monkeypatch.setenv("REPROFLOW_STRICT", "1")
    from_env = Store(url, **own_s3.storage_options)
    assert from_env.strict
    with pytest.raises(errors.StoreUnreachable):
        from_env.write_run(run_record("run-z", ctx))
    assert from_env.spool.files() == []


def test_offline_window_expires(own_s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the offline window the store is tried again: a write lands directly once it is back."""
    monkeypatch.setenv("REPROFLOW_OFFLINE_RETRY_S", "0.2")
    bucket = own_s3.new_bucket()
    url = f"s3://{bucket}/store"
    store = Store(url, **own_s3.storage_options)
    ctx = put_context(store)
    own_s3.stop()
    store.write_task(task_record("run-w", ctx, 0))
    assert store.spool.files() == [posixpath.relpath(store.task_path(task_record("run-w", ctx, 0)), store.root)]
    own_s3.start()
    time.sleep(0.3)
    # the window has passed: this write still goes to the spool (nothing waits on the store)
    # while one background probe finds the store back; the writes after it land directly
    store.write_task(task_record("run-w", ctx, 1))
    deadline = time.monotonic() + 30
    while _spool.offline_state(store.display_url) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _spool.offline_state(store.display_url) is None
    store.write_task(task_record("run-w", ctx, 2))
    assert len(store.spool.files()) == 2  # the third one went straight to S3
    assert f"store/runs/run-w/tasks/{task_record('run-w', ctx, 2).task_run_id}.1.json" in _objects(own_s3, bucket)


def test_a_store_that_never_answers_is_given_up_on_once(cache_dirs: Any, s3_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store whose server accepts connections and never answers (a hung endpoint, a black-holed
    network) holds recording for one bounded call ($REPROFLOW_STORE_TIMEOUT_S), not for the
    client's own timeouts and retries on every write (botocore: 60 s per attempt): the whole run
    is then spooled, and the warning is given once (issue 17: a dead store multiplied a flow's
    time by four)."""
    import logging
    import socket

    monkeypatch.setenv("REPROFLOW_STORE_TIMEOUT_S", "1")
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(128)
    try:
        store = Store("s3://hole/store", client_kwargs={"endpoint_url": f"http://127.0.0.1:{hole.getsockname()[1]}"})
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger("reproflow").addHandler(handler)
        try:
            ctx = put_context(store)
            store.write_run(run_record("run-h", ctx))
            for i in range(5):
                store.write_task(task_record("run-h", ctx, i))
        finally:
            logging.getLogger("reproflow").removeHandler(handler)
        spooled = store.spool.files()
        assert "runs/run-h/run.json" in spooled
        assert sum(1 for f in spooled if f.startswith("runs/run-h/tasks/")) == 5
        assert sum(1 for f in spooled if f.startswith("objects/")) == 2  # environment + context
        assert len([r for r in records if "unreachable" in r.getMessage()]) == 1
    finally:
        hole.close()


@pytest.mark.parametrize("unnamed", [False, True], ids=["named-temporary", "unnamed-temporary"])
def test_killed_writer_leaves_no_partial_record(cache_dirs: Any, tmp_path: Path, unnamed: bool) -> None:
    """A process killed in the middle of writing a large blob leaves no blob under its name
    (through a named temporary: only that temporary, which readers and listings ignore and gc
    removes; through Linux's unnamed temporary file: nothing at all), and the run still loads."""
    from reproflow.store import _tmpfile

    if unnamed and not _tmpfile["ok"]:
        pytest.skip("no O_TMPFILE or /proc/self/fd here")
    root = tmp_path / "store"
    run_id = write_run(Store(root), n_tasks=2)
    flag = tmp_path / "writing"
    script = textwrap.dedent(
        f"""
        import os, time
        import reproflow.store as st
        st._tmpfile["ok"] = {unnamed!r}
        store = st.Store({str(root)!r})
        data = os.urandom(1 << 20)
        orig_write = os.write
        def slow_write(fd, buf):
            target = os.readlink(f"/proc/self/fd/{{fd}}")
            if "/.tmp-" in target or ({unnamed!r} and target.endswith(" (deleted)")):
                orig_write(fd, data)
                open({str(flag)!r}, "w").close()
                while True:
                    time.sleep(1)  # killed here, half-way through the atomic write
            return orig_write(fd, buf)
        os.write = slow_write
        store.put_blob(data * 4)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while not flag.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "writer never started"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    store = Store(root)
    blobs = [p for p in (root / "objects").rglob("*") if p.is_file()]
    temps = [p for p in blobs if p.name.startswith(".tmp-")]
    names = {p.parent.name + p.name for p in blobs if not p.name.startswith(".tmp-")}
    assert all(store.get_blob(d) for d in names)  # every named blob is whole
    assert len(store.load_run(run_id).tasks) == 2
    assert [r.run_id for r in store.list_runs()] == [run_id]
    from reproflow.store._gc import gc

    if unnamed:  # the half-written file had no name: nothing is left
        assert temps == []
        assert gc(store).temp_removed == []
        return
    assert len(temps) == 1 and temps[0].stat().st_size == 1 << 20
    os.utime(temps[0], (time.time() - 7200, time.time() - 7200))
    assert gc(store).temp_removed == [str(temps[0])]
