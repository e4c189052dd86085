"""A real Prefect flow whose S3 store dies between tasks: the flow completes, the records wait in
the spool, and `reproflow sync` lands every one of them exactly once when the store is back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import fsspec
import pytest
from storage_servers import S3Server, free_port

from reproflow.cli._common import run_cli
from reproflow.cli import app
from reproflow.store import Store

pytestmark = pytest.mark.slow

_SERVER: list[S3Server] = []


@pytest.fixture
def own_s3(s3_env: None, cache_dirs: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """A moto server of this test's own (stoppable), reachable from the store URL alone."""
    srv = S3Server(port=free_port(), server=None)
    srv.start()
    monkeypatch.setitem(fsspec.config.conf, "s3", srv.storage_options)
    _SERVER[:] = [srv]
    yield srv
    _SERVER.clear()
    try:
        srv.stop()
    except Exception:  # noqa: BLE001 - stopped already
        pass


def _keys(srv: S3Server, bucket: str) -> dict[str, bytes]:
    client = srv.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def test_flow_survives_store_outage_and_sync_lands_records_once(
    prefect_harness: None, own_s3: S3Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stop S3 inside task 3 of 6: the flow still completes with the right result; after a
    restart `reproflow sync` uploads the spooled task records and end.json; the run then loads
    with all 6 task records (no duplicates, DAG edges intact), and a second sync changes nothing."""
    from prefect import flow

    from reproflow import repro_task

    bucket = own_s3.new_bucket()
    url = f"s3://{bucket}/store"

    @repro_task(store=url)
    def step(i: int, prev: int) -> int:
        if i == 3:
            _SERVER[0].stop()  # the store goes away while the flow runs
        return prev + i

    @flow(name="outage-flow")
    def pipeline(n: int) -> int:
        acc = step.submit(0, 100)
        for i in range(1, n):
            acc = step.submit(i, acc)  # a future: Prefect records the edge
        return acc.result()

    state = pipeline(6, return_state=True)
    assert state.is_completed() and state.result() == 100 + sum(range(6))
    run_id = str(state.state_details.flow_run_id)

    spooled = Store(url).spool.files()
    assert any(p.endswith("end.json") for p in spooled)
    # Steps 3, 4 and 5 finished with the store down: their records are spooled. An earlier
    # step's may be too: records are written by the flow process's writer thread, which can
    # still be behind when step 3 stops the server.
    spool = Store(url).spool  # a record file per task, or a batch of records, one per line
    spooled_ids = {json.loads(line)["task_run_id"] for p in spooled if "/tasks/" in p
                   for line in (spool.get(p) or b"").splitlines()}
    assert 3 <= len(spooled_ids) <= 6

    own_s3.start()
    assert run_cli(app, ["sync", "--store", url, "--json"]) == 0
    [report] = json.loads(capsys.readouterr().out)
    assert report["remaining"] == 0 and report["uploaded"] == len(spooled) - report["already_present"]
    landed = _keys(own_s3, bucket)

    run = Store(url).load_run(run_id)
    assert run.status == "COMPLETED" and run.end is not None and run.end.n_tasks == 6
    assert len(run.tasks) == 6 and len({t.task_run_id for t in run.tasks}) == 6
    by_id = {t.task_run_id: t for t in run.tasks}
    step_of = {t.parameters["i"]: t.task_run_id for t in run.tasks}
    assert {step_of[3], step_of[4], step_of[5]} <= spooled_ids
    ordered = sorted(run.tasks, key=lambda t: t.started_at)
    for before, after in zip(ordered, ordered[1:]):
        assert before.task_run_id in after.upstream.get("prev", []), after.upstream
    assert all(by_id[t.task_run_id].context == run.record.context for t in run.tasks)

    assert run_cli(app, ["sync", "--store", url, "--json"]) == 0
    [again] = json.loads(capsys.readouterr().out)
    assert again["uploaded"] == again["remaining"] == 0
    assert _keys(own_s3, bucket) == landed
