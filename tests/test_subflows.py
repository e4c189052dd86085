"""Subflows are part of the top-level flow run's run: one run per top-level flow run, the
subflows' task runs inside it, each named with its subflow (issue 10, shape 4)."""

from __future__ import annotations

import pathlib

import pytest
from prefect import flow
from typer.testing import CliRunner

from reproflow import repro_task
from reproflow.cli import app
from reproflow.store import Store

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


@repro_task
def scale(x: int, factor: int) -> int:
    return x * factor


@repro_task
def total(values: list[int]) -> int:
    return sum(values)


@flow(name="inner")
def inner(n: int, factor: int) -> list[int]:
    return scale.map(list(range(n)), factor=factor).result()


@flow(name="outer")
def outer(n: int, factor: int) -> int:
    return total(inner(n, factor))


@flow(name="parent-without-tasks")
def parent(n: int = 3) -> int:
    return outer(n, 2) + outer(n, 5)


def test_nested_subflows_called_twice_are_one_run(store: Store, store_dir: pathlib.Path) -> None:
    """A parent with no @repro_task of its own calls a subflow twice, which calls a nested
    subflow mapping a task: the store holds one run, the parent's (its flow name, parameters and
    end), with all 8 task runs, each with its subflow's name and flow-run id (one per call), map
    indexes per map call; `runs show` labels them subflow/task."""
    state = parent(3, return_state=True)
    assert state.is_completed(), state.message
    run_id = str(state.state_details.flow_run_id)
    assert store.run_ids() == [run_id]
    run = store.load_run(run_id)
    assert run.record.flow_name == "parent-without-tasks" and run.record.entrypoint.endswith(":parent")  # type: ignore[union-attr]
    assert run.record.parameters == {"n": 3}
    assert run.status == "COMPLETED" and run.end is not None and run.end.n_tasks == 8
    scales = [t for t in run.tasks if t.task_name == "scale"]
    totals = [t for t in run.tasks if t.task_name == "total"]
    assert {t.subflow for t in scales} == {"inner"} and {t.subflow for t in totals} == {"outer"}
    assert len({t.subflow_run_id for t in scales}) == 2 and len({t.subflow_run_id for t in totals}) == 2
    assert run_id not in {t.subflow_run_id for t in run.tasks}
    for call in {t.subflow_run_id for t in scales}:
        assert sorted(t.map_index for t in scales if t.subflow_run_id == call) == [0, 1, 2]  # type: ignore[type-var]
    assert sorted(t.result for t in totals) == [6, 15]

    out = CliRunner().invoke(app, ["runs", "show", run_id, "--store", str(store_dir)], env={"COLUMNS": "120"}).stdout
    assert "inner/scale[2]" in out and "outer/total" in out, out
