"""Flows on Prefect's Dask task runner: every task run is recorded from the worker processes,
and the once-per-process capture happens once per worker, not once per task.

One LocalCluster of 2 worker processes serves the whole module (creating one costs ~12 s); the
flows reach it through ``DaskTaskRunner(address=...)``.

What mapped tasks cost on Dask is almost all Prefect's, not reproflow's (measured with py-spy on the
workers: reproflow's wrapper is ~0.5% of their CPU). Prefect builds a new API client for every
task run on a Dask worker, and each client builds an SSL context from certifi's CA bundle
(~50-90 ms here) even for the plain-http test API; ``_quiet_prefect`` points Prefect at a
one-certificate bundle instead, which cuts the workers' CPU by ~40%. The settings travel to the
workers inside Prefect's serialized settings context.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reproflow import repro_task
from reproflow.records import ProcessContext
from reproflow.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dask_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The store, named by REPROFLOW_STORE before the workers start, so they inherit it."""
    url = str(tmp_path_factory.mktemp("dask") / "store")
    mp = pytest.MonkeyPatch()
    mp.setenv("REPROFLOW_STORE", url)
    yield url
    mp.undo()


@pytest.fixture(scope="module")
def dask_cluster(dask_store: str) -> Iterator[Any]:
    """2 worker processes, 2 threads each (more threads only contend for the GIL on 2 cores),
    shared by the module's flows."""
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
        silence_logs=40,
    )
    try:
        yield cluster
    finally:
        cluster.close()


@contextlib.contextmanager
def _quiet_prefect(tmp: Path) -> Iterator[None]:
    """Prefect settings for the flow and, through its serialized context, for the workers: no
    logs shipped to the API, and a one-certificate CA bundle (the test API is plain http on
    127.0.0.1, so no certificate is ever checked) instead of certifi's ~150 certificates."""
    import certifi
    from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

    bundle = Path(certifi.where()).read_text()
    first = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", bundle, re.S)
    assert first is not None
    ca = tmp / "one-ca.pem"
    ca.write_text(first.group(0))
    with temporary_settings({PREFECT_API_SSL_CERT_FILE: str(ca), PREFECT_LOGGING_TO_API_ENABLED: False}):
        yield


@repro_task
def inc(x: int) -> dict[str, int]:
    return {"value": x + 1}


@repro_task
def double(item: dict[str, int]) -> dict[str, int]:
    return {"value": item["value"] * 2}


def _flow(address: str, n: int) -> Any:
    from prefect import flow
    from prefect_dask import DaskTaskRunner

    @flow(name="dask-fanout", task_runner=DaskTaskRunner(address=address))
    def fanout(count: int) -> int:
        a = inc.map(range(count))
        b = double.map(a)
        return sum(f.result()["value"] for f in b)

    return fanout(n, return_state=True)


def test_dask_mapped_tasks_all_recorded(
    dask_cluster: Any, dask_store: str, prefect_harness: None, tmp_path: Path
) -> None:
    """100 + 100 mapped tasks on 2 worker processes: exactly 200 valid task records, each
    `double` linked to the `inc` it consumed; the records come from both worker processes
    (2 pids, neither the parent's), and each worker captured its process context exactly once.

    Why 200 and not 1,000 (as until 2026-12): nothing here grows with the count. Each record is
    its own file written by the worker that ran the task, each worker captures once, and no
    worker gets near the writer's back-pressure bound (1,024 pending writes, which 1,000 tasks
    did not reach either); 200 tasks still spread over both workers' 4 threads. The 1,000 tasks
    cost ~200 s of Prefect's and Dask's time per suite run (docs/scale.md); how recording
    scales to 10,000 tasks is measured by bench/bench_scale.py, where timing belongs."""
    n = 100
    with _quiet_prefect(tmp_path):
        state = _flow(dask_cluster.scheduler_address, n)
    assert state.is_completed(), state.message
    assert state.result() == sum((x + 1) * 2 for x in range(n))

    store = Store(dask_store)
    run = store.load_run(str(state.state_details.flow_run_id))
    assert run.status == "COMPLETED" and run.end is not None and run.end.n_tasks == 2 * n
    assert len(run.tasks) == 2 * n
    assert len({t.task_run_id for t in run.tasks}) == 2 * n
    incs = {t.task_run_id: t for t in run.tasks if t.task_name == "inc"}
    doubles = [t for t in run.tasks if t.task_name == "double"]
    assert len(incs) == n and len(doubles) == n
    for t in doubles:
        [src] = t.upstream["item"]
        assert incs[src].map_index == t.map_index
        assert incs[src].result_hash == t.parameter_hashes["item"]
    assert all(t.state == "COMPLETED" for t in run.tasks)

    contexts = {t.context for t in run.tasks}
    assert None not in contexts and len(contexts) <= 2
    pids = {store.get_model_blob(c, ProcessContext).pid for c in contexts if c}
    assert len(pids) == 2 and os.getpid() not in pids
    from distributed import Client

    with Client(dask_cluster.scheduler_address) as client:
        counts = client.run(_capture_count)
    assert sorted(counts.values()) == [1, 1]


def _capture_count() -> int:
    from reproflow import capture

    return capture.capture_count


def test_subflow_on_dask_lands_in_the_parent_run(
    dask_cluster: Any, dask_store: str, prefect_harness: None, tmp_path: Path
) -> None:
    """A subflow on the Dask task runner, called by a flow with no @repro_task of its own: the
    workers receive the subflow's context serialized (it reaches no parent there), yet every
    task record is in the top-level flow run's run, named with the subflow, and the store holds
    no run for the subflow."""
    from prefect import flow
    from prefect_dask import DaskTaskRunner

    @flow(name="dask-sub", task_runner=DaskTaskRunner(address=dask_cluster.scheduler_address))
    def sub(count: int) -> int:
        return sum(f.result()["value"] for f in inc.map(range(count)))

    @flow(name="dask-parent")
    def parent(count: int) -> int:
        return sub(count)

    store = Store(dask_store)
    before = set(store.run_ids()) if store.exists() else set()
    with _quiet_prefect(tmp_path):
        state = parent(6, return_state=True)
    assert state.is_completed(), state.message
    run_id = str(state.state_details.flow_run_id)
    assert set(store.run_ids()) - before == {run_id}
    run = store.load_run(run_id)
    assert run.record.flow_name == "dask-parent" and run.status == "COMPLETED"
    assert sorted(t.map_index for t in run.tasks) == list(range(6))  # type: ignore[type-var]
    assert {t.subflow for t in run.tasks} == {"dask-sub"}
    assert len({t.subflow_run_id for t in run.tasks}) == 1 and run.tasks[0].subflow_run_id != run_id
