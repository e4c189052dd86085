"""The determinism probe on a real recorded flow (issue 6's acceptance), in the current environment.

The flow (recorded by `python flow.py` in a temporary git repository, on a real Prefect server)
draws one random number with an unseeded task (`noisy.py`), one with `@repro_task(seed=1)`
(`seeded.py`), feeds the unseeded draw to a deterministic `scale` task, and reads a data file
with `load`. The seeded task replays identically; the unseeded one is flagged by `reproflow
check`, by its TaskRecord's findings and by the probe, which names it alone as nondeterministic
(`scale` only inherits it). Everything runs in place (no environment build), so it stays fast.
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
    from reproflow._cli_common import run_cli
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
