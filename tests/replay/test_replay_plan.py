"""Planning a replay from hand-made records: what is rebuilt, what is missing or risky."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
from replay_records import environment, local_dist, task, write_run

from reproflow import errors
from reproflow.records import DirectUrl, Distribution, Finding
from reproflow.replay import plan as plan_replay
from reproflow.replay._plan import partial_sources, select_tasks
from reproflow.store import Store

SRC = {"flow.py": b"print('hi')\n"}


def _dag_tasks() -> list[dict]:
    """load -> clean -> fit, plus an independent report task."""
    return [
        dict(name="load", tid="t-load", result_hash="sha256:L", parameters={"n": 3}, parameter_hashes={"n": "sha256:n3"}),
        dict(name="clean", tid="t-clean", upstream={"df": ["t-load"]}, parameters={"df": {"__rf__": "opaque", "type": "DataFrame", "hash": None, "repr": ""}},
             parameter_hashes={"df": "sha256:L"}, result_hash="sha256:C"),
        dict(name="fit", tid="t-fit", upstream={"df": ["t-clean"]}, parameters={"df": [1, 2]}, parameter_hashes={"df": "sha256:C"},
             result_hash="sha256:F", findings=[Finding(code="RPF101", message="unseeded random")]),
        dict(name="report", tid="t-report", parameters={"title": "x"}),
    ]


def test_plan_lists_pins_sources_and_tasks(store: Store, tmp_path: Path) -> None:
    """The plan counts pins by kind, names local sources and VCS pins, and orders tasks by DAG."""
    env = environment(
        Distribution(name="tomli-w", version="1.0.0"),
        Distribution(name="vcspkg", version="0.1", direct_url=DirectUrl(url="https://example.org/r.git", vcs="git", commit_id="abc123")),
        local_dist(store, "mylib", "0.2", {"pyproject.toml": b"[project]\nname='mylib'\n"}),
    )
    run_id = write_run(store, env=env, tasks=_dag_tasks(), source_files=SRC)
    prepared = plan_replay(run_id, store, cache_dir=tmp_path / "cache")
    p = prepared.plan
    assert p.n_pins == 3 and p.pins_by_kind == {"index": 1, "vcs": 1, "local": 1}
    assert p.vcs_pins == ["vcspkg @ git+https://example.org/r.git@abc123"]
    assert p.local_sources == ["mylib 0.2 (editable)"]
    assert p.python_recorded == platform.python_version() and p.python_exact
    names = [t.task_name for t in p.tasks]
    assert names.index("load") < names.index("clean") < names.index("fit")
    assert p.tasks[names.index("fit")].upstream == ["clean"]
    assert any("RPF101" in r for r in p.risks)
    assert p.problems == [] and prepared.fatal == []
    assert "snapshot" in p.code


def test_plan_reports_what_is_missing(store: Store, tmp_path: Path) -> None:
    """No source, an opaque flow parameter, a missing input: each is a problem, all shown."""
    opaque = {"__rf__": "opaque", "type": "socket.socket", "hash": None, "repr": "<socket>"}
    missing = tmp_path / "gone.csv"
    from reproflow.records import DataRef

    tasks = [dict(name="load", inputs=[DataRef(uri=str(missing), kind="file", sha256="0" * 64, param="p")])]
    run_id = write_run(store, tasks=tasks, parameters={"conn": opaque})
    prepared = plan_replay(run_id, store, cache_dir=tmp_path / "cache")
    problems = " | ".join(prepared.plan.problems)
    assert "cannot restore the recorded code" in problems or "no source snapshot" in problems
    assert "'conn'" in problems and "socket.socket" in problems
    assert str(missing) in problems
    kinds = {type(e) for e in prepared.fatal}
    assert errors.SourceNotAvailable in kinds and errors.ParameterNotRestorable in kinds


def test_python_not_available_is_a_plan_problem(store: Store, tmp_path: Path) -> None:
    """A recorded Python this machine lacks shows in the plan and is the error raised."""
    run_id = write_run(store, env=environment(version="3.4.10"), source_files=SRC)
    prepared = plan_replay(run_id, store, cache_dir=tmp_path / "cache")
    assert any(isinstance(e, errors.PythonNotAvailable) for e in prepared.fatal)
    assert any("3.4.10" in p for p in prepared.plan.problems)


def test_select_task_and_from(store: Store) -> None:
    """--task picks one task's runs; --from adds everything downstream; unknown names list the known."""
    run = store.load_run(write_run(store, tasks=_dag_tasks(), source_files=SRC))
    only, label = select_tasks(run, "clean", None)
    assert [t.task_name for t in only] == ["clean"] and label == "--task clean"
    down, _ = select_tasks(run, None, "clean")
    assert [t.task_name for t in down] == ["clean", "fit"]
    with pytest.raises(errors.PartialReplayRefused, match="report"):
        select_tasks(run, "nope", None)


def test_partial_needs_stored_upstream_values(store: Store) -> None:
    """An opaque value from an upstream task that is not replayed needs its stored result."""
    run = store.load_run(write_run(store, tasks=_dag_tasks(), source_files=SRC))
    down, _ = select_tasks(run, None, "clean")
    with pytest.raises(errors.PartialReplayRefused, match="store_results=True"):
        partial_sources(run, down)
    # --from load: clean's opaque input is fed from load's new result; fit's from clean's
    everything, _ = select_tasks(run, None, "load")
    items = {i.task.task_name: i.params for i in partial_sources(run, everything)}
    assert items["clean"]["df"] == {"kind": "from", "task_run_id": "t-load"}
    assert items["fit"]["df"] == {"kind": "from", "task_run_id": "t-clean"}
    assert items["load"]["n"] == {"kind": "typed", "value": 3}


def test_partial_uses_stored_result_blob(store: Store) -> None:
    """With load's result stored (store_results=True), clean alone can be replayed."""
    tasks = _dag_tasks()
    tasks[0]["result_blob"] = store.put_blob(b"pickled")
    run = store.load_run(write_run(store, tasks=tasks, source_files=SRC))
    only, _ = select_tasks(run, "clean", None)
    (item,) = partial_sources(run, only)
    assert item.params["df"]["kind"] == "blob"


def test_unknown_run_and_newer_schema(store: Store, tmp_path: Path) -> None:
    """Unknown id: RunNotFound; a record from a newer major schema: NewerSchema."""
    run_id = write_run(store, source_files=SRC)
    with pytest.raises(errors.RunNotFound):
        plan_replay("0000dead-beef", store)
    path = Path(store.root) / "runs" / run_id / "run.json"
    path.write_text(path.read_text().replace('"schema_version":"1.0"', '"schema_version":"2.0"'))
    with pytest.raises(errors.NewerSchema):
        plan_replay(run_id, store)
