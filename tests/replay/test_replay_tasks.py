"""Replay task by task (``--engine tasks``): no orchestrator, each recorded task called in DAG order.

One plain-Python pipeline (``with reproflow.record():`` calling ``@repro_task`` functions that
pass values and files) is recorded once in a real git repository by ``python pipeline.py``, and
two Prefect shapes of the corpus are recorded the same way; every replay runs from another
folder with only ``--store``, through the CLI, in one rebuilt uv environment shared by the
session (every recording ran in this same environment, so the first replay of the session
builds it and the rest reuse it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from replay_records import store_files

from reproflow.store import Store

# the first replay builds the environment (minutes on a loaded 2-core machine)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))
from corpus_harness import Shape, make_repo, task_verdicts  # noqa: E402

PIPELINE = textwrap.dedent(
    """
    import os
    import sys
    from pathlib import Path

    import reproflow
    from reproflow import repro_task


    @repro_task
    def load(path: Path) -> list:
        return [int(x) for x in path.read_text().split()]


    @repro_task
    def clean(values: list) -> list:
        return sorted(v for v in values if v > 1)


    @repro_task(outputs=["out"])
    def write(values: list, out: Path) -> Path:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\\n".join(str(v) for v in values) + "\\n")
        return out


    @repro_task
    def count_lines(path: Path) -> int:
        return len(path.read_text().splitlines())


    @repro_task
    def label(values: list) -> str:
        # RF_TASKS_SALT is unset when recorded: a replay with it set changes this task's output
        return "the sum is " + str(sum(values)) + os.environ.get("RF_TASKS_SALT", "")


    @repro_task
    def summarize(n: int, text: str, values: list) -> dict:
        return {"lines": n, "label": text, "max": max(values)}


    if __name__ == "__main__":
        with reproflow.record():
            values = clean(load(Path(sys.argv[1])))
            path = write(values, Path("out") / "clean.txt")
            print(summarize(count_lines(path), label(values), values))
    """
)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout


def _record(repo: Path, store: Path, args: list[str], env: dict[str, str] | None = None,
            program: str = sys.executable) -> str:
    before = set(Store(store).run_ids()) if store.exists() else set()
    run_env = {**os.environ, **(env or {}), "REPROFLOW_STORE": str(store), "PREFECT_LOGGING_LEVEL": "WARNING"}
    run_env.pop("REPROFLOW_RUN_ID", None)
    proc = subprocess.run([program, *args], cwd=repo, capture_output=True, text=True, timeout=600, env=run_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (new,) = set(Store(store).run_ids()) - before
    return new


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """pipeline.py in a fresh git repository, its input outside it, recorded once."""
    base = tmp_path_factory.mktemp("replay-tasks")
    repo, data, store = base / "repo", base / "data", base / "store"
    repo.mkdir()
    data.mkdir()
    (repo / "pipeline.py").write_text(PIPELINE)
    (repo / ".gitignore").write_text("out/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pipeline")
    (data / "in.txt").write_text("3 1 4 1 5 9 2 6\n")
    run_id = _record(repo, store, ["pipeline.py", str(data / "in.txt")])
    yield {"repo": repo, "data": data, "store": store, "run_id": run_id, "base": base}


@pytest.fixture(scope="module")
def cache_dir(shared_cache_dir: Path) -> Path:
    """The session's env cache (tests/conftest.py): these recordings run in the suite's own
    environment, so an environment an earlier test built is reused, and one built here serves
    the later tests."""
    return shared_cache_dir


def _replay(args: list[str], where: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch) -> tuple[int, Any, str, str]:
    """``reproflow replay ...`` through the CLI in ``where``: (exit code, JSON or None, stdout, stderr)."""
    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(where)
    capsys.readouterr()
    code = run_cli(app, ["replay", *args])
    out, err = capsys.readouterr()
    data = json.loads(out) if "--json" in args and out.strip().startswith("{") else None
    return code, data, out, err


def _elsewhere(tmp_path: Path) -> Path:
    where = tmp_path / "elsewhere"
    where.mkdir(parents=True, exist_ok=True)
    return where


def test_plain_run_replays_task_by_task_to_reproduced(recorded: dict[str, Any], cache_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """--engine tasks calls each recorded function in DAG order, fed the replayed values and
    files of its upstream tasks: every task reproduces, from another folder with only --store;
    the new run is linked to the original and holds one task run per recorded one."""
    code, result, _, err = _replay([recorded["run_id"], "--store", str(recorded["store"]), "--engine", "tasks",
                                    "--json"], _elsewhere(tmp_path), cache_dir, capsys, monkeypatch)
    assert code == 0, err + json.dumps(result, indent=1)[-3000:]
    assert result["verdict"] == "reproduced"
    assert result["plan"]["replay_engine"] == "tasks" and result["plan"]["engine"] == "plain"
    names = [t["task_name"] for t in result["tasks"]]
    assert sorted(names) == ["clean", "count_lines", "label", "load", "summarize", "write"]
    assert names.index("load") < names.index("clean") < names.index("write") < names.index("count_lines")
    assert all(t["verdict"] == "reproduced" for t in result["tasks"])
    st = Store(recorded["store"])
    new = st.load_run(result["replay_run_id"])
    assert new.record.replay_of == recorded["run_id"]
    assert len(new.final_tasks()) == 6
    # count_lines read the file the replayed write made (in the restored code), not the original
    out_ref = next(r for t in new.final_tasks() if t.task_name == "write" for r in t.outputs)
    assert not out_ref.uri.startswith(str(recorded["repo"]))
    counted = next(t for t in new.final_tasks() if t.task_name == "count_lines")
    assert any(r.uri == out_ref.uri for r in counted.inputs)
    assert result["environment"]["mode"] == "rebuild"


def test_task_whose_output_changes_is_named(recorded: dict[str, Any], cache_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A task whose return value comes out different (it reads an environment variable set only
    now) is "differs" by name, exit 1; its downstream task differs too; the rest reproduce."""
    monkeypatch.setenv("RF_TASKS_SALT", "-changed")
    code, result, _, err = _replay([recorded["run_id"], "--store", str(recorded["store"]), "--engine", "tasks",
                                    "--json"], _elsewhere(tmp_path), cache_dir, capsys, monkeypatch)
    assert code == 1, err + json.dumps(result, indent=1)[-3000:]
    assert result["verdict"] == "not-reproduced"
    got = task_verdicts(result)
    assert got["label"] == {"differs"} and got["summarize"] == {"differs"}
    assert all(got[n] == {"reproduced"} for n in ("load", "clean", "write", "count_lines"))
    text = " ".join(_replay([recorded["run_id"], "--store", str(recorded["store"]), "--engine", "tasks"],
                            _elsewhere(tmp_path / "again"), cache_dir, capsys, monkeypatch)[2].split())
    assert "label" in text and "differs" in text  # the table names it too


def test_changed_input_is_refused_before_anything_runs(recorded: dict[str, Any], cache_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """One changed byte in the input outside the repository: exit 6 in one line naming the file,
    and nothing written to the store (no task ran)."""
    src = recorded["data"] / "in.txt"
    original = src.read_bytes()
    st = Store(recorded["store"])
    snapshot = store_files(st)
    src.write_bytes(original.replace(b"3", b"7", 1))
    try:
        code, _, out, err = _replay([recorded["run_id"], "--store", str(recorded["store"]), "--engine", "tasks"],
                                    _elsewhere(tmp_path), cache_dir, capsys, monkeypatch)
    finally:
        src.write_bytes(original)
    assert code == 6, out + err
    assert str(src) in " ".join(err.split()) and "Traceback" not in err
    assert store_files(st) == snapshot


def test_engine_prefect_refuses_a_plain_run_in_one_line(recorded: dict[str, Any], cache_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """--engine prefect on a run recorded without Prefect, and an unknown --engine: one line
    naming the fix, no traceback, nothing run."""
    code, _, out, err = _replay([recorded["run_id"], "--store", str(recorded["store"]), "--engine", "prefect"],
                                _elsewhere(tmp_path), cache_dir, capsys, monkeypatch)
    assert code == 9 and "--engine tasks" in err and "Traceback" not in err, out + err
    code, _, out, err = _replay([recorded["run_id"], "--store", str(recorded["store"]), "--engine", "airflow"],
                                tmp_path / "elsewhere", cache_dir, capsys, monkeypatch)
    assert code == 9 and "choose prefect" in err and "Traceback" not in err, out + err


@pytest.mark.parametrize("shape", ["basic_files", "map_unmapped"])
def test_prefect_flow_replays_task_by_task_with_the_flow_s_verdicts(
    shape: str, prefect_api_env: dict[str, str], cache_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Prefect flow of the corpus replays as a flow by default and task by task with
    --engine tasks, to the same run verdict and the same verdict for every task run."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_api_env["PREFECT_API_URL"])
    repo = make_repo(Shape.load(shape), tmp_path / "repo")
    store = tmp_path / "store"
    run_id = _record(repo, store, ["flow.py"])
    where = _elsewhere(tmp_path)
    code_flow, flow, _, err = _replay([run_id, "--store", str(store), "--json"], where, cache_dir, capsys, monkeypatch)
    assert flow is not None and flow["plan"]["replay_engine"] == "prefect", err
    code_tasks, tasks, _, err = _replay([run_id, "--store", str(store), "--engine", "tasks", "--json"], where,
                                        cache_dir, capsys, monkeypatch)
    assert tasks is not None and tasks["plan"]["replay_engine"] == "tasks", err

    def per_run(result: dict[str, Any]) -> list[tuple[str, Any, str]]:
        return sorted((t["task_name"], t["map_index"], t["verdict"]) for t in result["tasks"])

    assert (code_tasks, tasks["verdict"]) == (code_flow, flow["verdict"]) == (0, "reproduced"), err
    assert per_run(tasks) == per_run(flow)
    st = Store(store)
    assert st.load_run(tasks["replay_run_id"]).record.engine == "plain"  # no flow ran


def test_partial_task_replays_alone_and_an_object_s_task_is_refused_with_its_cause(
    prefect_api_env: dict[str, str], cache_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The corpus's task_factories (recorder._callee): a task made from ``functools.partial``
    replays alone (``--task``), called with the arguments the partial fixed, which its record
    holds; a callable object's task, a bound method's and a closure's are refused alone with the
    cause (the object's state, the factory's variables are not in the record) and the fix, in
    one line, before anything is built."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_api_env["PREFECT_API_URL"])
    repo = make_repo(Shape.load("task_factories"), tmp_path / "repo")
    store = tmp_path / "store"
    run_id = _record(repo, store, ["flow.py"])
    tasks = {t.task_name: t for t in Store(store).load_run(run_id).final_tasks()}
    assert tasks["triple"].function == "__main__:scale" and tasks["triple"].parameters == {"factor": 3, "x": 5}
    assert tasks["add_two"].function == "?__main__:Adder.__call__"
    assert tasks["score"].function == "?__main__:Scorer.score"
    assert tasks["write_out"].parameters["out_dir"] == {"__rf__": "path", "v": "out"}  # the partial's keyword
    assert [r.uri.rsplit("/", 2)[-2:] for r in tasks["write_out"].outputs] == [["out", "n.txt"]]
    where = _elsewhere(tmp_path)
    for name in ("triple", "write_out"):
        code, data, out, err = _replay([run_id, "--store", str(store), "--task", name, "--json"], where, cache_dir,
                                       capsys, monkeypatch)
        assert (code, data and data["verdict"]) == (0, "reproduced"), out + err
    for name, cause in (("add_two", "calls Adder.__call__ on an object"), ("score", "calls Scorer.score on an object"),
                        ("label-a", "calls make_labeler.<locals>.label, defined inside a function")):
        code, _, out, err = _replay([run_id, "--store", str(store), "--task", name], where, cache_dir, capsys,
                                    monkeypatch)
        line = " ".join(err.split())
        assert code != 0 and cause in line and "--engine prefect, without --task" in line, out + err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


STEPS = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from reproflow import repro_task


    @repro_task(inputs=["src"], outputs=["dst"])
    def numbers(src: Path, dst: Path) -> int:
        values = [int(x) for x in Path(src).read_text().split()]
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text("\\n".join(str(v) for v in values) + "\\n")
        return len(values)


    @repro_task(inputs=["src"])
    def total(src: Path) -> dict:
        values = [int(x) for x in Path(src).read_text().split()]
        return {"total": sum(values), "first": values[0]}


    if __name__ == "__main__":
        step = {"numbers": numbers, "total": total}[sys.argv[1]]
        print(step(*[Path(a) for a in sys.argv[2:]]))
    """
)

SCRIPT = """set -e
python steps.py numbers data/in.txt out/numbers.txt
reproflow job --name sort -i out/numbers.txt -o out/sorted.txt -- sort -n -o out/sorted.txt out/numbers.txt
python steps.py total out/sorted.txt
"""


def test_command_run_replays_task_by_task_by_default(cache_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`reproflow record -- sh pipeline.sh` (two Python steps of one script and a `reproflow job`
    shell step between them) replays task by task with no option: each step's function is
    imported from the restored script, the shell step runs its recorded command again, and all
    three reproduce, from another folder with only --store."""
    repo, store = tmp_path / "repo", tmp_path / "store"
    (repo / "data").mkdir(parents=True)
    (repo / "steps.py").write_text(STEPS)
    (repo / "pipeline.sh").write_text(SCRIPT)
    (repo / "data" / "in.txt").write_text("5 3 9 1\n")
    (repo / ".gitignore").write_text("out/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "steps")
    bin_dir = str(Path(sys.executable).parent)
    run_id = _record(repo, store, ["record", "--", "sh", "pipeline.sh"],
                     env={"PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")},
                     program=str(Path(bin_dir) / "reproflow"))
    original = Store(store).load_run(run_id)
    assert original.record.engine == "command"
    assert sorted(t.task_name for t in original.final_tasks()) == ["numbers", "sort", "total"]
    code, result, _, err = _replay([run_id, "--store", str(store), "--json"], _elsewhere(tmp_path), cache_dir,
                                   capsys, monkeypatch)
    assert code == 0, err + json.dumps(result, indent=1)[-3000:]
    assert result["plan"]["replay_engine"] == "tasks"
    assert [t["task_name"] for t in result["tasks"]] == ["numbers", "sort", "total"]
    assert all(t["verdict"] == "reproduced" for t in result["tasks"])
