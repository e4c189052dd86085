"""`diff_runs` and `reproflow diff`: exactly what changed, most relevant first, no noise."""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent / "export"))

from rf_factory import T0, default_packages, make_environment, make_run  # noqa: E402

from reproflow.cli._common import run_cli
from reproflow.analysis._diff import diff_runs
from reproflow.cli import app
from reproflow.errors import RunNotFound
from reproflow.records import EnvVar, GitState, GPUInfo, Hardware
from reproflow.store import Store


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
    assert lines[1] == "flow parameter label: 'x' -> 'y'"
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
    assert "flow parameter n: 3 -> 4" in roots and not any("train parameter" in r for r in roots)


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
    assert diff.tasks[0].changes[0].note == "same inputs, different result: nondeterminism or environment"
    c = make_run(store, run_id="run-cccc", tasks=mapped("run-cccc", [0, 1, 2], 1),
                 git=GitState(available=True, commit="c" * 40, branch="main"))  # fmt: skip
    note = diff_runs(store, a, c).tasks[0].changes[0].note
    assert note == ("same inputs, different result: the code it calls may have changed (see git), or "
                    "nondeterminism or environment")  # fmt: skip


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


# ------------------------------------------------------------------ real recorded runs
PIPE = '''"""Scale a flow parameter's items by another (mapped), sum them, describe the sum."""
import json
import sys

from prefect import flow, unmapped

from reproflow import repro_task


@repro_task
def scale(x: int, n: int) -> int:
    return x * n


@repro_task
def total(ys: list[int]) -> int:
    return sum(ys)


@repro_task
def describe(t: int) -> str:
    return f"total {t}"


@flow
def pipe(xs: list[int], n: int = 3) -> str:
    return describe(total(scale.map(xs, n=unmapped(n))))


if __name__ == "__main__":
    pipe(**json.loads(sys.argv[1]))
'''


def _git(repo: pathlib.Path, *args: str) -> None:
    import subprocess

    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)  # fmt: skip


def _record(repo: pathlib.Path, store_url: str, api: dict[str, str], params: dict[str, Any]) -> str:
    """``python flow.py PARAMS`` in ``repo``; the id of the one run it added to the store."""
    import os
    import subprocess

    before = set(Store(store_url).run_ids()) if pathlib.Path(store_url).exists() else set()
    env = {**os.environ, **api, "REPROFLOW_STORE": store_url, "REPROFLOW_ARTIFACTS": "off"}
    proc = subprocess.run([sys.executable, "flow.py", json.dumps(params)], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (new,) = set(Store(store_url).run_ids()) - before
    return new


@pytest.fixture(scope="module")
def recorded(prefect_api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three real runs of one git repository: A (xs=[1, 2, 3], n=3); B, the same code with both
    flow parameters changed (xs=[1, 2, 5], n=4); C, A's parameters after a commit that changed the
    bodies of `scale` (mapped) and `total`, and added a line at the top of the file (so `describe`
    only moved: Prefect's task_key of every task changed)."""
    repo = tmp_path_factory.mktemp("pipe")
    store_url = str(tmp_path_factory.mktemp("pipe-store") / "store")
    (repo / "flow.py").write_text(PIPE)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pipe")
    a = _record(repo, store_url, prefect_api_env, {"xs": [1, 2, 3], "n": 3})
    b = _record(repo, store_url, prefect_api_env, {"xs": [1, 2, 5], "n": 4})
    edited = PIPE.replace("    return x * n\n", "    return x * n + 1\n").replace("return sum(ys)", "return 2 * sum(ys)")
    (repo / "flow.py").write_text("# scale by n, plus one\n" + edited)
    _git(repo, "commit", "-qam", "scale: plus one; total: doubled")
    c = _record(repo, store_url, prefect_api_env, {"xs": [1, 2, 3], "n": 3})
    return {"store": Store(store_url), "a": a, "b": b, "c": c}


@pytest.mark.slow
def test_changed_task_source_pairs_the_tasks_and_names_the_function(recorded: dict[str, Any]) -> None:
    """A task whose code changed between two runs (a mapped one too) is paired with itself, not
    listed as "only in run A" and "only in run B"; the root cause is "source changed", naming the
    function; a function that only moved (its task_key changed) is not reported; what the new
    code computed differently downstream follows from it."""
    store = recorded["store"]
    ra, rc = store.load_run(recorded["a"]), store.load_run(recorded["c"])
    key = {t.task_name: t.task_key for t in ra.final_tasks()}
    assert all(key[t.task_name] != t.task_key for t in rc.final_tasks())  # Prefect's key moved for all three
    diff = diff_runs(store, recorded["a"], recorded["c"])
    assert all(t.status == "changed" for t in diff.tasks), [(t.task, t.status) for t in diff.tasks]
    assert sorted(t.task for t in diff.tasks) == ["describe", "scale[0]", "scale[1]", "scale[2]", "total"]
    roots = diff.differences()
    assert roots[1:] == ["source flow.py:scale: changed (+1 -1 lines)", "source flow.py:total: changed (+1 -1 lines)"]
    assert roots[0].startswith("git commit: ") and len(roots) == 3, roots
    scale = next(t for t in diff.tasks if t.task == "scale[2]")
    assert [(c.key, c.derived) for c in scale.changes] == [("source", True), ("return", True)]
    assert scale.changes[0].note == "the source of flow.py:scale"
    describe = next(t for t in diff.tasks if t.task == "describe")
    assert [c.key for c in describe.changes] == ["parameter t", "return"] and all(c.derived for c in describe.changes)


@pytest.mark.slow
def test_task_parameters_fed_by_a_flow_parameter_blame_the_flow_parameter(recorded: dict[str, Any]) -> None:
    """Task parameters whose values are a changed flow parameter (`n`, passed unmapped) or an item
    of one (`xs`, mapped over) follow from it: the root causes are the two flow parameters, named
    as such, and no task parameter."""
    diff = diff_runs(recorded["store"], recorded["a"], recorded["b"])
    assert diff.differences() == ["flow parameter n: 3 -> 4", "flow parameter xs: [1, 2, 3] -> [1, 2, 5]"]
    scale = {t.task: {c.key: c for c in t.changes} for t in diff.tasks if t.task.startswith("scale")}
    assert scale["scale[2]"]["parameter x"].derived and scale["scale[2]"]["parameter x"].note == "flow parameter xs"
    assert all(s["parameter n"].note == "flow parameter n" for s in scale.values())
    assert "parameter x" not in scale["scale[0]"] and not diff.sources


def test_a_cache_hit_records_no_parameters_and_the_diff_does_not_call_them_changed(store: Store) -> None:
    """A task served from Prefect's cache (CACHED) is recorded without its parameters: the diff
    says its state changed, never that each parameter went from its value to nothing."""
    a = make_run(store, params={"n": 3}, pid=1)
    b = make_run(store, params={"n": 3}, pid=2, started=T0.replace(month=6))
    train = next(t for t in store.load_run(b).final_tasks() if t.task_name == "train")
    store.write_task(train.model_copy(update={"attempt": 2, "state": "CACHED", "parameters": {}, "parameter_hashes": {},
                                              "parameters_hash": "cache-key:abc"}))
    diff = diff_runs(store, a, b)
    changes = [(c.key, c.a, c.b) for t in diff.tasks if t.task == "train" for c in t.changes]
    assert changes == [("state", "COMPLETED", "CACHED")], changes


def test_a_changed_result_of_an_object_s_task_names_the_object_s_state_first(store: Store) -> None:
    """A task that calls an object's method (recorded ``?module:Class.__call__``): with the
    same inputs and a different result, the object's state (which no record holds) is named
    before nondeterminism."""
    from reproflow.records import TaskRecord

    def task(run_id: str, result: str, function: str) -> TaskRecord:
        return TaskRecord(run_id=run_id, task_run_id=f"{run_id}-t", task_name="add_two", task_key="m.Adder",
                          function=function, state="COMPLETED", started_at=T0, ended_at=T0, duration_s=0,
                          parameters_hash="p", result_hash=result)  # fmt: skip

    a = make_run(store, run_id="run-obj-a", tasks=[task("run-obj-a", "r1", "?flow:Adder.__call__")])
    b = make_run(store, run_id="run-obj-b", tasks=[task("run-obj-b", "r2", "?flow:Adder.__call__")])
    note = diff_runs(store, a, b).tasks[0].changes[0].note
    assert note == ("the Adder object it calls may hold other state (not recorded); "
                    "same inputs, different result: nondeterminism or environment")
    c = make_run(store, run_id="run-fn-c", tasks=[task("run-fn-c", "r1", "flow:add_two")])
    d = make_run(store, run_id="run-fn-d", tasks=[task("run-fn-d", "r2", "flow:add_two")])
    assert diff_runs(store, c, d).tasks[0].changes[0].note == "same inputs, different result: nondeterminism or environment"


def test_a_config_object_s_changed_field_is_named(store: Store) -> None:
    """An argparse.Namespace flow parameter (recorded by its attributes) and a nested dict in it,
    one hyperparameter changed in each: the diff names ``args.lr`` and ``args.opt.beta`` with
    their two values, not the whole object cut at 80 characters; the task that took the object
    names the same fields, following from the flow parameter."""
    import argparse

    def args(lr: float, beta: float) -> argparse.Namespace:
        return argparse.Namespace(data="data/a-rather-long-file-name-for-the-training-set.csv", epochs=10,
                                  lr=lr, opt={"name": "adam", "beta": beta})

    from reproflow.values._typed import hash_mapping, to_typed_json

    runs = []
    for lr, beta, pid in ((0.5, 0.9, 1), (0.1, 0.99, 2)):
        run = make_run(store, params={"args": args(lr, beta), "n": 3}, pid=pid, started=T0.replace(month=pid))
        train = next(t for t in store.load_run(run).final_tasks() if t.task_name == "train")
        per, combined = hash_mapping({"args": args(lr, beta)})
        store.write_task(train.model_copy(update={"attempt": 2, "parameters": {"args": to_typed_json(args(lr, beta))},
                                                  "parameter_hashes": per, "parameters_hash": combined}))
        runs.append(run)
    diff = diff_runs(store, *runs)
    assert [(c.key, c.a, c.b) for c in diff.parameters] == [("args.lr", 0.5, 0.1), ("args.opt.beta", 0.9, 0.99)]
    train = {c.key: c for t in diff.tasks if t.task == "train" for c in t.changes}
    assert {"parameter args.lr", "parameter args.opt.beta"} <= set(train)
    assert train["parameter args.lr"].derived and train["parameter args.lr"].note == "flow parameter args"
    assert "flow parameter args.lr: 0.5 -> 0.1" in diff.differences()
