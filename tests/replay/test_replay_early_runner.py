"""The runner started early (reproflow.replay._warm): it imports Prefect while the replay checks,
and is handed the spec only once every check has passed.

A real flow recorded by ``python flow.py`` in a temporary git repository (the session's Prefect
server), replayed in place (no environment build; the early runner is the current interpreter).
The flow's module and body leave marks in ``$EARLY_MARKS`` (set only for the replays), so a
test sees whether any of the recorded code ran.
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

from reproflow.errors import ReproflowError
from reproflow.replay import _runner, _warm
from reproflow.store import Store

pytestmark = pytest.mark.slow  # a Prefect API server (the session's) and flow subprocesses

FLOW = textwrap.dedent(
    """
    import os
    import sys
    from pathlib import Path

    from prefect import flow

    from reproflow import repro_task

    MARKS = os.environ.get("EARLY_MARKS")
    if MARKS:
        Path(MARKS, "imported").write_text("the flow's module ran")


    @repro_task
    def load(path: Path) -> list:
        return [int(x) for x in path.read_text().split()]


    @flow
    def pipeline(data: Path) -> int:
        if MARKS:
            Path(MARKS, "body").write_text("the flow's body ran")
        return sum(load(data))


    if __name__ == "__main__":
        pipeline(Path(sys.argv[1]))
    """
)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


def _record(base: Path, api: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
    repo, store = base / "repo", base / "store"
    repo.mkdir(parents=True)
    (repo / "flow.py").write_text(FLOW)
    for name, text in (extra or {}).items():
        (repo / name).write_text(text)
    (base / "in.txt").write_text("3 1 4 1 5\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pipeline")
    env = {**os.environ, "REPROFLOW_STORE": str(store), "PREFECT_API_URL": api, "PREFECT_LOGGING_LEVEL": "WARNING"}
    for var in ("REPROFLOW_SEED", "PYTHONHASHSEED", "EARLY_MARKS", _warm.SWITCH_ENV):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "flow.py", str(base / "in.txt")], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run_id,) = Store(store).run_ids()
    return {"repo": repo, "store": store, "run_id": run_id, "data": base / "in.txt"}


@pytest.fixture(scope="module")
def recorded(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield _record(tmp_path_factory.mktemp("early"), prefect_api)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[_warm.Warm]:
    """Every runner started early in this test; the replays' marks go to ``tmp_path/marks``."""
    found: list[_warm.Warm] = []
    real = _warm.start

    def spy(*args: Any, **kwargs: Any) -> Any:
        warm = real(*args, **kwargs)
        if warm is not None:
            found.append(warm)
        return warm

    monkeypatch.setattr(_warm, "start", spy)
    (tmp_path / "marks").mkdir()
    monkeypatch.setenv("EARLY_MARKS", str(tmp_path / "marks"))
    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("REPROFLOW_SEED", raising=False)
    monkeypatch.delenv(_warm.SWITCH_ENV, raising=False)
    return found


def test_failed_check_ends_the_early_runner_having_run_nothing(recorded: dict[str, Any], started: list[_warm.Warm],
                                                              tmp_path: Path) -> None:
    """An input changed since the recording: the replay refuses, and the runner it started early
    (it was importing Prefect meanwhile) ends without importing or running any of the flow."""
    from reproflow.replay import replay

    data: Path = recorded["data"]
    original = data.read_text()
    data.write_text("2 7 1 8\n")
    try:
        with pytest.raises(ReproflowError, match="changed"):
            replay(recorded["run_id"], str(recorded["store"]), in_place=True)
    finally:
        data.write_text(original)
    assert len(started) == 1, "the replay started no runner early: this test checks nothing"
    warm = started[0]
    assert warm.proc.poll() is not None and not warm.used
    assert not warm.folder.exists()
    assert sorted(p.name for p in (tmp_path / "marks").iterdir()) == []  # neither the module nor the body
    assert _warm._pending == []


def test_replay_hands_the_early_runner_its_spec(recorded: dict[str, Any], started: list[_warm.Warm],
                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's replay: the first starts its runner after the plan, the second from the first's
    hint before anything is read; both runners are the ones that ran the flow, which reproduces,
    and the runner's log is in the kept work folder."""
    from reproflow.cli import app
    from reproflow.cli._common import run_cli

    for round_ in (1, 2):
        work = tmp_path / f"work{round_}"
        capsys.readouterr()
        code = run_cli(app, ["replay", recorded["run_id"], "--store", str(recorded["store"]), "--in-place", "--json",
                             "--work-dir", str(work)])
        out = capsys.readouterr().out
        assert code == 0, out[-3000:]
        assert json.loads(out)["verdict"] == "reproduced"
        assert len(started) == round_ and started[-1].used, started
        log = (work / "runner.log").read_text()
        assert "starts afresh" not in log, log
        assert (tmp_path / "marks" / "body").exists()
    # the second was started from the hint, before the plan: by speculate, not after the plan
    assert _warm._hint_path(recorded["run_id"], str(recorded["store"])).is_file()


def test_hint_that_does_not_match_is_not_used(recorded: dict[str, Any], started: list[_warm.Warm],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A hint whose start environment differs from the plan's (here: another seed): the runner
    it started is stopped unused and the replay runs with one started to match."""
    from reproflow.replay import replay

    store = str(recorded["store"])
    _warm.save_hint(recorded["run_id"], store, python=sys.executable, in_place=True,
                    store_url=Store(store).url, replay_of=recorded["run_id"], seed=99, pythonhashseed=None,
                    modules=_warm.PREFECT_FLOW_MODULES)
    guess = _warm.speculate(recorded["run_id"], store, in_place=True)
    assert guess is not None and guess.env["REPROFLOW_SEED"] == "99"
    result = replay(recorded["run_id"], store, in_place=True)
    assert result.reproduced
    assert not guess.used and guess.proc.poll() is not None
    assert len(started) == 2 and started[1].used and "REPROFLOW_SEED" not in started[1].env


def test_prefect_settings_file_makes_the_runner_start_afresh(prefect_api: str, started: list[_warm.Warm],
                                                            tmp_path: Path) -> None:
    """A prefect.toml in the flow's folder is read when Prefect is imported, in the working
    folder: a runner that imported Prefect before knowing that folder starts afresh there (the
    log says so), and the replay reproduces."""
    from reproflow.replay import replay

    rec = _record(tmp_path / "rec", prefect_api, {"prefect.toml": '[logging]\nlevel = "WARNING"\n'})
    result = replay(rec["run_id"], str(rec["store"]), in_place=True, work_dir=tmp_path / "work")
    assert result.reproduced and result.work_dir
    assert len(started) == 1 and started[0].used
    log = (Path(result.work_dir) / "runner.log").read_text()
    assert "starts afresh (prefect.toml in the working folder)" in log, log


def test_early_runner_refused_when_the_start_environment_differs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Warm.go`` hands over the spec only when the runner started with the environment it would
    have now but the late variables; otherwise it ends the runner, which ran nothing."""
    monkeypatch.delenv(_warm.SWITCH_ENV, raising=False)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"mode": "flow", "sys_path": [], "result_file": str(tmp_path / "r.json")}))
    warm = _warm.start(sys.executable, env, ("json",))
    assert warm is not None
    try:
        assert not warm.go(spec, {**env, "REPROFLOW_SEED": "7"})
        assert warm.proc.poll() == 0 and not warm.used and not (tmp_path / "r.json").exists()
        assert not warm.folder.exists()
    finally:
        _warm.stop_all()
    monkeypatch.setenv(_warm.SWITCH_ENV, "off")
    assert _warm.start(sys.executable, env, ("json",)) is None


def test_late_variable_is_the_recorders() -> None:
    """The one variable handed over late is the one reproflow reads only when a task starts."""
    from reproflow.recorder._runs import REPLAY_MAKE_DIRS_ENV

    assert _warm.LATE_ENV == (REPLAY_MAKE_DIRS_ENV,)


def test_early_start_differs(tmp_path: Path) -> None:
    """What makes a runner that imported early start afresh: a module of the restored code named
    like one it imported, a Prefect settings file in the working folder, a run that is no flow."""
    before = set(sys.modules) - {"colorsys"}
    import colorsys  # noqa: F401 - imported "early"

    code = tmp_path / "code"
    code.mkdir()
    spec = {"mode": "flow", "sys_path": [str(code)], "cwd": str(code)}
    assert _runner._early_start_differs(before, spec) is None
    (code / "colorsys.py").write_text("")
    assert "colorsys" in (_runner._early_start_differs(before, spec) or "")
    (code / "colorsys.py").unlink()
    (code / "colorsys").mkdir()
    assert _runner._early_start_differs(before, spec) is None  # a folder without __init__.py shadows nothing
    (code / "colorsys" / "__init__.py").write_text("")
    assert "colorsys" in (_runner._early_start_differs(before, spec) or "")
    (code / "colorsys" / "__init__.py").unlink()
    (code / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert _runner._early_start_differs(before, spec) is None
    (code / "pyproject.toml").write_text("[tool.prefect.logging]\nlevel = 'WARNING'\n")
    assert "pyproject" in (_runner._early_start_differs(before, spec) or "")
    (code / "pyproject.toml").unlink()
    (code / ".env").write_text("PREFECT_LOGGING_LEVEL=DEBUG\n")
    assert ".env" in (_runner._early_start_differs(before, spec) or "")
    assert "mode tasks" == _runner._early_start_differs(before, {**spec, "mode": "tasks"})


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_without_api_the_early_runner_starts_and_ends_the_temporary_server(
        recorded: dict[str, Any], started: list[_warm.Warm], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PREFECT_API_URL the early runner starts Prefect's temporary server while the
    replay checks. A check that fails after that server is up ends both, the flow not run; a
    replay whose checks pass runs the flow against that server and reproduces."""
    import time

    from reproflow.replay import _replay as replay_module
    from reproflow.replay import replay

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    servers: list[int] = []
    real_check = replay_module.check_inputs

    def slow_check(*args: Any, **kwargs: Any) -> Any:
        """The check fails once the early runner's server process is there."""
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not servers:
            servers.extend(_children(started[0].proc.pid) if started else [])
            time.sleep(0.2)
        raise ReproflowError("input changed (made up by the test, once the server was up)")

    monkeypatch.setattr(replay_module, "check_inputs", slow_check)
    with pytest.raises(ReproflowError, match="made up by the test"):
        replay(recorded["run_id"], str(recorded["store"]), in_place=True)
    assert servers, "the early runner started no temporary server"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in servers):
        time.sleep(0.2)
    assert not any(_alive(p) for p in servers), "the temporary server outlived the early runner"
    assert started[0].proc.poll() is not None and not (tmp_path / "marks" / "imported").exists()

    monkeypatch.setattr(replay_module, "check_inputs", real_check)
    result = replay(recorded["run_id"], str(recorded["store"]), in_place=True, work_dir=tmp_path / "work")
    assert result.reproduced and started[-1].used
    assert (tmp_path / "marks" / "body").exists()
