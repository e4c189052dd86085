"""Snakemake 9 adapter (reproflow.snakemake) against the real engine, in its own environment built
with uv (Snakemake and reproflow, installed from this checkout).

Every job of one invocation (shell:, script: and run: rules) lands in one run, with the rule,
wildcards and declared paths in engine_info and edges from file lineage; the engine tests'
pipeline (tests/engines/pipeline) records the same tasks, DAG shape and data hashes as its
Prefect version."""

from __future__ import annotations

import collections
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from reproflow.recorder._dag import edges
from reproflow.records import Run
from reproflow.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = pathlib.Path(__file__).resolve().parents[2]
PIPELINE = pathlib.Path(__file__).resolve().parent / "pipeline"


@pytest.fixture(scope="module")
def snakemake_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    """A virtual environment with Snakemake 9 and reproflow (editable, from this checkout): the bin
    folder. Built apart from the test environment, so Snakemake's pins never meet Prefect's."""
    venv = tmp_path_factory.mktemp("snakemake-env") / "venv"
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=300)
    subprocess.run([*uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(venv / "bin" / "python"), "-e", str(REPO),
                    "snakemake==9.*"], check=True, timeout=600)
    yield venv / "bin"


def _env(bin_dir: pathlib.Path, store: pathlib.Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["REPROFLOW_STORE"] = str(store)
    env.pop("REPROFLOW_RUN_ID", None)
    env.pop("VIRTUAL_ENV", None)
    return env


def _snakemake(bin_dir: pathlib.Path, workdir: pathlib.Path, store: pathlib.Path, *args: str,
               record: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = [str(bin_dir / "snakemake"), "-c1", "--quiet", "all", *args]
    if record:
        cmd = [str(bin_dir / "reproflow"), "record", "--", *cmd]
    return subprocess.run(cmd, cwd=workdir, env=_env(bin_dir, store), text=True, capture_output=True, timeout=900)


def _only_run(store: Store) -> Run:
    [run_id] = store.run_ids()
    return store.load_run(run_id)


def _shape(run: Run) -> collections.Counter[tuple[str, str]]:
    """The DAG by task names: how many task-run pairs connect each (upstream, downstream) name pair."""
    names = {t.task_run_id: t.task_name for t in run.final_tasks()}
    pairs = {(e.src, e.dst) for e in edges(run)}
    return collections.Counter((names[s], names[d]) for s, d in pairs)


def _hash_of(run: Run, task: str, which: str, suffix: str) -> set[str]:
    return {ref.sha256 or "" for t in run.final_tasks() if t.task_name == task
            for ref in getattr(t, which) if ref.uri.endswith(suffix)}


def test_snakefile_pipeline_records_one_run_like_the_prefect_flow(
        snakemake_env: pathlib.Path, tmp_path: pathlib.Path, prefect_api_env: dict[str, str]) -> None:
    """The pipeline's Snakefile (a shell: rule, two script: rules, a run: rule fanned out over four
    statistics), run by real Snakemake with the onstart/onsuccess hooks: one run of engine
    snakemake holding every job, each with its rule, wildcards and declared paths; and the same
    tasks, DAG shape and data hashes (raw CSV, clean CSV, report) as the Prefect flow's run."""
    smk_dir, smk_store = tmp_path / "smk", tmp_path / "smk-store"
    shutil.copytree(PIPELINE, smk_dir, ignore=shutil.ignore_patterns("results", ".reproflow", ".snakemake"))
    proc = _snakemake(snakemake_env, smk_dir, smk_store)
    assert proc.returncode == 0, proc.stderr[-4000:]
    smk = _only_run(Store(smk_store))
    assert smk.record.engine == "snakemake" and smk.status == "COMPLETED" and smk.end is not None
    tasks = smk.final_tasks()
    assert {t.engine for t in tasks} == {"snakemake"} and {t.state for t in tasks} == {"COMPLETED"}
    kinds = {t.task_name: t.engine_info["kind"] for t in tasks}
    assert kinds == {"load": "shell", "clean": "script", "stat": "run", "report": "script"}
    stats = [t for t in tasks if t.task_name == "stat"]
    assert sorted(t.engine_info["wildcards"]["name"] for t in stats) == ["max", "mean", "median", "min"]  # type: ignore[index]
    mean = next(t for t in stats if t.engine_info["wildcards"] == {"name": "mean"})
    assert mean.engine_info["input"] == ["results/clean.csv"] and mean.engine_info["output"] == ["results/stats/mean.json"]
    assert mean.parameters == {"name": "mean"} and [r.param for r in mean.inputs] == ["clean_csv"]

    pf_dir, pf_store = tmp_path / "prefect", tmp_path / "prefect-store"
    shutil.copytree(PIPELINE, pf_dir, ignore=shutil.ignore_patterns("results", ".reproflow", ".snakemake"))
    env = dict(os.environ, REPROFLOW_STORE=str(pf_store), **prefect_api_env)
    env.pop("REPROFLOW_RUN_ID", None)
    flow = subprocess.run([sys.executable, "prefect_flow.py"], cwd=pf_dir, env=env, text=True, capture_output=True,
                          timeout=600)
    assert flow.returncode == 0, flow.stderr[-4000:]
    pf = _only_run(Store(pf_store))

    count = collections.Counter(t.task_name for t in tasks)
    assert count == collections.Counter(t.task_name for t in pf.final_tasks()) == {
        "load": 1, "clean": 1, "stat": 4, "report": 1}
    assert _shape(smk) == _shape(pf) == {("load", "clean"): 1, ("clean", "stat"): 4, ("stat", "report"): 4}
    for task, which, suffix in (("load", "inputs", "measurements.csv"), ("clean", "outputs", "clean.csv"),
                                ("stat", "inputs", "clean.csv"), ("report", "outputs", "report.json")):
        got = _hash_of(smk, task, which, suffix)
        assert len(got) == 1 and got == _hash_of(pf, task, which, suffix), (task, which)
    assert (smk_dir / "results" / "report.json").read_bytes() == (pf_dir / "results" / "report.json").read_bytes()


def test_reproflow_record_snakemake_joins_and_a_failed_job_fails_the_run(
        snakemake_env: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """`reproflow record -- snakemake ...` gives the invocation its run (the Snakefile's onstart
    joins it and opens none); a shell: job that exits non-zero is recorded FAILED with its exit
    status, after the jobs before it, with the edge between them; the run is FAILED with
    Snakemake's exit status, which `reproflow record` returns."""
    (tmp_path / "in.txt").write_text("b\na\n")
    (tmp_path / "Snakefile").write_text(textwrap.dedent("""
        import reproflow.snakemake as rf

        onstart: rf.onstart()
        onsuccess: rf.onsuccess()
        onerror: rf.onerror()

        rule all:
            input: "out/{x}.done".format(x="one")

        rule sort:
            input: "in.txt"
            output: "out/sorted.txt"
            run:
                with rf.record_job():
                    with open(output[0], "w") as f:
                        f.write("".join(sorted(open(input[0]))))

        rule finish:
            input: "out/sorted.txt"
            output: "out/{x}.done"
            shell: rf.shell("head -n 1 {input} > {output} && exit 4")
    """))
    store = tmp_path / "store"
    proc = _snakemake(snakemake_env, tmp_path, store, record=True)
    assert proc.returncode == 1, proc.stderr[-4000:]
    run = _only_run(Store(store))
    assert run.record.engine == "command" and run.record.engine_info["argv"][1:4] == ["-c1", "--quiet", "all"]  # type: ignore[index]
    assert run.status == "FAILED" and run.end is not None and run.end.exit_code == 1
    sort, finish = run.final_tasks()
    assert (sort.task_name, sort.state, finish.task_name, finish.state) == ("sort", "COMPLETED", "finish", "FAILED")
    assert finish.engine_info["wildcards"] == {"x": "one"} and finish.engine_info["exit_code"] == 4
    assert finish.engine_info["rule"] == "finish" and finish.engine_info["output"] == ["out/one.done"]
    assert [(e.src, e.dst, e.how) for e in edges(run)] == [(sort.task_run_id, finish.task_run_id, "data")]


@pytest.fixture(scope="module")
def recorded_repo(snakemake_env: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The pipeline as a git repository (its data on disk but not committed, as data usually is),
    run once by Snakemake: the one recording the replay tests share."""
    work = tmp_path_factory.mktemp("smk-replay")
    repo, store = work / "repo", work / "store"
    shutil.copytree(PIPELINE, repo, ignore=shutil.ignore_patterns("results", ".reproflow", ".snakemake", "__pycache__"))
    (repo / ".gitignore").write_text("data/\nresults/\n.snakemake/\n__pycache__/\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "pipeline"]):
        subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo, check=True,
                       capture_output=True)
    proc = _snakemake(snakemake_env, repo, store)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"repo": repo, "store": Store(store), "run": _only_run(Store(store))}


def _replay(run_id: str, store: Store, cwd: pathlib.Path, cache: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROFLOW_")}
    env.update(COLUMNS="200", REPROFLOW_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable, "-m", "reproflow", "replay", run_id, "--store", store.url, *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)


def test_a_snakemake_run_plans_task_by_task_with_a_snakemake_command_for_every_job(
        recorded_repo: dict[str, object], tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Snakemake run plans task by task by default, and every job (the script: ones too, which
    record neither a function nor a command) is replayable: the plan has no problems."""
    from reproflow.cli import app
    from reproflow.cli._common import run_cli

    run, store = recorded_repo["run"], recorded_repo["store"]
    assert isinstance(run, Run) and isinstance(store, Store)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = run_cli(app, ["replay", run.run_id, "--store", store.url, "--dry-run", "--json"])
    out, err = capsys.readouterr()
    plan = json.loads(out)["plan"]
    assert code == 0 and plan["replay_engine"] == "tasks" and not plan["problems"], (err, plan["problems"])


def test_snakemake_run_replays_job_by_job_from_another_folder(
        recorded_repo: dict[str, object], tmp_path: pathlib.Path, shared_cache_dir: pathlib.Path) -> None:
    """``reproflow replay RUN_ID --store URL`` in an empty folder: each recorded job (shell:,
    script: and run: rules alike) re-runs alone, in DAG order, through the rebuilt environment's
    Snakemake (its rule only, its outputs forced), and every one reproduces. No recorded
    interpreter path is run; the jobs' own hooks do not write into the user's store."""
    run, store = recorded_repo["run"], recorded_repo["store"]
    assert isinstance(run, Run) and isinstance(store, Store)
    proc = _replay(run.run_id, store, tmp_path, shared_cache_dir, "--json")
    where = f"exit {proc.returncode}\nstdout: {proc.stdout[-3000:]}\nstderr: {proc.stderr[-3000:]}"
    assert proc.returncode == 0, where
    result = json.loads(proc.stdout)
    assert result["verdict"] == "reproduced", where
    verdicts = collections.Counter((t["task_name"], t["verdict"]) for t in result["tasks"])
    assert verdicts == {("load", "reproduced"): 1, ("clean", "reproduced"): 1, ("stat", "reproduced"): 4,
                        ("report", "reproduced"): 1}, where
    assert len(store.run_ids()) == 2  # the recording and its replay, nothing from the jobs' hooks


def test_snakemake_replay_refuses_a_changed_input_before_anything_runs(
        recorded_repo: dict[str, object], tmp_path: pathlib.Path, shared_cache_dir: pathlib.Path) -> None:
    """One changed byte in the recorded raw data: the replay stops in one line naming the file,
    before any job runs, and records no run."""
    run, store, repo = recorded_repo["run"], recorded_repo["store"], recorded_repo["repo"]
    assert isinstance(run, Run) and isinstance(store, Store) and isinstance(repo, pathlib.Path)
    raw = repo / "data" / "measurements.csv"
    before = raw.read_bytes()
    runs_before = set(store.run_ids())
    raw.write_bytes(before + b"\n")
    try:
        proc = _replay(run.run_id, store, tmp_path, tmp_path / "no-cache")
    finally:
        raw.write_bytes(before)
    assert proc.returncode != 0 and "measurements.csv" in proc.stderr, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert set(store.run_ids()) == runs_before  # no replay run was opened: no job ran
