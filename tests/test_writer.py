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
from reproflow.store._writer import RecordWriter
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
    import reproflow.store._writer as mod

    monkeypatch.setattr(mod, "MAX_PENDING", 2)
    w = mod.RecordWriter()
    gate, started = threading.Event(), threading.Event()
    out: list[int] = []
    w.submit(lambda: (started.set(), gate.wait()))  # the thread is busy until the gate opens
    assert started.wait(30)
    w.submit(out.append, 1)
    w.submit(out.append, 2)  # the queue (size 2) is full now
    blocked = threading.Thread(target=w.submit, args=(out.append, 3))
    blocked.start()
    blocked.join(timeout=0.3)
    assert blocked.is_alive()  # still waiting for room
    gate.set()
    blocked.join(timeout=30)
    assert w.flush(timeout=30) == [] and out == [1, 2, 3]


def test_writes_gather_into_batches_and_flush_does_not_wait_for_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Submitted writes wait for the batch (one wake-up of the thread per batch, not per record);
    flush() takes them at once, whatever the batch wait, and a blocked submit() does too."""
    import reproflow.store._writer as mod

    monkeypatch.setattr(mod, "BATCH_S", 3600.0)
    w = mod.RecordWriter()
    ran: list[int] = []
    for i in range(10):
        w.submit(ran.append, i)
    time.sleep(0.2)
    assert ran == []  # still gathering
    assert w.flush(timeout=30) == [] and ran == list(range(10))
    monkeypatch.setattr(mod, "MAX_PENDING", 3)
    for i in range(10, 20):  # the fourth submit finds the queue full: the thread takes it now
        w.submit(ran.append, i)
    assert w.flush(timeout=30) == [] and ran == list(range(20))


def test_a_full_batch_is_taken_without_waiting_for_the_batch_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """BATCH_MAX queued writes are taken at once: the submit that fills the batch wakes the thread
    in its batch wait (the memory a long flow's queue holds stays bounded by the batch, and its
    records never wait for a flush that may come hours later)."""
    import reproflow.store._writer as mod

    monkeypatch.setattr(mod, "BATCH_S", 3600.0)
    monkeypatch.setattr(mod, "BATCH_MAX", 4)
    w = mod.RecordWriter()
    done = threading.Event()
    ran: list[int] = []
    for i in range(3):
        w.submit(ran.append, i)
    time.sleep(0.2)
    assert ran == []  # three of four: still gathering
    w.submit(lambda: (ran.append(3), done.set()))
    assert done.wait(30), "a full batch waited for the batch time"
    assert ran == [0, 1, 2, 3]
    assert w.flush(timeout=30) == []


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


def _artifact_keys(run_id: str) -> set[str]:
    import httpx
    from prefect.settings import PREFECT_API_URL

    resp = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter",
                      json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}, timeout=30)
    resp.raise_for_status()
    return {a["key"] for a in resp.json()}


ALL_THREE = {"reproflow-provenance", "reproflow-tasks", "reproflow-record"}


@flow
def small() -> int:
    return slow_echo(3)


def test_artifacts_are_published_after_the_flow_returns(store_dir: pathlib.Path, prefect_harness: None) -> None:
    """By default the three artifacts (summary with the score, task table, link) are published on a
    non-daemon thread after the flow returns; wait_for_artifacts() waits for them."""
    from reproflow import wait_for_artifacts

    state = small(return_state=True)
    assert wait_for_artifacts(timeout=60) is True
    assert _artifact_keys(str(state.state_details.flow_run_id)) == ALL_THREE
    assert not any(t.name == "reproflow-artifacts" for t in threading.enumerate())  # it ends when idle


def test_publisher_thread_is_joined_at_exit_and_ends_when_idle() -> None:
    """The publisher's thread is not a daemon (the interpreter joins it before atexit handlers
    stop Prefect's ephemeral server), runs jobs in order, survives a failing job, and ends when
    its queue is empty (an idle non-daemon thread would keep the process from exiting)."""
    from reproflow.engines.prefect._artifacts import _Publisher

    pub = _Publisher()
    gate = threading.Event()
    ran: list[int] = []

    def boom() -> None:
        raise RuntimeError("server said no")

    pub.submit(gate.wait)
    pub.submit(boom)
    pub.submit(lambda: ran.append(1))
    workers = [t for t in threading.enumerate() if t.name == "reproflow-artifacts"]
    assert len(workers) == 1 and not workers[0].daemon
    assert pub.wait(timeout=0.05) is False  # still blocked on the gate
    gate.set()
    assert pub.wait(timeout=30) is True and ran == [1]
    workers[0].join(timeout=30)
    assert not workers[0].is_alive()
    pub.submit(lambda: ran.append(2))  # a job after it ended starts a new thread
    assert pub.wait(timeout=30) is True and ran == [1, 2]


def test_sync_mode_publishes_before_the_flow_returns(store_dir: pathlib.Path, prefect_harness: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """REPROFLOW_ARTIFACTS=sync: the artifacts are on the flow run when the flow call returns."""
    monkeypatch.setenv("REPROFLOW_ARTIFACTS", "sync")
    state = small(return_state=True)
    assert _artifact_keys(str(state.state_details.flow_run_id)) == ALL_THREE


def test_off_mode_publishes_nothing_but_records(store_dir: pathlib.Path, prefect_harness: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """REPROFLOW_ARTIFACTS=off: no artifact on the flow run, the record is complete all the same."""
    from reproflow import wait_for_artifacts

    monkeypatch.setenv("REPROFLOW_ARTIFACTS", "off")
    state = small(return_state=True)
    run_id = str(state.state_details.flow_run_id)
    assert wait_for_artifacts(timeout=60)
    assert _artifact_keys(run_id) == set()
    assert Store(store_dir).load_run(run_id).status == "COMPLETED"


def test_background_publishing_uses_the_callers_prefect_settings(
    store_dir: pathlib.Path, prefect_harness: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The publisher thread runs in a copy of the hook's context: Prefect settings made temporary
    there (here an API on a closed port) are the ones it uses, and its failure is one warning."""
    import socket

    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    from reproflow import wait_for_artifacts
    from reproflow.engines.prefect._artifacts import end_in_background

    state = small(return_state=True)
    run_id = str(state.state_details.flow_run_id)
    assert wait_for_artifacts(timeout=60)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with caplog.at_level("WARNING", logger="reproflow"):
        with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{closed}/api", PREFECT_CLIENT_MAX_RETRIES: 0}):
            end_in_background(Store(store_dir), run_id)
        assert wait_for_artifacts(timeout=60)
    failures = [r for r in caplog.records if "could not publish the Prefect artifacts" in r.getMessage()]
    assert len(failures) == 1 and str(closed) in failures[0].getMessage()


def test_runs_publish_attaches_the_artifacts_later(store_dir: pathlib.Path, prefect_harness: None,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A run recorded with REPROFLOW_ARTIFACTS=off gets its three artifacts from
    `reproflow runs publish RUN_ID`; a run recorded outside Prefect is refused in one line."""
    import json

    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    monkeypatch.setenv("REPROFLOW_ARTIFACTS", "off")
    state = small(return_state=True)
    run_id = str(state.state_details.flow_run_id)
    assert _artifact_keys(run_id) == set()
    code = run_cli(app, ["runs", "publish", run_id[:8], "--json", "--store", str(store_dir)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["run_id"] == run_id and len(out["artifact_ids"]) == 3
    assert _artifact_keys(run_id) == ALL_THREE

    plain = repro_task(lambda x: x, name="plain-one")
    plain(1)  # outside any flow: a run of its own, engine "plain"
    newest = Store(store_dir).list_runs()[0].run_id
    code = run_cli(app, ["runs", "publish", newest, "--store", str(store_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "recorded outside Prefect" in err and err.count("\n") == 1


def test_runs_publish_with_the_api_down_is_one_line(store_dir: pathlib.Path, prefect_harness: None,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Prefect's API unreachable: one line naming the API and the fix, exit 3, no traceback."""
    import socket

    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    monkeypatch.setenv("REPROFLOW_ARTIFACTS", "off")
    run_id = str(small(return_state=True).state_details.flow_run_id)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with temporary_settings({PREFECT_API_URL: f"http://user:hunter2@127.0.0.1:{closed}/api", PREFECT_CLIENT_MAX_RETRIES: 0}):
        code = run_cli(app, ["runs", "publish", run_id, "--store", str(store_dir)])
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1 and "Traceback" not in err
    assert f"127.0.0.1:{closed}" in err and "hunter2" not in err and "PREFECT_API_URL" in err


def test_background_publishing_never_borrows_the_engines_closed_client(
    store_dir: pathlib.Path, prefect_harness: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The hook's context holds the flow engine's client, which the engine closes when the flow
    run ends; the publisher thread, running later in a copy of that context, builds its own."""
    import httpx
    from prefect.context import SyncClientContext
    from prefect.settings import PREFECT_API_URL

    from reproflow.engines.prefect import _artifacts
    from reproflow import wait_for_artifacts

    run_id = str(small(return_state=True).state_details.flow_run_id)
    assert wait_for_artifacts(timeout=60)
    gate = threading.Event()
    _artifacts._publisher.submit(gate.wait)  # hold the thread until the client below is closed
    with caplog.at_level("WARNING", logger="reproflow"):
        with SyncClientContext.get_or_create() as engine_like:
            _artifacts.end_in_background(Store(store_dir), run_id)
        assert engine_like.client._closed
        gate.set()
        assert wait_for_artifacts(timeout=60)
    assert not [r for r in caplog.records if "could not publish" in r.getMessage()]
    resp = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter",
                      json={"artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"any_": ["reproflow-record"]}}}, timeout=30)
    [art] = resp.json()  # the flow's own, updated by the one published after the close
    assert art["updated"] > art["created"]


def test_publisher_tls_context_is_built_once_and_follows_prefects_settings() -> None:
    """The background client's TLS context is built once per process (the CA bundle costs 30-50
    ms a load) and follows Prefect's settings: verification on by default, off when Prefect is
    told to skip it."""
    import ssl

    from prefect.settings import PREFECT_API_TLS_INSECURE_SKIP_VERIFY, temporary_settings

    from reproflow.engines.prefect._artifacts import _ssl_context

    default = _ssl_context()
    assert default is _ssl_context() and default.verify_mode == ssl.CERT_REQUIRED and default.check_hostname
    with temporary_settings({PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}):
        insecure = _ssl_context()
    assert insecure is not default and insecure.verify_mode == ssl.CERT_NONE and not insecure.check_hostname


# ------------------------------------------------------------------ values typed on the writer thread
SECRET = "sk-live-" + "7f3a9c2e5b8d1f4a6c0e" + "9b2d4f6a8c1e3b5d"


@repro_task
def typed_late(src: pathlib.Path, n: int, label: str, pair: tuple, items: list) -> tuple:  # type: ignore[type-arg]
    return (n, label, src)


@repro_task
def with_key(api_key: str, n: int) -> int:
    return n


@repro_task
def leaks(n: int) -> int:
    raise ValueError(f"the service refused key {SECRET}")


def test_values_typed_on_the_writer_are_those_the_task_had(store_dir: pathlib.Path, prefect_harness: None,
                                                           monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    """Parameters and results nothing can change once the task returns (numbers, strings, paths,
    tuples of them) are typed and hashed on the writer thread, off the task's path (issue 16),
    into the same fields the task's thread gives; a list, which the flow changes right after the
    task returned (and before the writer took the record: batches wait 0.5 s here), is typed on
    the task's thread, as it was; a parameter under a secret's name is too, so the next task's
    error is scrubbed of its value."""
    from reproflow.recorder import _attempt
    from reproflow.store import _writer
    from reproflow.values._typed import hash_mapping

    monkeypatch.setattr(_writer, "BATCH_S", 0.5)
    where: list[tuple[tuple[str, ...], str]] = []
    real = _attempt.typed_parameters

    def spy(params, fingerprint, hashes=None):  # type: ignore[no-untyped-def]
        where.append((tuple(params), threading.current_thread().name))
        return real(params, fingerprint, hashes)

    monkeypatch.setattr(_attempt, "typed_parameters", spy)
    src = tmp_path / "in.txt"
    src.write_text("x")

    @flow
    def late() -> None:
        typed_late(src, 3, "a", (1, "b", src), [1])  # all but the list could wait
        frozen = typed_late.submit(src, 4, "b", (2,), [])
        frozen.result()
        items = [1]
        typed_late.submit(src, 5, "c", (3,), items).result()
        items.append(2)  # the caller changes the list once the task returned
        with_key.submit(SECRET, 1).result()
        leaks.submit(1).wait()

    state = late(return_state=True)
    run = Store(store_dir).load_run(str(state.state_details.flow_run_id))
    tasks = {(t.task_name, t.parameters.get("n")): t for t in run.final_tasks()}
    fingerprint = Store(store_dir).fingerprint
    for n, label, pair, items in ((3, "a", (1, "b", src), [1]), (4, "b", (2,), []), (5, "c", (3,), [1])):
        rec = tasks[("typed_late", n)]
        params = {"src": src, "n": n, "label": label, "pair": pair, "items": items}
        assert rec.parameters == real(params, fingerprint)
        assert (rec.parameter_hashes, rec.parameters_hash) == hash_mapping(params)
        assert rec.result_hash == _attempt.result_fields((n, label, src), fingerprint)["result_hash"]
        assert rec.result == _attempt.result_fields((n, label, src), fingerprint)["result"]
    threads = {names: thread for names, thread in where}
    assert threads[("src", "n", "label", "pair", "items")] != "reproflow-writer"  # a list: on the task's thread
    assert threads[("api_key", "n")] != "reproflow-writer"  # a secret's name: on the task's thread
    failed = next(t for t in run.tasks if t.task_name == "leaks")
    assert failed.error is not None and SECRET not in failed.error.message and SECRET not in failed.error.traceback
    assert SECRET not in "".join(p.read_text() for p in (store_dir / "runs" / run.run_id / "tasks").iterdir())


def test_values_without_a_list_are_typed_on_the_writer(store_dir: pathlib.Path, prefect_harness: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The same task with only frozen parameters: its parameters are typed on the writer thread,
    and its record holds them as the task had them."""
    from reproflow.recorder import _attempt

    where: list[str] = []
    real = _attempt.typed_parameters

    def spy(params, fingerprint, hashes=None):  # type: ignore[no-untyped-def]
        where.append(threading.current_thread().name)
        return real(params, fingerprint, hashes)

    monkeypatch.setattr(_attempt, "typed_parameters", spy)

    @flow
    def frozen() -> int:
        return slow_echo.submit(7).result()

    state = frozen(return_state=True)
    run = Store(store_dir).load_run(str(state.state_details.flow_run_id))
    (rec,) = run.final_tasks()
    assert where == ["reproflow-writer"]
    assert rec.parameters == {"x": 7} and rec.result == 7


def test_frozen_values() -> None:
    """What may be typed after the task returns: immutable exact types and small tuples of them."""
    import decimal
    import uuid

    from reproflow.recorder._attempt import _frozen, _frozen_params

    class Text(str):
        pass

    for value in (1, 1.5, True, None, "s", b"b", pathlib.Path("/x"), decimal.Decimal("1.1"), uuid.uuid4(),
                  (1, ("a", pathlib.Path("/y"))), frozenset({1, 2}), ()):
        assert _frozen(value), value
    for value in ([1], {"a": 1}, (1, [2]), Text("s"), tuple(range(65)), ((((((1,),),),),),), {1}, bytearray(b"x"),
                  object()):
        assert not _frozen(value), value
    assert _frozen_params({"src": pathlib.Path("/x"), "n": 1})
    assert not _frozen_params({"password": "hunter22"}) and not _frozen_params({"n": 1, "rows": [1]})


# ------------------------------------------------------------------ a run's end, after the flow returns


@pytest.fixture
def held_end(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Every flow run's end waits for the returned event to be set (30 s at most) before it is
    written: what a slow store, or a big last batch of records, does to the end's thread."""
    from reproflow.engines.prefect import _flowrun

    release = threading.Event()
    real = _flowrun.finish_run

    def held(*args, **kwargs):  # type: ignore[no-untyped-def]
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(_flowrun, "finish_run", held)
    yield release
    release.set()


def test_the_flow_returns_before_its_end_is_written_and_readers_wait_for_it(
        store_dir: pathlib.Path, prefect_harness: None, held_end: threading.Event) -> None:
    """The flow's caller gets its result while the run's end is still being written (it waits for
    nothing it does not need: issue 16); a read of the store in this process waits for the end and
    finds the run complete."""
    from reproflow.store._writer import finishing

    state = small(return_state=True)
    run_id = str(state.state_details.flow_run_id)
    assert state.result() == 3
    assert finishing().pending == 1  # the end is on its way, not written
    assert not (store_dir / "runs" / run_id / "end.json").exists()
    seen: list[object] = []
    reader = threading.Thread(target=lambda: seen.append(Store(store_dir).load_run(run_id)))
    reader.start()
    reader.join(0.5)
    assert reader.is_alive() and not seen  # the read waits for the end
    held_end.set()
    reader.join(60)
    (run,) = seen
    assert run.status == "COMPLETED" and run.end is not None and run.end.n_tasks == 1  # type: ignore[attr-defined]
    assert finishing().pending == 0


def test_a_subprocess_started_after_the_flow_finds_its_run_complete(
        store_dir: pathlib.Path, prefect_harness: None, held_end: threading.Event) -> None:
    """``subprocess.run(["reproflow", "report", ...])`` right after the flow (a script's next line):
    the audit hook holds the subprocess until the run's end is written."""
    import subprocess
    import sys

    state = small(return_state=True)
    end = store_dir / "runs" / str(state.state_details.flow_run_id) / "end.json"
    assert not end.exists()
    threading.Timer(0.5, held_end.set).start()  # the end is written half a second from now
    proc = subprocess.run([sys.executable, "-c", f"import os; print(os.path.exists({str(end)!r}))"],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "True", proc.stderr


EXITING_FLOW = '''
import os, sys, threading, time
from prefect import flow
from reproflow import repro_task
from reproflow.engines.prefect import _flowrun

real = _flowrun.finish_run

def slow(*args, **kwargs):
    time.sleep(1.0)  # a slow store: the end is written a second after the flow returned
    return real(*args, **kwargs)

_flowrun.finish_run = slow

@repro_task
def inc(x: int) -> int:
    return x + 1

@flow
def last_line() -> int:
    return inc(1)

state = last_line(return_state=True)
print("RUN_ID", state.state_details.flow_run_id, flush=True)
'''


@pytest.mark.parametrize("artifacts", ["background", "off"])
def test_the_process_exit_waits_for_the_runs_end(tmp_path: pathlib.Path, prefect_api_env: dict[str, str],
                                                  artifacts: str) -> None:
    """A script whose last line is the flow: the interpreter's exit waits for the run's end, with
    the Prefect artifacts published or switched off."""
    import os
    import subprocess
    import sys

    (tmp_path / "flow.py").write_text(EXITING_FLOW)
    env = {**os.environ, **prefect_api_env, "REPROFLOW_STORE": str(tmp_path / "store"), "REPROFLOW_ARTIFACTS": artifacts}
    proc = subprocess.run([sys.executable, "flow.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    run_id = next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("RUN_ID"))
    run = Store(tmp_path / "store").load_run(run_id)
    assert run.status == "COMPLETED" and run.end is not None and len(run.final_tasks()) == 1


# ------------------------------------------------------------------ held until the flow call is over


def test_hold_ends_when_asked_when_wanted_or_at_its_limit() -> None:
    """``_Finishing.hold`` returns once its question says yes, once a reader waits for the pending
    ends (``wait`` sets ``wanted``), or at its limit; ``wanted`` is cleared once nothing is pending."""
    from reproflow.store._writer import _Finishing

    done = _Finishing()
    done.begin()
    flag: list[bool] = []
    t = threading.Thread(target=done.hold, args=(lambda: bool(flag),), kwargs={"limit": 60})
    t.start()
    t.join(0.2)
    assert t.is_alive()  # still asked, still no
    flag.append(True)
    t.join(10)
    assert not t.is_alive()

    t = threading.Thread(target=done.hold, args=(lambda: False,), kwargs={"limit": 60})
    t.start()
    t.join(0.2)
    assert t.is_alive()
    reader = threading.Thread(target=done.wait, args=(60,))
    reader.start()  # a read of the store: wants the end now
    t.join(10)
    assert not t.is_alive() and done.wanted.is_set()
    done.end()
    reader.join(10)
    assert not reader.is_alive() and not done.wanted.is_set()

    done.begin()
    t = threading.Thread(target=done.hold, args=(lambda: False,), kwargs={"limit": 0.05})
    t.start()
    t.join(10)
    assert not t.is_alive()  # its limit
    done.end()


def _end_file(store_dir: pathlib.Path, run_id: str) -> pathlib.Path:
    return store_dir / "runs" / run_id / "end.json"


def test_a_runs_end_waits_until_the_flow_call_is_over(store_dir: pathlib.Path, prefect_harness: None) -> None:
    """A run's end is written once the flow call is over, not while Prefect still tears the run
    down (its end hook runs inside the call: work started there takes the GIL from the teardown,
    issue 16). A user's hook running after reproflow's, half a second long, finds no end yet; the
    flow's caller finds it as soon as it reads."""
    from reproflow.store._writer import finishing

    seen: dict[str, object] = {}

    def late(flow_: object, flow_run: object, state: object) -> None:
        time.sleep(0.5)  # without the hold, the end's thread writes end.json meanwhile
        run_id = str(flow_run.id)  # type: ignore[attr-defined]
        seen["end"] = _end_file(store_dir, run_id).exists()  # a file check: no read of the store
        seen["pending"] = finishing().pending

    @flow
    def hooked() -> int:
        n = slow_echo(4)  # reproflow's end hook is attached by the first task
        hooked.on_completion_hooks.append(late)  # this run's hooks: after reproflow's
        return n

    state = hooked(return_state=True)
    run_id = str(state.state_details.flow_run_id)
    assert seen == {"end": False, "pending": 1}
    assert Store(store_dir).load_run(run_id).end is not None  # the read waits for it


def test_a_read_inside_the_flow_call_releases_its_held_end(store_dir: pathlib.Path, prefect_harness: None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's end hook after reproflow's that reads the run from the store: the read wants the
    end now, so the hold lets it go (it does not wait for the flow call it is part of)."""
    from reproflow.store import _writer

    monkeypatch.setattr(_writer, "HOLD_LIMIT_S", 600.0)  # only the read can release it
    seen: list[object] = []

    def reads(flow_: object, flow_run: object, state: object) -> None:
        seen.append(Store(store_dir).load_run(str(flow_run.id), ))  # type: ignore[attr-defined]

    @flow
    def reading() -> int:
        n = slow_echo(5)
        reading.on_completion_hooks.append(reads)
        return n

    assert reading() == 5
    (run,) = seen
    assert run.status == "COMPLETED" and run.end is not None  # type: ignore[attr-defined]


def test_a_runs_end_is_not_held_by_a_client_context_the_caller_opened(
        store_dir: pathlib.Path, prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flow called inside the caller's own Prefect client context (the engine reuses it): the
    end is written once the flow call is over, while that context is still open."""
    from prefect.context import SyncClientContext

    from reproflow.store import _writer

    monkeypatch.setattr(_writer, "HOLD_LIMIT_S", 600.0)
    with SyncClientContext.get_or_create():
        state = small(return_state=True)
        end = _end_file(store_dir, str(state.state_details.flow_run_id))
        for _ in range(600):  # up to a minute, by file checks (a read of the store would release it)
            if end.exists():
                break
            time.sleep(0.1)
        assert end.exists()
