"""Replay and the determinism probe on a real recorded flow (issue 6's acceptance), in place.

The flow (recorded by `python flow.py` in a temporary git repository, on a real Prefect server)
draws one random number with an unseeded task (`noisy.py`), one with `@repro_task(seed=1)`
(`seeded.py`), feeds the unseeded draw to a deterministic `scale` task, and reads a data file
with `load`. The seeded task replays identically; the unseeded one is flagged by `reproflow
check`, by its TaskRecord's findings and by the probe, which names it alone as nondeterministic
(`scale` only inherits it). The same recording serves the in-place replay's other promises:
`--from`, the work folder's cleanup, `--dry-run`, and the replay as a Prefect flow. Everything
runs in place (no environment build), so it stays fast.
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

from reproflow.store import Store

pytestmark = pytest.mark.slow  # a Prefect API server (the session's) and flow subprocesses

NOISY = textwrap.dedent(
    """
    import random

    from reproflow import repro_task


    @repro_task
    def draw(n: int) -> float:
        return random.random() * n
    """
)

SEEDED = textwrap.dedent(
    """
    import random

    from reproflow import repro_task


    @repro_task(seed=1)
    def draw_seeded(n: int) -> float:
        return random.random() * n
    """
)

FLOW = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from prefect import flow

    from noisy import draw
    from reproflow import repro_task
    from seeded import draw_seeded


    @repro_task
    def load(path: Path) -> list:
        return [int(x) for x in path.read_text().split()]


    @repro_task
    def scale(x: float, k: int) -> float:
        return round(x * k, 12)


    @flow
    def pipeline(data: Path, n: int = 3) -> list:
        values = load(data)
        a = draw(n)
        b = draw_seeded(n)
        c = scale(a, len(values))
        return [a, b, c]


    if __name__ == "__main__":
        pipeline(Path(sys.argv[1]))
    """
)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def recorded(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A git repo with flow.py, noisy.py, seeded.py, recorded once into a fresh store."""
    base = tmp_path_factory.mktemp("probe")
    repo, store = base / "repo", base / "store"
    repo.mkdir()
    (repo / "flow.py").write_text(FLOW)
    (repo / "noisy.py").write_text(NOISY)
    (repo / "seeded.py").write_text(SEEDED)
    (base / "in.txt").write_text("3 1 4 1 5\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pipeline")
    env = {**os.environ, "REPROFLOW_STORE": str(store), "PREFECT_API_URL": prefect_api,
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("REPROFLOW_SEED", None)
    env.pop("PYTHONHASHSEED", None)
    proc = subprocess.run([sys.executable, "flow.py", str(base / "in.txt")], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run_id,) = Store(store).run_ids()
    yield {"repo": repo, "store": store, "run_id": run_id, "data": base / "in.txt"}


def _cli(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
         tmp_path: Path) -> tuple[int, str, str]:
    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "220")
    monkeypatch.delenv("REPROFLOW_SEED", raising=False)
    capsys.readouterr()
    code = run_cli(app, args)
    out, err = capsys.readouterr()
    return code, out, err


def test_unseeded_task_is_flagged_by_check_and_by_its_record(recorded: dict[str, Any],
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`reproflow check` reports RPF101 in noisy.py and nothing in seeded.py; the recorded
    TaskRecord of the unseeded task carries an RPF1xx finding, the seeded one none and seed 1."""
    code, out, _ = _cli(["check", str(recorded["repo"] / "noisy.py"), "--format", "json"], capsys, monkeypatch, tmp_path)
    assert code != 0
    assert "RPF101" in out
    code, out, _ = _cli(["check", str(recorded["repo"] / "seeded.py"), "--format", "json"], capsys, monkeypatch, tmp_path)
    assert code == 0 and "RPF1" not in out
    tasks = {t.task_name: t for t in Store(recorded["store"]).load_run(recorded["run_id"]).final_tasks()}
    assert any(f.code.startswith("RPF1") for f in tasks["draw"].findings), tasks["draw"].findings
    assert not [f for f in tasks["draw_seeded"].findings if f.code.startswith("RPF1")]
    assert tasks["draw_seeded"].seed == 1 and tasks["draw"].seed is None


def test_seeded_task_replays_identically_in_place(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`replay --in-place`: the seeded draw reproduces bit for bit; the unseeded draw differs and
    is named with its check finding; exit 1."""
    code, out, err = _cli(["replay", recorded["run_id"], "--store", str(recorded["store"]), "--in-place", "--json"],
                          capsys, monkeypatch, tmp_path)
    result = json.loads(out)
    assert code == 1, err
    by_name = {t["task_name"]: t for t in result["tasks"]}
    assert by_name["draw_seeded"]["verdict"] == "reproduced"
    assert by_name["draw_seeded"]["replay_result_hash"] == by_name["draw_seeded"]["original_result_hash"]
    assert by_name["load"]["verdict"] == "reproduced"
    assert by_name["draw"]["verdict"] == "differs"
    assert any("RPF101" in c for c in by_name["draw"]["causes"])


def test_probe_names_exactly_the_unseeded_task(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`reproflow probe` runs the flow twice in place: `draw` is the one nondeterministic task,
    `scale` (fed by it) inherited, `load` and `draw_seeded` deterministic; both new runs replay
    the original; exit 1; the work folder is gone."""
    st = Store(recorded["store"])
    before = set(st.run_ids())
    code, out, err = _cli(["probe", recorded["run_id"], "--store", str(recorded["store"]), "--json"],
                          capsys, monkeypatch, tmp_path)
    result = json.loads(out)
    assert code == 1, err + out[-3000:]
    verdicts = {t["task_name"]: t["verdict"] for t in result["tasks"]}
    assert verdicts == {"load": "deterministic", "draw": "nondeterministic", "draw_seeded": "deterministic",
                        "scale": "inherited"}, result["tasks"]
    assert [t["task_name"] for t in result["tasks"] if t["verdict"] == "nondeterministic"] == ["draw"]
    draw = next(t for t in result["tasks"] if t["task_name"] == "draw")
    assert draw["same_inputs"] is True and draw["between_runs"] is False
    assert any("RPF101" in c for c in draw["causes"])
    scale = next(t for t in result["tasks"] if t["task_name"] == "scale")
    assert scale["same_inputs"] is False
    assert result["verdict"] == "nondeterministic" and result["deterministic"] is False
    assert result["environment"]["mode"] == "in-place"
    new = set(st.run_ids()) - before
    assert new == set(result["run_ids"]) and len(new) == 2
    assert all(st.load_run_record(r).replay_of == recorded["run_id"] for r in new)
    assert result["work_dir"] is None


def test_replay_twice_gives_the_same_account_as_text(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`replay --twice --in-place` is the probe with replay's defaults: a table on stdout naming
    `draw` nondeterministic and `scale` inherited, progress for both runs on stderr, exit 1."""
    code, out, err = _cli(["replay", recorded["run_id"], "--store", str(recorded["store"]), "--twice", "--in-place"],
                          capsys, monkeypatch, tmp_path)
    assert code == 1
    assert "determinism probe" in out
    assert "nondeterministic: draw;" in " ".join(out.split())
    assert "inherited from upstream: scale" in " ".join(out.split())
    assert "run 1" in err and "run 2" in err


def test_probe_of_the_seeded_task_alone_exits_zero(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`probe --task draw_seeded` calls only that task twice from its recorded inputs: it agrees
    with itself and with the original, so the probe exits 0."""
    code, out, err = _cli(["probe", recorded["run_id"], "--store", str(recorded["store"]), "--task", "draw_seeded",
                           "--json"], capsys, monkeypatch, tmp_path)
    result = json.loads(out)
    assert code == 0, err + out[-2000:]
    assert [(t["task_name"], t["verdict"]) for t in result["tasks"]] == [("draw_seeded", "deterministic")]
    assert result["deterministic"] is True and result["reproduced"] is True


def test_changed_input_is_the_environment_not_the_code(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`probe --task load` with a changed data file and --allow-changed-inputs: `load` agrees with
    itself in both runs but not with the original: verdict `environment`, the input named as the
    cause; the task is deterministic, so the probe exits 0 (while `replay` would exit 1)."""
    data: Path = recorded["data"]
    original = data.read_bytes()
    data.write_bytes(b"3 1 4 1 5 9\n")
    try:
        code, out, err = _cli(["probe", recorded["run_id"], "--store", str(recorded["store"]), "--task", "load",
                               "--allow-changed-inputs", "--json"], capsys, monkeypatch, tmp_path)
    finally:
        data.write_bytes(original)
    result = json.loads(out)
    (load,) = result["tasks"]
    assert load["verdict"] == "environment" and load["between_runs"] is True, load
    assert any(str(data) in c and "changed" in c for c in load["causes"])
    assert result["deterministic"] is True and result["reproduced"] is False
    assert code == 0, err  # the probe's question is determinism: it holds


def test_from_replays_the_task_and_its_downstream(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`--from draw` calls `draw` and then `scale` fed with the new draw (not the recorded one):
    both differ, `scale` because its upstream did not reproduce; `load` and `draw_seeded` are
    not run; the new run is a replay of the original."""
    code, out, err = _cli(["replay", recorded["run_id"], "--store", str(recorded["store"]), "--in-place",
                           "--from", "draw", "--json"], capsys, monkeypatch, tmp_path)
    result = json.loads(out)
    assert code == 1, err
    assert result["plan"]["partial"] == "--from draw"
    assert [(t["task_name"], t["verdict"]) for t in result["tasks"]] == [("draw", "differs"), ("scale", "differs")]
    draw, scale = result["tasks"]
    assert any("upstream task(s) draw did not reproduce" in c for c in scale["causes"]), scale["causes"]
    new = Store(recorded["store"]).load_run(result["replay_run_id"])
    assert new.record.replay_of == recorded["run_id"]
    fed = {t.task_name: t for t in new.final_tasks()}
    assert fed["scale"].parameter_hashes["x"] == fed["draw"].result_hash  # the new draw, not the recorded one


def test_work_folder_is_removed_unless_kept(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without --keep the work folder (restored code, spec, runner log) is gone after the replay;
    with --keep it stays, holds the restored flow and the log, and its path is printed."""
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    args = ["replay", recorded["run_id"], "--store", str(recorded["store"]), "--in-place", "--task", "draw_seeded"]
    code, out, err = _cli(args, capsys, monkeypatch, tmp_path)
    assert code == 0, out + err
    assert list(scratch.iterdir()) == [] and "work folder kept" not in out
    code, out, err = _cli([*args, "--keep"], capsys, monkeypatch, tmp_path)
    assert code == 0
    (kept,) = scratch.iterdir()
    assert kept.name.startswith("reproflow-replay-") and "work folder kept" in out
    assert (kept / "source" / "seeded.py").read_text() == SEEDED and (kept / "runner.log").exists()


def test_dry_run_prints_the_plan_and_runs_nothing(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`replay --dry-run` and `probe --dry-run` print the plan (naming the flagged task as a risk),
    exit 0, and add no run to the store."""
    st = Store(recorded["store"])
    before = set(st.run_ids())
    for cmd in (["replay", "--in-place"], ["probe"]):
        code, out, err = _cli([cmd[0], recorded["run_id"], "--store", str(recorded["store"]), *cmd[1:], "--dry-run"],
                              capsys, monkeypatch, tmp_path)
        assert code == 0, out + err
        flat = " ".join(out.split())
        assert "replay plan" in flat and "task 'draw' was flagged by the checks (RPF101)" in flat
    assert set(st.run_ids()) == before


def test_replay_flow_on_the_prefect_engine(recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                           prefect_api: str) -> None:
    """The replay as a Prefect flow (what the deployment runs): the full replay ends Failed with
    `draw` in its message and the verdict as data; `task="draw_seeded"` ends Completed; each
    leaves a `reproflow-verdicts` table artifact (task, map index, verdict, outputs, cause) and
    the plan as a `reproflow-replay-plan` markdown artifact."""
    import httpx

    from reproflow.flows import replay_flow

    monkeypatch.delenv("REPROFLOW_SEED", raising=False)
    failed = replay_flow(run_id=recorded["run_id"], store=str(recorded["store"]), in_place=True, return_state=True)
    assert failed.is_failed() and "draw" in (failed.message or "")
    data = failed.result(raise_on_failure=False)
    verdicts = {t["task_name"]: t["verdict"] for t in data["tasks"]}
    assert verdicts["draw"] == "differs" and verdicts["draw_seeded"] == "reproduced"
    ok = replay_flow(run_id=recorded["run_id"], store=str(recorded["store"]), in_place=True, task="draw_seeded",
                     return_state=True)
    assert ok.is_completed(), ok.message
    assert ok.result()["verdict"] == "reproduced"

    # the client's read_artifacts sends nulls this server version refuses: post the filter directly
    found = httpx.post(f"{prefect_api}/artifacts/filter", json={"artifacts": {"key": {"any_": ["reproflow-verdicts"]}}},
                       timeout=30).json()
    runs = {a["flow_run_id"]: a["data"] for a in found}
    assert str(failed.state_details.flow_run_id) in runs and str(ok.state_details.flow_run_id) in runs
    rows = runs[str(failed.state_details.flow_run_id)]
    rows = json.loads(rows) if isinstance(rows, str) else rows
    verdict_of = {r["task"]: r["verdict"] for r in rows}
    assert verdict_of["draw"] == "differs" and verdict_of["draw_seeded"] == "reproduced"
    assert set(rows[0]) == {"task", "map_index", "verdict", "outputs", "result", "cause"}
    plans = httpx.post(f"{prefect_api}/artifacts/filter",
                       json={"artifacts": {"key": {"any_": ["reproflow-replay-plan"]}}}, timeout=30).json()
    plan = {a["flow_run_id"]: a["data"] for a in plans}[str(failed.state_details.flow_run_id)]
    assert "replay plan" in plan and recorded["run_id"] in plan


def test_replay_flow_twice_runs_the_probe_on_the_prefect_engine(recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                                 prefect_api: str) -> None:
    """replay_flow(twice=True) is the determinism probe as a Prefect flow: Failed naming the
    unseeded `draw` (nondeterministic, with two new runs), Completed for `draw_seeded` alone;
    each leaves a `reproflow-probe` table artifact with a row per task run."""
    import httpx

    from reproflow.flows import replay_flow

    monkeypatch.delenv("REPROFLOW_SEED", raising=False)
    failed = replay_flow(run_id=recorded["run_id"], store=str(recorded["store"]), in_place=True, twice=True,
                         return_state=True)
    assert failed.is_failed() and "draw" in (failed.message or "")
    data = failed.result(raise_on_failure=False)
    assert data["verdict"] == "nondeterministic" and len(data["run_ids"]) == 2
    verdicts = {t["task_name"]: t["verdict"] for t in data["tasks"]}
    assert verdicts["draw"] == "nondeterministic" and verdicts["draw_seeded"] == "deterministic"
    ok = replay_flow(run_id=recorded["run_id"], store=str(recorded["store"]), in_place=True, twice=True,
                     task="draw_seeded", return_state=True)
    assert ok.is_completed(), ok.message
    assert ok.result()["verdict"] == "deterministic"

    found = httpx.post(f"{prefect_api}/artifacts/filter", json={"artifacts": {"key": {"any_": ["reproflow-probe"]}}},
                       timeout=30).json()
    runs = {a["flow_run_id"]: a["data"] for a in found}
    assert str(failed.state_details.flow_run_id) in runs and str(ok.state_details.flow_run_id) in runs
    rows = runs[str(failed.state_details.flow_run_id)]
    rows = json.loads(rows) if isinstance(rows, str) else rows
    draw = next(r for r in rows if r["task"] == "draw")
    assert draw["verdict"] == "nondeterministic" and draw["run 1 vs run 2"] == "differs"
