"""Runs that died (issue 11): a run whose process died without writing ``end.json`` shows as
CRASHED, with what it recorded before it died, and its finished tasks still replay.

Each flow is recorded by ``python flow.py`` in a subprocess from a temporary git repository, as
a user runs it; the process is then killed with SIGKILL (or dies of a full store in strict mode),
and the runs CLI and replay are asked about it through the real CLI.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reproflow.store import _liveness
from reproflow.cli._common import run_cli
from reproflow.cli import app
from reproflow.records import Liveness, RunRecord
from reproflow.store import Store

pytestmark = pytest.mark.slow

FLOW = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from prefect import flow
    from reproflow import repro_task

    GO = Path(sys.argv[1])

    @repro_task
    def first(n: int) -> int:
        return n * 7

    @repro_task
    def second(x: int) -> int:
        while not GO.exists():  # the test decides when (or whether) this task may finish
            time.sleep(0.05)
        return x + 1

    @flow(name="dies")
    def dies(n: int = 6) -> int:
        return second(first(n))

    if __name__ == "__main__":
        dies()
    """
)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    (r / "flow.py").write_text(FLOW)
    (r / ".gitignore").write_text("go\n")
    _git(r, "init", "-q")
    _git(r, "add", "-A")
    _git(r, "commit", "-qm", "flow")
    return r


def _start(repo: Path, store: Path, prefect_api: str, **env: str) -> subprocess.Popen[str]:
    full = {**os.environ, "REPROFLOW_STORE": str(store), "PREFECT_API_URL": prefect_api,
            "PREFECT_LOGGING_LEVEL": "WARNING", **env}
    return subprocess.Popen([sys.executable, "flow.py", str(repo / "go")], cwd=repo, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for_first_task(store: Path, proc: subprocess.Popen[str]) -> str:
    """The run id, once the first task's record has landed in the store."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for tasks in (store / "runs").glob("*/tasks"):
            if any(p.suffix in (".json", ".jsonl") for p in tasks.iterdir()):
                return tasks.parent.name
        if proc.poll() is not None:
            raise AssertionError("the flow ended before its first task was recorded:\n" + (proc.stdout.read() if proc.stdout else ""))
        time.sleep(0.1)
    raise AssertionError("the first task's record never landed")


def _cli(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
         cwd: Path) -> tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("COLUMNS", "200")
    capsys.readouterr()
    code = run_cli(app, args)
    out, err = capsys.readouterr()
    return code, out, err


def test_killed_flow_is_crashed_and_its_finished_task_replays(
    repo: Path, tmp_path: Path, prefect_api: str, env_cache: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kill -9 while the second task runs: `runs list --json` says CRASHED (the old code said
    RUNNING forever) with the reason, `runs show` names it and the recorded task, and
    `replay --task first` reproduces the task that finished before the kill."""
    store = tmp_path / "store"
    proc = _start(repo, store, prefect_api)
    try:
        run_id = _wait_for_first_task(store, proc)
        code, out, err = _cli(["runs", "list", "--json", "--store", str(store)], capsys, monkeypatch, tmp_path)
        assert code == 0, err
        assert [r["status"] for r in json.loads(out)] == ["RUNNING"]  # alive: never declared dead
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)

    code, out, err = _cli(["runs", "list", "--json", "--store", str(store)], capsys, monkeypatch, tmp_path)
    assert code == 0, err
    (summary,) = json.loads(out)
    assert summary["run_id"] == run_id and summary["status"] == "CRASHED", summary
    record = Store(store).load_run_record(run_id)
    assert record.liveness is not None and record.liveness.pid == proc.pid
    assert f"process {proc.pid} has exited" in summary["status_reason"]

    code, out, err = _cli(["runs", "show", run_id, "--store", str(store)], capsys, monkeypatch, tmp_path)
    assert code == 0, err
    assert "CRASHED" in out and "crashed:" in out and "1 task run(s) recorded before it died" in out, out

    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(env_cache))
    code, out, err = _cli(["replay", run_id, "--store", str(store), "--task", "first", "--in-place", "--json"],
                          capsys, monkeypatch, tmp_path)
    assert code == 0, err + out[-3000:]
    result = json.loads(out)
    assert result["verdict"] == "reproduced", result
    assert [t["task_name"] for t in result["tasks"]] == ["first"]
    assert any("CRASHED" in r for r in result["plan"]["risks"]), result["plan"]["risks"]


@pytest.fixture
def full_store(tmp_path: Path) -> Iterator[Path]:
    """A store on its own 8 MiB tmpfs (a real file system that fills up: ENOSPC)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def _fill(folder: Path) -> None:
    """Write zeros under ``folder`` until its file system is full (unbuffered: a buffered file
    would try the last partial write again when it is closed, and raise there)."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass


def test_strict_run_whose_store_filled_up_is_crashed(
    repo: Path, full_store: Path, prefect_api: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """Strict mode, and the store's file system fills up after the first task's record: the
    second task's record cannot be written, the flow fails and its end record cannot be written
    either. The run shows CRASHED (not RUNNING forever), with the first task recorded."""
    store = full_store / "store"
    proc = _start(repo, store, prefect_api, REPROFLOW_STRICT="1")
    try:
        run_id = _wait_for_first_task(store, proc)
        _fill(full_store)
        (repo / "go").write_text("")
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    assert "No space left on device" in output, output[-3000:]  # the store did fill up
    assert not (store / "runs" / run_id / "end.json").exists(), output[-3000:]
    code, out, err = _cli(["runs", "list", "--json", "--store", str(store)], capsys, monkeypatch, tmp_path)
    assert code == 0, err
    (summary,) = json.loads(out)
    assert summary["status"] == "CRASHED", summary
    run = Store(store).load_run(run_id)
    assert run.status == "CRASHED" and [t.task_name for t in run.final_tasks()] == ["first"]


def _record(liveness: Liveness | None, started: dt.datetime) -> RunRecord:
    return RunRecord(run_id="r1", flow_name="f", context="0" * 64, started_at=started, liveness=liveness)


def test_a_run_elsewhere_is_crashed_only_when_its_lease_is_stale(tmp_path: Path) -> None:
    """From another host (or boot, or container) pids say nothing: a run is RUNNING while its
    lease (else its start) is younger than LEASE_STALE_S, CRASHED after; a fresh lease keeps an
    old run RUNNING; a damaged lease is no sign of life; a run without liveness stays RUNNING."""
    store = Store(tmp_path / "store")
    now = dt.datetime.now(dt.timezone.utc)
    old = now - dt.timedelta(seconds=_liveness.LEASE_STALE_S + 60)
    elsewhere = Liveness(hostname="other-host.example", boot_id="b", pid=os.getpid(), process_started=1.0)
    assert _liveness.unended_status(store, _record(elsewhere, now), now)[0] == "RUNNING"
    status, reason = _liveness.unended_status(store, _record(elsewhere, old), now)
    assert status == "CRASHED" and reason is not None and "other-host.example" in reason
    lease = Path(_liveness.lease_path(store, "r1"))
    lease.parent.mkdir(parents=True)
    lease.write_text(json.dumps({"run_id": "r1", "renewed_at": (now - dt.timedelta(seconds=40)).isoformat()}))
    assert _liveness.unended_status(store, _record(elsewhere, old), now)[0] == "RUNNING"
    lease.write_text("{not json")
    assert _liveness.unended_status(store, _record(elsewhere, old), now)[0] == "CRASHED"
    assert _liveness.unended_status(store, _record(None, old), now) == ("RUNNING", None)
    # this very process, recorded here: alive, whatever the clock says
    assert _liveness.unended_status(store, _record(_liveness.current(), old), now)[0] == "RUNNING"
    # same host, boot and namespace, but the pid now belongs to a process started at another time
    reused = _liveness.current().model_copy(update={"process_started": 1.0})
    status, reason = _liveness.unended_status(store, _record(reused, now), now)
    assert status == "CRASHED" and reason is not None and "another process" in reason


def test_the_lease_is_renewed_off_the_task_path_and_stops_at_the_end(tmp_path: Path) -> None:
    """hold() renews runs/<id>/lease.json from its own thread; release() (finish_run) stops it."""
    store = Store(tmp_path / "store")
    (tmp_path / "store" / "runs" / "r2").mkdir(parents=True)
    _liveness.hold(store, "r2")
    try:
        _liveness.renew_now()
        body = json.loads(Path(_liveness.lease_path(store, "r2")).read_text())
        assert body["run_id"] == "r2" and body["pid"] == os.getpid()
    finally:
        _liveness.release("r2")
    Path(_liveness.lease_path(store, "r2")).unlink()
    _liveness.renew_now()
    assert not Path(_liveness.lease_path(store, "r2")).exists()
