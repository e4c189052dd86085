"""How the replay finds the run its runner started: deterministically, whatever the listing order."""

from __future__ import annotations

import datetime as dt
import pathlib

from replay_records import T0, write_run

from reproflow.records import RunRecord
from reproflow.replay._execute import _find_new_run
from reproflow.store import Store


def _replay_run(store: Store, run_id: str, original: str, ctx: str, seconds: int) -> None:
    store.write_run(RunRecord(run_id=run_id, flow_name="pipeline", context=ctx, replay_of=original,
                              started_at=T0 + dt.timedelta(seconds=seconds)))


def test_find_new_run_ranks_by_start_then_id(store: Store) -> None:
    """Among new runs that replay the original, the earliest start wins (newest with newest=True);
    equal start times are broken by run id, runs already there or replaying another run are
    ignored, so the pick never depends on set or directory order."""
    original = write_run(store)
    other = write_run(store)
    ctx = store.load_run_record(original).context
    before = set(store.run_ids())
    _replay_run(store, "cccccccc-0000-4000-8000-000000000000", original, ctx, 5)
    _replay_run(store, "bbbbbbbb-0000-4000-8000-000000000000", original, ctx, 5)
    _replay_run(store, "dddddddd-0000-4000-8000-000000000000", original, ctx, 9)
    _replay_run(store, "aaaaaaaa-0000-4000-8000-000000000000", other, ctx, 1)  # replays another run
    assert _find_new_run(store, before, original) == "bbbbbbbb-0000-4000-8000-000000000000"
    assert _find_new_run(store, before, original, newest=True) == "dddddddd-0000-4000-8000-000000000000"
    assert _find_new_run(store, before | {"bbbbbbbb-0000-4000-8000-000000000000"}, original) == (
        "cccccccc-0000-4000-8000-000000000000"
    )
    assert _find_new_run(store, set(store.run_ids()), original) is None


def test_the_replay_runs_every_task_again_not_from_prefects_cache(store: Store, tmp_path: pathlib.Path) -> None:
    """A task with a Prefect cache policy (``cache_policy=INPUTS``, ``cache_key_fn``) would be
    served its stored result in the replay, which then compares the record with itself: the
    runner's environment makes Prefect recompute every task (``PREFECT_TASKS_REFRESH_CACHE``),
    and keeps the results it persists in the replay's work folder, away from the user's cache."""
    from types import SimpleNamespace

    from reproflow.replay._execute import runner_env

    run = SimpleNamespace(record=RunRecord(run_id="r1", flow_name="f", context="c", started_at=T0), run_id="r1")
    prepared = SimpleNamespace(run=run, deferred_dirs=[])
    env = runner_env(prepared, store, str(tmp_path / "venv" / "bin" / "python"), False,  # type: ignore[arg-type]
                     work_dir=tmp_path / "work")
    assert env["PREFECT_TASKS_REFRESH_CACHE"] == "true"
    assert env["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] == str(tmp_path / "work" / "prefect-results")


class _CountingStore(Store):
    """A real local store that counts its listings."""

    listings = 0

    def ls(self, path: str) -> list[str]:
        type(self).listings += 1
        return super().ls(path)


def test_without_progress_the_runner_is_waited_for_not_polled(tmp_path: pathlib.Path) -> None:
    """``--json`` and the library pass no progress callback: the replay waits for the runner
    and never lists the store meanwhile (each listing was a request per half second on S3, and
    the poll's sleep held the replay after the runner had ended)."""
    import subprocess
    import sys

    from reproflow.replay._execute import _follow

    store = _CountingStore(tmp_path / "store")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    _follow(proc, store, set(), "r0", 1, None, poll_s=0.01)
    assert proc.returncode == 0
    assert _CountingStore.listings == 0


def test_with_progress_the_new_runs_tasks_are_counted_while_it_runs(tmp_path: pathlib.Path) -> None:
    """With a progress callback the replay follows the runner's new run as it goes: the runner
    here writes its run record, then waits until it has been reported before it ends."""
    import subprocess
    import sys

    from reproflow.replay._execute import _follow

    store = Store(tmp_path / "store")
    original = write_run(store)
    ctx = store.load_run_record(original).context
    before = set(store.run_ids())
    go = tmp_path / "reported"
    child = (
        "import datetime as dt, pathlib, sys, time\n"
        "from reproflow.records import RunRecord\n"
        "from reproflow.store import Store\n"
        "Store(sys.argv[1]).write_run(RunRecord(run_id='eeeeeeee-0000-4000-8000-000000000000', flow_name='pipeline',\n"
        "    context=sys.argv[2], replay_of=sys.argv[3], started_at=dt.datetime.now(dt.timezone.utc)))\n"
        "while not pathlib.Path(sys.argv[4]).exists():\n"
        "    time.sleep(0.01)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", child, str(tmp_path / "store"), ctx, original, str(go)])
    seen: list[tuple[str, str, int, int]] = []

    def progress(phase: str, description: str, completed: int, total: int) -> None:
        seen.append((phase, description, completed, total))
        go.touch()

    _follow(proc, store, before, original, 3, progress, poll_s=0.01)
    assert proc.returncode == 0
    assert seen and seen[0] == ("tasks", "running tasks", 0, 3)
