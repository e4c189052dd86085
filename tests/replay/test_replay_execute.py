"""How the replay finds the run its runner started: deterministically, whatever the listing order."""

from __future__ import annotations

import datetime as dt

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
