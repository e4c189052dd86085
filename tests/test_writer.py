"""The record writer thread: every submitted write lands before flush() returns, errors are
reported (never swallowed), back-pressure bounds the queue, and a finished flow run has all its
task records before its end record and its artifacts."""

from __future__ import annotations

import pathlib
import threading
import time

import pytest
from prefect import flow

from reproflow import repro_task
from reproflow._writer import RecordWriter
from reproflow.store import Store


def test_flush_waits_for_every_write() -> None:
    """500 slow-ish writes from 4 threads: flush() returns only when all ran, in submit order per thread."""
    w = RecordWriter()
    done: list[tuple[int, int]] = []

    def write(t: int, i: int) -> None:
        time.sleep(0.0005)
        done.append((t, i))

    def producer(t: int) -> None:
        for i in range(125):
            w.submit(write, t, i)

    threads = [threading.Thread(target=producer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert w.flush(timeout=60) == []
    assert len(done) == 500 and w.pending == 0
    for t in range(4):
        assert [i for tt, i in done if tt == t] == list(range(125))


def test_errors_are_returned_once_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A failing write does not stop the thread; flush() returns its error, then forgets it."""
    w = RecordWriter()
    ran: list[int] = []

    def boom() -> None:
        raise OSError("disk full")

    w.submit(boom)
    w.submit(ran.append, 1)
    errors = w.flush(timeout=30)
    assert [str(e) for e in errors] == ["disk full"] and ran == [1]
    assert "a record could not be written: OSError: disk full" in caplog.text
    assert w.flush(timeout=30) == []


def test_back_pressure_bounds_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a full queue, submit() blocks until the writer catches up: nothing is dropped."""
    import reproflow._writer as mod

    monkeypatch.setattr(mod, "MAX_PENDING", 2)
    w = mod.RecordWriter()
    gate = threading.Event()
    out: list[int] = []
    w.submit(gate.wait)  # the thread is busy until the gate opens
    w.submit(out.append, 1)
    w.submit(out.append, 2)  # the queue (size 2) is full now
    blocked = threading.Thread(target=w.submit, args=(out.append, 3))
    blocked.start()
    blocked.join(timeout=0.3)
    assert blocked.is_alive()  # still waiting for room
    gate.set()
    blocked.join(timeout=30)
    assert w.flush(timeout=30) == [] and out == [1, 2, 3]


@repro_task
def slow_echo(x: int) -> int:
    time.sleep(0.01)
    return x


def test_finished_flow_has_every_task_record_before_its_end(store_dir: pathlib.Path, prefect_harness: None) -> None:
    """Right after the flow returns, the run is closed and all 40 submitted task records are there,
    each older than end.json."""

    @flow
    def fan() -> int:
        return sum(f.result() for f in [slow_echo.submit(i) for i in range(40)])

    state = fan(return_state=True)
    run = Store(store_dir).load_run(str(state.state_details.flow_run_id))
    assert run.status == "COMPLETED" and run.end is not None and run.end.n_tasks == 40
    assert len(run.final_tasks()) == 40
    run_dir = store_dir / "runs" / run.run_id
    end_mtime = (run_dir / "end.json").stat().st_mtime_ns
    assert all(p.stat().st_mtime_ns <= end_mtime for p in (run_dir / "tasks").iterdir())


def test_artifacts_are_on_the_flow_run_when_it_returns(store_dir: pathlib.Path, prefect_harness: None) -> None:
    """When the flow call returns, its three artifacts (summary with the score, task table, link)
    are already on the flow run (read through the API)."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    @flow
    def small() -> int:
        return slow_echo(3)

    state = small(return_state=True)
    run_id = str(state.state_details.flow_run_id)
    resp = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter",
                      json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}, timeout=30)
    resp.raise_for_status()
    assert {a["key"] for a in resp.json()} == {"reproflow-provenance", "reproflow-tasks", "reproflow-record"}
