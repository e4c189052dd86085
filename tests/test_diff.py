"""`diff_runs` and `reproflow diff`: exactly what changed, most relevant first, no noise."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent / "export"))

from rf_factory import T0, default_packages, make_environment, make_run  # noqa: E402

from reproflow._cli_common import run_cli  # noqa: E402
from reproflow._diff import diff_runs  # noqa: E402
from reproflow.cli import app  # noqa: E402
from reproflow.errors import RunNotFound  # noqa: E402
from reproflow.records import EnvVar, GitState, GPUInfo, Hardware  # noqa: E402
from reproflow.store import Store  # noqa: E402


def _pair(store: Store, tmp_path: pathlib.Path) -> tuple[str, str]:
    """Two runs that differ by one package version, one flow parameter and one input byte, and
    by everything that identifies a run (ids, times, pids, host)."""
    data = tmp_path / "in.csv"
    data.write_bytes(b"x,y\n1,2\n")
    a = make_run(store, inputs={"path": data}, params={"n": 3, "label": "x"}, pid=101)
    data.write_bytes(b"x,y\n1,3\n")
    packages = default_packages()
    packages[0] = packages[0].model_copy(update={"version": "0.0.1"})
    b = make_run(store, inputs={"path": data}, params={"n": 3, "label": "y"}, packages=packages, pid=202,
                 started=T0.replace(day=9, hour=11))  # fmt: skip
    return a, b


def test_diff_names_exactly_the_three_changes(store: Store, tmp_path: pathlib.Path) -> None:
    """One package version, one parameter, one input byte: the diff names those three and
    nothing else (not run ids, timestamps, pids or task-run ids)."""
    a, b = _pair(store, tmp_path)
    diff = diff_runs(store, a, b)
    name = default_packages()[0].name
    assert [(p.name, p.kind) for p in diff.packages] == [(name, "changed")]
    assert [(c.key, c.a, c.b) for c in diff.parameters] == [("label", "x", "y")]
    assert len(diff.tasks) == 1 and diff.tasks[0].task == "load"
    assert [c.key for c in diff.tasks[0].changes] == [f"input {tmp_path / 'in.csv'}"]
    lines = diff.differences(include_derived=True)
    assert len(lines) == 3
    assert lines[0].startswith(f"package {name}: ")  # packages first
    assert lines[1] == "parameters label: 'x' -> 'y'"
    assert lines[2].startswith("task load input ")
    assert not (diff.python or diff.os or diff.hardware or diff.git or diff.env_vars)


def test_identical_runs_have_no_differences(store: Store, tmp_path: pathlib.Path) -> None:
    """Two records of the same work at different times, pids and ids compare identical."""
    a = make_run(store, pid=1)
    b = make_run(store, pid=2, started=T0.replace(month=6))
    assert diff_runs(store, a, b).identical


def test_environment_hardware_and_git_sections(store: Store) -> None:
    """Python, OS, GPU driver, git commit/diff and a redacted secret's fingerprint are each
    reported in their section; volatile variables are not."""
    env_a = make_environment()
    env_a = env_a.model_copy(update={"env_vars": {
        "API_TOKEN": EnvVar(redacted=True, reason="name", fingerprint="hmac-sha256:aaaa"),
        "OMP_NUM_THREADS": EnvVar(value="4"), "PYTEST_CURRENT_TEST": EnvVar(value="t1"),
    }})  # fmt: skip
    env_b = env_a.model_copy(update={
        "python": env_a.python.model_copy(update={"version": "3.12.1", "executable": "/other/python"}),
        "platform": env_a.platform.model_copy(update={"release": "6.8.0", "hostname": "host-b"}),
        "env_vars": {**env_a.env_vars, "API_TOKEN": EnvVar(redacted=True, reason="name", fingerprint="hmac-sha256:bbbb"),
                     "PYTEST_CURRENT_TEST": EnvVar(value="t2")},
    })  # fmt: skip
    hw_a = Hardware(gpus=[GPUInfo(index=0, name="A100")], gpu_driver="535.1", cuda_driver_version="12.2")
    hw_b = hw_a.model_copy(update={"gpu_driver": "550.2", "cuda_driver_version": "12.4"})
    git_a = GitState(available=True, commit="a" * 40, branch="main")
    git_b = GitState(available=True, commit="b" * 40, branch="main", dirty=True, diff_blob="d" * 64)
    a = make_run(store, environment=env_a, hardware=hw_a, git=git_a)
    b = make_run(store, environment=env_b, hardware=hw_b, git=git_b)
    diff = diff_runs(store, a, b)
    assert [c.key for c in diff.python] == ["version"]
    assert [c.key for c in diff.os] == ["release"]
    assert [c.key for c in diff.hardware] == ["gpu driver", "cuda driver"]
    assert [c.key for c in diff.git] == ["commit", "dirty", "uncommitted diff"]
    assert [(c.key, c.note) for c in diff.env_vars] == [("API_TOKEN", "secret value changed (fingerprint)")]
    assert "bbbb" in str(diff.env_vars[0].b) and diff.packages == [] and diff.tasks == []


def test_derived_task_changes_are_marked(store: Store, tmp_path: pathlib.Path) -> None:
    """A task parameter fed by a changed flow parameter, and an output of a task whose input
    changed, are kept but marked derived; an unexplained result change is a root cause."""
    data = tmp_path / "in.csv"
    data.write_bytes(b"1")
    a = make_run(store, inputs={"path": data}, params={"n": 3}, output_dir=tmp_path)
    data.write_bytes(b"2")
    (tmp_path / "model.bin").write_bytes(b"other")
    b = make_run(store, inputs={"path": data}, params={"n": 4}, output_dir=None)
    diff = diff_runs(store, a, b)
    train = next(t for t in diff.tasks if t.task == "train")
    param = next(c for c in train.changes if c.key == "parameter n")
    assert param.derived
    roots = diff.differences()
    assert "parameters n: 3 -> 4" in roots and not any("train parameter" in r for r in roots)


def test_map_tasks_match_by_index(store: Store, tmp_path: pathlib.Path) -> None:
    """Mapped task runs are matched by map_index, whatever order they ran in."""
    from reproflow.records import TaskRecord

    def mapped(run_id: str, order: list[int], bad: int | None) -> list[TaskRecord]:
        out = []
        for pos, i in enumerate(order):
            out.append(TaskRecord(run_id=run_id, task_run_id=f"{run_id}-{i}", task_name="sq", task_key="m.sq",
                                  state="COMPLETED", started_at=T0.replace(second=pos), ended_at=T0.replace(second=pos),
                                  duration_s=0, parameters_hash="p", result_hash=f"r{i}" + ("x" if i == bad else ""),
                                  map_index=i))  # fmt: skip
        return out

    a = make_run(store, run_id="run-aaaa", tasks=mapped("run-aaaa", [0, 1, 2], None))
    b = make_run(store, run_id="run-bbbb", tasks=mapped("run-bbbb", [2, 0, 1], 1))
    diff = diff_runs(store, a, b)
    assert [(t.task, [c.key for c in t.changes]) for t in diff.tasks] == [("sq[1]", ["return"])]
    assert "nondeterminism" in (diff.tasks[0].changes[0].note or "")


def test_cli_diff(store: Store, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`reproflow diff A B --json` prints only JSON with the differences; the table view names the
    sections; an unknown run id is one error line."""
    a, b = _pair(store, tmp_path)
    assert run_cli(app, ["diff", a, b, "--json", "--store", store.url]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["differences"]) == 3 and data["run_a"] == a
    assert run_cli(app, ["diff", a[:8], b[:8], "--store", store.url]) == 0
    out = capsys.readouterr().out
    assert "Packages" in out and "Flow parameters" in out and "Tasks" in out
    assert run_cli(app, ["diff", a, "0000beef", "--store", store.url]) == RunNotFound.exit_code
    assert capsys.readouterr().err.count("\n") == 1


def test_intermediate_files_follow_from_the_task_that_wrote_them(store: Store) -> None:
    """A file written by one task and read by the next changes because its writer's input
    changed: the reader's input change is derived, so the root causes are only the raw input;
    a file both passed in as a parameter and returned is listed once."""
    from reproflow.records import DataRef, TaskRecord

    def run(run_id: str, raw: str, clean: str) -> str:
        def task(name: str, ins: list[DataRef], outs: list[DataRef], n: int) -> TaskRecord:
            return TaskRecord(run_id=run_id, task_run_id=f"{run_id}-{name}", task_name=name, task_key=f"m.{name}",
                              state="COMPLETED", started_at=T0.replace(second=n), ended_at=T0.replace(second=n),
                              duration_s=0, parameters_hash="p", inputs=ins, outputs=outs)  # fmt: skip

        out = [DataRef(uri="/w/clean.csv", sha256=clean, param="target"),
               DataRef(uri="/w/clean.csv", sha256=clean, param="return")]  # fmt: skip
        tasks = [task("clean", [DataRef(uri="/w/raw.csv", sha256=raw, param="source")], out, 1),
                 task("stats", [DataRef(uri="/w/clean.csv", sha256=clean, param="table")], [], 2)]  # fmt: skip
        return make_run(store, run_id=run_id, tasks=tasks)

    a = run("run-a", "1" * 64, "2" * 64)
    b = run("run-b", "3" * 64, "4" * 64)
    diff = diff_runs(store, a, b)
    assert diff.differences() == [f"task clean input /w/raw.csv: {'1' * 64!r} -> {'3' * 64!r}"]
    clean = next(t for t in diff.tasks if t.task == "clean")
    assert [(c.key, c.derived) for c in clean.changes] == [("input /w/raw.csv", False), ("output /w/clean.csv", True)]
    stats = next(t for t in diff.tasks if t.task == "stats")
    assert [(c.key, c.derived) for c in stats.changes] == [("input /w/clean.csv", True)]
