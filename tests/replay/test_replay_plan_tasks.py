"""Planning a replay task by task (``--engine``) from hand-made records: which engine replays
which run by default, and the one-line refusals when a mode cannot replay a run."""

from __future__ import annotations

from pathlib import Path

import pytest
from replay_records import task, write_run

from reproflow import errors
from reproflow.replay import plan as plan_replay
from reproflow.replay._plan import choose_engine, partial_sources
from reproflow.store import Store

SRC = {"steps.py": b"def load(n):\n    return list(range(n))\n"}


@pytest.mark.parametrize(("recorded", "asked", "expected"), [
    ("prefect", None, "prefect"),
    ("plain", None, "plain"),
    ("airflow", None, "tasks"),
    ("snakemake", None, "tasks"),
    ("command", None, "tasks"),
    ("prefect", "tasks", "tasks"),
    ("plain", "tasks", "tasks"),
    ("prefect", "prefect", "prefect"),
])
def test_each_engine_replays_as_its_default_or_as_asked(recorded: str, asked: str | None, expected: str) -> None:
    """Airflow, Snakemake and command runs replay task by task; Prefect runs re-run their flow
    and plain runs their script unless --engine tasks is asked."""
    assert choose_engine(recorded, asked, None) == expected


def test_engine_refusals_name_the_fix() -> None:
    """--engine prefect on a run with no Prefect flow, with --task, and an unknown engine: one
    line each, naming what to do instead."""
    with pytest.raises(errors.ReplayError, match="recorded by airflow: replay it with --engine tasks"):
        choose_engine("airflow", "prefect", None)
    with pytest.raises(errors.PartialReplayRefused, match="drop --engine prefect"):
        choose_engine("prefect", "prefect", "--task fit")
    with pytest.raises(errors.ReplayError, match="choose prefect .* or tasks"):
        choose_engine("prefect", "dask", None)
    assert choose_engine("prefect", "tasks", "--task fit") == "tasks"


def _airflow_run(store: Store, **extra: dict) -> str:
    tasks = [
        dict(name="load", tid="t-load", function="steps:load", parameters={"n": 3},
             parameter_hashes={"n": "sha256:n3"}, result_hash="sha256:L", engine_info={"task_id": "load"}),
        dict(name="total", tid="t-total", function="steps:total", upstream={"values": ["t-load"]},
             parameters={"values": {"__rf__": "opaque", "type": "Frame", "hash": None, "repr": ""}},
             parameter_hashes={"values": "sha256:L"}, result_hash="sha256:T"),
    ]
    for name, spec in extra.items():
        tasks.append(dict(name=name, tid=f"t-{name}", **spec))
    return write_run(store, tasks=tasks, source_files=SRC, entrypoint=None, engine="airflow")


def test_an_airflow_run_plans_task_by_task_with_upstream_values(store: Store, tmp_path: Path) -> None:
    """No entrypoint is needed: each task is fed the replayed result of its upstream task (equal
    hashes), else its recorded value; the plan says how it runs."""
    run_id = _airflow_run(store)
    prepared = plan_replay(run_id, store, cache_dir=tmp_path / "cache")
    assert prepared.plan.problems == [] and prepared.fatal == []
    assert prepared.plan.replay_engine == "tasks" and prepared.plan.partial is None
    assert prepared.partial is not None
    items = {i.task.task_name: i.params for i in prepared.partial}
    assert items["load"] == {"n": {"kind": "typed", "value": 3}}
    assert items["total"] == {"values": {"kind": "from", "task_run_id": "t-load"}}
    with pytest.raises(errors.ReplayError, match="--engine tasks"):
        raise plan_replay(run_id, store, cache_dir=tmp_path / "cache", engine="prefect").fatal[0]
    import io

    from rich.console import Console

    from reproflow.replay._render import plan_renderable

    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(plan_renderable(prepared.plan))
    assert "task by task in DAG order, no orchestrator" in buf.getvalue()  # what --dry-run shows


def test_a_task_with_no_function_runs_its_recorded_command_or_is_refused_by_name(store: Store, tmp_path: Path) -> None:
    """A shell rule with its command in the record is replayed by that command; without one,
    the replay refuses in one line naming the task (and so does a dry run's plan)."""
    ok = _airflow_run(store, sort=dict(no_function=True, engine_info={"rule": "sort", "command": "sort in.txt > out.txt"}))
    run = store.load_run(ok)
    items = {i.task.task_name: i for i in partial_sources(run, run.final_tasks(), partial=False)}
    assert items["sort"].command == "sort in.txt > out.txt" and items["sort"].params == {}
    job = _airflow_run(store, sort=dict(no_function=True, engine_info={"argv": ["sort", "-o", "out.txt", "in.txt"]}))
    run = store.load_run(job)
    items = {i.task.task_name: i for i in partial_sources(run, run.final_tasks(), partial=False)}
    assert items["sort"].command == ["sort", "-o", "out.txt", "in.txt"]  # reproflow job -- CMD
    secret = _airflow_run(store, sort=dict(no_function=True, engine_info={"argv": ["curl", "--token", "[REDACTED]"]}))
    run = store.load_run(secret)
    with pytest.raises(errors.TaskReplayRefused, match="command of task 'sort' holds a secret"):
        partial_sources(run, run.final_tasks(), partial=False)
    bad = _airflow_run(store, sort=dict(no_function=True, map_index=2, engine_info={"rule": "sort"}))
    prepared = plan_replay(bad, store, cache_dir=tmp_path / "cache")
    assert isinstance(prepared.fatal[0], errors.TaskReplayRefused)
    assert str(prepared.fatal[0]) == ("cannot replay the run task by task: task 'sort[2]' has no recorded function "
                                      "to call and no recorded command to run")
    assert prepared.fatal[0].task == "sort[2]"


def test_an_opaque_value_from_a_task_not_replayed_is_refused_naming_both(store: Store) -> None:
    """A value no replayed task produces and the record could not hold is refused, naming the
    parameter, the task and the upstream task."""
    run = store.load_run(_airflow_run(store))
    only_total = [t for t in run.final_tasks() if t.task_name == "total"]
    with pytest.raises(errors.TaskReplayRefused, match="parameter 'values' of task 'total' came from upstream task 'load'"):
        partial_sources(run, only_total, partial=False)
