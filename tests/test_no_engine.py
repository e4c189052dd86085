"""`pip install reproflow` with no extras: no workflow engine comes with it, and the package, the
plain recorder, `@repro_task` (recording plain calls) and the CLI work without one.

A real virtual environment built by uv from this checkout (a wheel, not editable), so a stray
`import prefect` anywhere on those paths fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bare_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv", path=os.path.dirname(sys.executable)) or shutil.which("uv")
    assert uv, "uv is a dependency of reproflow"
    env = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(env)], check=True)
    py = env / "bin" / "python"
    subprocess.run([uv, "pip", "install", "-q", "--python", str(py), str(REPO)], check=True)
    return env


def _run(env: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REPROFLOW_"))}
    environ["REPROFLOW_STORE"] = str(cwd / "store")
    return subprocess.run(list(args), cwd=cwd, env=environ, capture_output=True, text=True, timeout=300)


def test_the_package_installs_and_records_without_any_engine(bare_env: Path, tmp_path: Path) -> None:
    py = str(bare_env / "bin" / "python")
    probe = _run(bare_env, py, "-c", "import importlib.util as u; print([m for m in ('prefect', 'airflow', 'snakemake') if u.find_spec(m)])", cwd=tmp_path)
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr
    (tmp_path / "data.txt").write_text("3\n4\n")
    (tmp_path / "steps.py").write_text(textwrap.dedent("""
        from pathlib import Path

        import reproflow
        from reproflow import repro_task

        @repro_task(inputs=["src"], outputs=["dst"], retries=1)
        def double(src: Path, dst: Path) -> int:
            values = [int(x) * 2 for x in src.read_text().split()]
            dst.write_text("\\n".join(map(str, values)))
            return sum(values)

        @repro_task
        def total(n: int) -> int:
            return n + 1

        with reproflow.record(name="bare"):
            print(total(double(Path("data.txt"), Path("out.txt"))))
    """))
    done = _run(bare_env, py, "steps.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "15"
    listed = _run(bare_env, str(bare_env / "bin" / "reproflow"), "runs", "show", "latest", "--store",
                  str(tmp_path / "store"), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "double" in listed.stdout and "total" in listed.stdout
    report = _run(bare_env, str(bare_env / "bin" / "reproflow"), "report", "latest", "--store", str(tmp_path / "store"),
                  cwd=tmp_path)
    assert report.returncode == 0 and "/100" in report.stdout, report.stderr
    # a Prefect-only name says what to install, in one line
    content = _run(bare_env, py, "-c", "import reproflow; reproflow.CONTENT", cwd=tmp_path)
    assert content.returncode != 0 and "pip install 'reproflow[prefect]'" in content.stderr
    prefect_opt = _run(bare_env, py, "-c", textwrap.dedent("""
        from reproflow import repro_task
        @repro_task(cache_policy=None)
        def f() -> None: ...
    """), cwd=tmp_path)
    assert prefect_opt.returncode != 0 and "reproflow[prefect]" in prefect_opt.stderr


def test_the_cli_runs_without_any_engine(bare_env: Path, tmp_path: Path) -> None:
    cli = str(bare_env / "bin" / "reproflow")
    for args in (["--help"], ["--version"], ["runs", "--help"], ["replay", "--help"], ["check", "--help"]):
        done = _run(bare_env, cli, *args, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_a_run_replays_task_by_task_without_any_engine(bare_env: Path, tmp_path: Path) -> None:
    """A run recorded with no engine installed replays task by task (--engine tasks) in that
    same environment (--in-place: the replay's runner runs there too), to "reproduced": nothing
    on the replay's path, the runner included, imports Prefect (an Airflow run's rebuilt
    environment has none)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "data.txt").write_text("3\n4\n")
    (repo / "steps.py").write_text(textwrap.dedent("""
        from pathlib import Path

        import reproflow
        from reproflow import repro_task

        @repro_task(inputs=["src"], outputs=["dst"])
        def double(src: Path, dst: Path) -> Path:
            dst.write_text("\\n".join(str(int(x) * 2) for x in src.read_text().split()))
            return dst

        @repro_task
        def total(path: Path) -> dict:
            return {"total": sum(int(x) for x in path.read_text().split())}

        if __name__ == "__main__":
            with reproflow.record(name="bare"):
                print(total(double(Path("data.txt"), Path("out.txt"))))
    """))
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qm", "steps"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    done = _run(bare_env, str(bare_env / "bin" / "python"), "steps.py", cwd=repo)
    assert done.returncode == 0, done.stderr
    replayed = _run(bare_env, str(bare_env / "bin" / "reproflow"), "replay", "latest", "--engine", "tasks",
                    "--in-place", "--json", "--store", str(repo / "store"), cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout[-3000:] + replayed.stderr[-3000:]
    result = json.loads(replayed.stdout)
    assert result["verdict"] == "reproduced" and result["plan"]["replay_engine"] == "tasks"
    assert [t["task_name"] for t in result["tasks"]] == ["double", "total"]
