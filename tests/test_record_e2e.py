"""Recording acceptance, end to end: secrets never stored, git states, the runs CLI and its errors."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from reproflow.cli._common import run_cli
from reproflow.cli import app

FLOW = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from prefect import flow
    from reproflow import repro_task

    @repro_task
    def read(src: Path) -> str:
        return src.read_text()

    @repro_task
    def fetch(url: str) -> str:
        return url.split("?")[0]

    @flow(name="secretive")
    def secretive(src: Path, url: str) -> str:
        return read(src) + fetch(url)

    if __name__ == "__main__":
        state = secretive(Path(sys.argv[1]), sys.argv[2], return_state=True)
        print("RUN_ID", state.state_details.flow_run_id)
    """
)

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
GH_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
URL_PASSWORD = "hunter2-Sup3rS3cret"


API_ENV: dict[str, str] = {}  # the session's Prefect API, filled by the `api` fixture


@pytest.fixture
def api(prefect_api_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Subprocess flows talk to the session's Prefect API (no ephemeral server per process)."""
    monkeypatch.setattr(f"{__name__}.API_ENV", prefect_api_env)


def _git(cwd: pathlib.Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout


def _run_flow(repo: pathlib.Path, store: pathlib.Path, extra_env: dict[str, str], url: str = "s3://bucket/key") -> str:
    env = {**os.environ, **API_ENV, "REPROFLOW_STORE": str(store), "PREFECT_LOGGING_LEVEL": "WARNING", **extra_env}
    out = subprocess.run([sys.executable, "flow.py", "in.txt", url], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("RUN_ID"))


@pytest.fixture
def repo(tmp_path: pathlib.Path) -> pathlib.Path:
    r = tmp_path / "repo"
    r.mkdir()
    (r / "flow.py").write_text(FLOW)
    (r / "in.txt").write_text("data\n")
    _git(r, "init", "-q", "-b", "main")
    _git(r, "remote", "add", "origin", f"https://alice:{URL_PASSWORD}@git.example.com/team/repo.git")
    _git(r, "add", "flow.py", "in.txt")
    _git(r, "commit", "-qm", "init")
    _git(r, "tag", "v1")
    return r


@pytest.mark.slow
def test_planted_secrets_never_reach_the_store_and_dirty_tree_is_recorded(repo: pathlib.Path, tmp_path: pathlib.Path, api: None) -> None:
    """Secrets in env vars (by name and by value) and in URLs appear nowhere in the store; the diff is kept."""
    (repo / "flow.py").write_text(FLOW + "\n# an uncommitted edit\n")
    store = tmp_path / "store"
    run_id = _run_flow(
        repo,
        store,
        {
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "INNOCENT_LOOKING": GH_TOKEN,
            "DATABASE_URL": f"postgresql://svc:{URL_PASSWORD}@db.internal:5432/app",
        },
        url=f"https://user:{URL_PASSWORD}@data.example.com/file.csv?token={GH_TOKEN}",
    )
    blobs = b"".join(p.read_bytes() for p in store.rglob("*") if p.is_file() and "keys" not in p.parts)
    for secret in (AWS_SECRET, GH_TOKEN, URL_PASSWORD):
        assert secret.encode() not in blobs, f"secret {secret[:6]}... leaked into the store"

    from reproflow.records import Environment
    from reproflow.store import Store

    s = Store(store)
    run = s.load_run(run_id)
    env = s.get_model_blob(run.context.environment_blob, Environment)  # type: ignore[union-attr]
    for name in ("AWS_SECRET_ACCESS_KEY", "INNOCENT_LOOKING"):
        assert env.env_vars[name].redacted and env.env_vars[name].value is None
        assert env.env_vars[name].fingerprint
    assert env.env_vars["DATABASE_URL"].redacted
    git = run.context.git  # type: ignore[union-attr]
    assert git.available and git.dirty and git.branch == "main" and "v1" in git.tags
    assert git.remote_url == "https://git.example.com/team/repo.git"
    diff = s.get_blob(git.diff_blob).decode()  # type: ignore[arg-type]
    assert "+# an uncommitted edit" in diff
    fetch = next(t for t in run.final_tasks() if t.task_name == "fetch")
    assert URL_PASSWORD not in json.dumps(fetch.parameters)


@pytest.mark.slow
def test_no_git_records_cleanly(tmp_path: pathlib.Path, api: None) -> None:
    """A flow outside any git repository records git as absent, with the reason, and succeeds."""
    d = tmp_path / "plain"
    d.mkdir()
    (d / "flow.py").write_text(FLOW)
    (d / "in.txt").write_text("x\n")
    run_id = _run_flow(d, tmp_path / "store", {"GIT_CEILING_DIRECTORIES": str(tmp_path)})
    from reproflow.store import Store

    run = Store(tmp_path / "store").load_run(run_id)
    assert run.context is not None and not run.context.git.available
    assert run.context.git.absent_reason
    assert run.context.source.kind == "files" and run.context.source.blob
    assert run.context.hardware.gpus == [] and run.context.hardware.gpu_absent_reason


# ------------------------------------------------------------------ CLI


def _cli(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(app, list(args))
    code = run_cli(app, list(args))
    return code, result.stdout, result.stderr


@pytest.fixture
def recorded(store_dir: pathlib.Path) -> str:
    from reproflow import repro_task

    @repro_task
    def one(x: int) -> int:
        return x + 1

    assert one(1) == 2
    from reproflow.store import Store

    return Store(store_dir).list_runs()[0].run_id


def test_runs_list_and_show_json(recorded: str, store_dir: pathlib.Path) -> None:
    """`runs list --json` is a JSON array of objects with run_id; `runs show --json` is the whole run."""
    runner = CliRunner()
    out = runner.invoke(app, ["runs", "list", "--json", "--store", str(store_dir)])
    assert out.exit_code == 0
    data = json.loads(out.stdout)
    assert [r["run_id"] for r in data] == [recorded] and data[0]["status"] == "COMPLETED"
    shown = runner.invoke(app, ["runs", "show", recorded[:8], "--json", "--store", str(store_dir)])
    assert shown.exit_code == 0
    run = json.loads(shown.stdout)
    assert run["record"]["run_id"] == recorded and run["tasks"][0]["result"] == 2
    assert run["environment"]["python"]["version"].count(".") == 2
    human = runner.invoke(app, ["runs", "show", "latest", "--store", str(store_dir)], env={"COLUMNS": "120"})
    assert human.exit_code == 0 and "one" in human.stdout and "process context" in human.stdout


@pytest.mark.parametrize("cmd", [["runs", "show", "00000000-dead-beef"], ["runs", "list"]])
def test_missing_store_is_one_line(tmp_path: pathlib.Path, cmd: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A store that does not exist: one line naming it and the fix, exit 3, no traceback."""
    code = run_cli(app, [*cmd, "--store", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 3
    assert "no reproflow store at" in err and "Traceback" not in err and err.count("\n") == 1


def test_unknown_run_id_is_one_line(recorded: str, store_dir: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown run id: one line with the fix, exit 4."""
    code = run_cli(app, ["runs", "show", "ffffffff-0000", "--store", str(store_dir)])
    err = capsys.readouterr().err
    assert code == 4 and "no run 'ffffffff-0000'" in err and "reproflow runs list" in err and err.count("\n") == 1


def test_corrupt_and_newer_records_are_one_line(recorded: str, store_dir: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A corrupt task record and a newer-schema run record each give one clear line, exit 5."""
    run_dir = store_dir / "runs" / recorded
    task_file = next((run_dir / "tasks").iterdir())
    original = task_file.read_bytes()
    task_file.write_bytes(original[: len(original) // 2])
    code = run_cli(app, ["runs", "show", recorded, "--store", str(store_dir)])
    err = capsys.readouterr().err
    assert code == 5 and "corrupt record" in err and task_file.name in err and err.count("\n") == 1
    task_file.write_bytes(original)
    data = json.loads((run_dir / "run.json").read_text())
    data["schema_version"] = "9.0"
    (run_dir / "run.json").write_text(json.dumps(data))
    code = run_cli(app, ["runs", "show", recorded, "--store", str(store_dir)])
    err = capsys.readouterr().err
    assert code == 5 and "schema version 9.0" in err and "pip install -U reproflow" in err


def test_installed_entry_point_runs(recorded: str, store_dir: pathlib.Path) -> None:
    """The installed `reproflow` console script works (one real run of the entry point)."""
    exe = shutil.which("reproflow") or str(pathlib.Path(sys.executable).parent / "reproflow")
    out = subprocess.run([exe, "runs", "list", "--json", "--store", str(store_dir)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and json.loads(out.stdout)[0]["run_id"] == recorded
    bad = subprocess.run([exe, "runs", "show", "nope-nope", "--store", str(store_dir)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 4 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


STRICT_FLOW = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from prefect import flow
    from reproflow import repro_task
    from reproflow.errors import StrictModeViolation

    @repro_task(strict=True)
    def touch(marker: Path) -> None:
        marker.write_text("the body ran")

    @flow(name="strict-flow")
    def strict_flow(marker: Path) -> None:
        touch(marker)

    if __name__ == "__main__":
        try:
            strict_flow(Path(sys.argv[1]))
        except StrictModeViolation as exc:
            print("STRICT", exc)
            sys.exit(8)
    """
)


@pytest.mark.slow
def test_strict_on_a_dirty_tree_fails_before_the_body(repo: pathlib.Path, tmp_path: pathlib.Path, api: None) -> None:
    """`strict=True` in a dirty git tree: the task fails before its body runs (the marker file is
    never written) with one message naming the dirty tree and the fix; the failure is recorded."""
    (repo / "strict.py").write_text(STRICT_FLOW)
    _git(repo, "add", "strict.py")
    _git(repo, "commit", "-qm", "strict flow")
    marker = tmp_path / "marker.txt"
    store = tmp_path / "store"
    env = {**os.environ, **API_ENV, "REPROFLOW_STORE": str(store), "PREFECT_LOGGING_LEVEL": "CRITICAL"}

    clean = subprocess.run([sys.executable, "strict.py", str(marker)], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert marker.read_text() == "the body ran"  # a clean tree runs normally
    marker.unlink()

    (repo / "in.txt").write_text("edited, not committed\n")
    out = subprocess.run([sys.executable, "strict.py", str(marker)], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 8, out.stdout[-2000:] + out.stderr[-3000:]
    assert not marker.exists()
    [line] = [ln for ln in out.stdout.splitlines() if ln.startswith("STRICT")]
    assert "strict mode stopped task 'touch' before it ran" in line and "git working tree is dirty" in line
    assert "commit or stash" in line

    from reproflow.store import Store

    s = Store(store)
    failed = s.load_run(s.list_runs()[0].run_id)
    [task] = failed.final_tasks()
    assert task.state == "FAILED" and task.error is not None and "StrictModeViolation" in task.error.type


def test_runs_list_table_shows_the_newest_50_json_all(store_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 60 runs, the table shows the newest 50 and says so; --json lists all 60; --limit works
    for both."""
    from reproflow.cli import _runs as _cli_runs
    from reproflow.records import RunSummary

    monkeypatch.setattr(_cli_runs, "TABLE_LIMIT", 50)
    from reproflow.store import Store
    import datetime as dt

    s = Store(store_dir)
    base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for i in range(60):
        rid = f"{i:08d}-0000-4000-8000-000000000000"
        (store_dir / "runs" / rid).mkdir(parents=True)
        s.write_bytes(s.path("index", f"{rid}.json"), RunSummary(run_id=rid, flow_name="f", status="COMPLETED",
                      started_at=base + dt.timedelta(minutes=i)).model_dump_json().encode())  # fmt: skip
    runner = CliRunner()
    table = runner.invoke(app, ["runs", "list", "--store", str(store_dir)], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "newest 50 of 60 runs" in table.stdout
    assert "00000059" in table.stdout and "00000009" not in table.stdout
    data = json.loads(runner.invoke(app, ["runs", "list", "--json", "--store", str(store_dir)]).stdout)
    assert len(data) == 60 and data[0]["run_id"].startswith("00000059")
    assert len(json.loads(runner.invoke(app, ["runs", "list", "--json", "-n", "3", "--store", str(store_dir)]).stdout)) == 3
