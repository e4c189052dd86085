"""Planning a replay from hand-made records: what is rebuilt, what is missing or risky."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
from replay_records import environment, local_dist, task, write_run

from reproflow import errors
from reproflow.records import SCHEMA_VERSION, DirectUrl, Distribution, Finding
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
    path.write_text(path.read_text().replace(f'"schema_version":"{SCHEMA_VERSION}"', '"schema_version":"9.0"'))
    with pytest.raises(errors.NewerSchema):
        plan_replay(run_id, store)


ONE_TASK = '''from prefect import flow

from reproflow import repro_task


@repro_task
def double(n: int) -> int:
    return 2 * n


@flow
def twice(n: int = 2) -> int:
    return double(n)


if __name__ == "__main__":
    twice()
'''


def _git(repo: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip


@pytest.mark.slow
def test_plan_says_when_the_checkout_here_is_not_the_recorded_code(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real run recorded by `python flow.py` in a git repository. A rebuild replay runs the
    recorded snapshot, so once the checkout has uncommitted edits or another commit, the plan
    says so in one line naming the checkout, its state and the recorded commit (from any folder:
    the recorded root is looked at; from a clone: the clone, as the current folder). Nothing
    while the checkout matches, or when the checkout is not on this machine."""
    import os
    import subprocess
    import sys

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "flow.py").write_text(ONE_TASK)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one task")
    recorded = _git(repo, "rev-parse", "HEAD")
    store = Store(tmp_path / "store")
    proc = subprocess.run([sys.executable, "flow.py"], cwd=repo, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "REPROFLOW_STORE": store.url, "REPROFLOW_ARTIFACTS": "off"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_id,) = store.run_ids()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    def line(**kw: object) -> str | None:
        return plan_replay(run_id, store, env_cache=False, **kw).plan.checkout  # type: ignore[arg-type]

    assert line() is None  # the checkout is at the recorded commit, clean
    (repo / "flow.py").write_text(ONE_TASK.replace("2 * n", "3 * n"))
    assert line() == (f"your checkout at {repo} is at {recorded[:12]} + uncommitted changes; "
                      f"the replay runs the recorded {recorded[:12]} snapshot")  # fmt: skip
    assert line(in_place=True) == line()  # --in-place too runs the restored code, not the checkout
    _git(repo, "commit", "-qam", "triple")
    now = _git(repo, "rev-parse", "HEAD")
    assert line() == f"your checkout at {repo} is at {now[:12]}; the replay runs the recorded {recorded[:12]} snapshot"
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    assert line() == f"your checkout at {clone} is at {now[:12]}; the replay runs the recorded {recorded[:12]} snapshot"
    monkeypatch.chdir(elsewhere)
    repo.rename(tmp_path / "moved")  # as on another machine: no checkout at the recorded root
    assert line() is None
    from reproflow.replay._render import plan_renderable
    from rich.console import Console

    _git(tmp_path / "moved", "reset", "-q", "--hard", recorded)
    (tmp_path / "moved").rename(repo)
    (repo / "flow.py").write_text("# edited\n" + ONE_TASK)
    console = Console(width=300, record=True)
    console.print(plan_renderable(plan_replay(run_id, store, env_cache=False).plan))
    text = console.export_text()
    assert sum("your checkout at" in row for row in text.splitlines()) == 1


def test_an_opaque_parameter_inside_a_list_is_refused_with_its_reason(store: Store, tmp_path: Path) -> None:
    """A flow parameter holding an opaque value anywhere inside it (here, an instance of a class
    defined inside a function, in a list) is refused, naming its type and why it is opaque; a
    dataclass parameter (recorded as its class and fields) is not."""
    local = {"__rf__": "opaque", "type": "flow.make.<locals>.Cfg", "hash": None, "repr": "Cfg(x=1)",
             "why": "its class is defined inside a function, so replay cannot import it"}
    options = {"__rf__": "object", "kind": "dataclass", "type": "__main__:Options", "v": {"scale": 2.0}}
    run_id = write_run(store, tasks=[dict(name="load")], source_files=SRC,
                       parameters={"cfgs": [local], "opts": options})
    prepared = plan_replay(run_id, store, cache_dir=tmp_path / "cache")
    (problem,) = [p for p in prepared.plan.problems if "cfgs" in p]
    assert "flow.make.<locals>.Cfg" in problem and "defined inside a function" in problem
    assert not any("opts" in p for p in prepared.plan.problems)


def test_the_runner_names_a_parameter_it_cannot_rebuild() -> None:
    """In the runner, a recorded instance whose class is not in the restored code stops the
    replay with one line naming the parameter and the class, instead of passing a placeholder."""
    from reproflow.replay._runner import _decode

    typed = {"__rf__": "object", "kind": "pydantic", "type": "no_such_settings_module:TrainConfig", "v": {}}
    with pytest.raises(RuntimeError, match=r"parameter 'cfg' of flow 'train' cannot be rebuilt: "
                                           r"no_such_settings_module\.TrainConfig"):
        _decode("cfg", typed, "flow 'train'")
    assert _decode("n", {"__rf__": "tuple", "v": [1, 2]}, "flow 'train'") == (1, 2)
