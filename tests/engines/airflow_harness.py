"""Real Airflow 3 for the engine tests, in an environment of its own.

Airflow 3.3 and Prefect cannot share one environment (their FastAPI pins), so the tests build
Airflow's own with uv, resolving ``apache-airflow`` and this checkout of reproflow (editable, no
extras: no Prefect) together, as a user installs them. The environment is kept under a stable
folder (``$REPROFLOW_TEST_ENV_CACHE``, else ``~/.cache/reproflow-tests``), keyed by the Airflow
version, the Python version, reproflow's dependency list and the checkout's path, so repeated runs
on one machine reuse it; CI starts clean and builds it (about 40 s with an empty uv cache, 30 s
with a warm one, on the loaded 2-core machine).

A DAG run goes through ``airflow dags test DAG_ID --use-executor`` on SQLite in a fresh
``AIRFLOW_HOME``: the LocalExecutor runs every task instance in a supervised process of its own,
which talks to an execution API server started for the run. So the test sees what a deployment
does: task instances of one DAG run in different processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import tomli

AIRFLOW_VERSION = "3.3.2"
REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE = Path(__file__).resolve().parent / "pipeline"
EXTRA_DAGS = Path(__file__).resolve().parent / "airflow_dags"  #: test-only DAGs, copied beside the pipeline's
DAG_ID = "reproflow_pipeline"
RETRY_DAG_ID = "reproflow_retry"

def reproflow_dependencies() -> list[str]:
    """reproflow's required dependencies (Prefect is an extra: not among them)."""
    return list(tomli.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def cache_root() -> Path:
    return Path(os.environ.get("REPROFLOW_TEST_ENV_CACHE") or Path.home() / ".cache" / "reproflow-tests")


def env_key() -> str:
    parts = [AIRFLOW_VERSION, f"{sys.version_info[0]}.{sys.version_info[1]}", str(REPO_ROOT), *sorted(reproflow_dependencies())]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def _uv() -> str:
    from reproflow.replay._uv import find_uv

    return find_uv()


def _run(cmd: list[str], check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def airflow_env() -> Path:
    """The environment's folder (built on first use, reused after); its ``bin/airflow`` runs Airflow."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    env = root / f"airflow-{AIRFLOW_VERSION}-{env_key()}"
    with open(root / f"{env.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions on one machine build it once
        # --compile-bytecode: Airflow starts many Python processes, and where bytecode is never
        # written (PYTHONDONTWRITEBYTECODE, as on this project's machines) each would compile
        # Airflow's modules again. The marker names it, so an older build without it is redone.
        if not (env / ".ready").is_file() or (env / ".ready").read_text() != f"{AIRFLOW_VERSION} compiled":
            shutil.rmtree(env, ignore_errors=True)
            python = env / "bin" / "python"
            _run([_uv(), "venv", "-q", "--python", sys.executable, str(env)])
            _run([_uv(), "pip", "install", "-q", "--compile-bytecode", "--python", str(python),
                  f"apache-airflow=={AIRFLOW_VERSION}", "-e", str(REPO_ROOT)], timeout=1800)
            (env / ".ready").write_text(f"{AIRFLOW_VERSION} compiled")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def airflow_environ(env: Path, home: Path, dags: Path, store: str, port: int) -> dict[str, str]:
    """The environment of every Airflow command of one test: its own home, SQLite, no examples."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("PREFECT_", "REPROFLOW_", "AIRFLOW", "VIRTUAL_ENV", "PYTHON"))}
    return {
        **base,
        "PATH": f"{env / 'bin'}{os.pathsep}{base.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),  # shared by the API server and the tasks
        "REPROFLOW_STORE": store,
    }


@contextlib.contextmanager
def execution_api(env: Path, environ: dict[str, str], port: int, log: Path, timeout: float = 300) -> Iterator[None]:
    """Airflow's execution API server (what task processes report to) for the block."""
    with open(log, "w") as out:
        proc = subprocess.Popen([str(env / "bin" / "airflow"), "api-server", "--apps", "execution", "--workers", "1",
                                 "--host", "127.0.0.1", "--port", str(port)], env=environ, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"airflow api-server exited {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/execution/health", timeout=5).close()
                break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"airflow api-server did not answer in {timeout:.0f} s:\n{log.read_text()[-4000:]}") from None
                time.sleep(1)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def git_repo(dest: Path) -> Path:
    """The pipeline's files as a fresh git repository with one commit (the recorded source)."""
    shutil.copytree(PIPELINE, dest, ignore=shutil.ignore_patterns("results", ".reproflow", "__pycache__"))
    for dag_file in EXTRA_DAGS.glob("*.py"):
        shutil.copy(dag_file, dest / dag_file.name)
    # data is not committed, as usual: a replay reads it where the run read it and verifies it
    # (committed, it would be restored from the recorded source instead)
    (dest / ".gitignore").write_text((dest / ".gitignore").read_text() + "data/\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "pipeline"]):
        subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=dest, check=True,
                       capture_output=True)
    return dest


#: One ``airflow dags test`` of the test DAGs takes 15-40 s on the loaded 2-core machine; one that
#: runs for this long is stuck (seen once in CI: the DAG run never left RUNNING), not slow.
DAG_RUN_TIMEOUT_S = 300


def run_dags(env: Path, work: Path, repo: Path, stores: dict[str, str]) -> dict[str, subprocess.CompletedProcess[str]]:
    """One DAG run of each DAG in ``stores`` (DAG id -> the local store its run records into), in
    order, under the LocalExecutor; returns each ``airflow dags test`` process by DAG id.

    A DAG run that is stuck past DAG_RUN_TIMEOUT_S is killed with every process it started, and
    all of them run once more from scratch (a fresh Airflow home and empty stores) after a warning
    that carries what the stuck one printed; stuck twice is an error with the same.
    """
    try:
        return _run_dags_once(env, work, repo, stores)
    except DagRunStuck as stuck:
        with warnings.catch_warnings():  # shown in the warnings summary, never raised by the
            warnings.simplefilter("always")  # suite's filterwarnings = error (which skipped the retry)
            warnings.warn(f"an Airflow DAG run was stuck; running all of them again:\n{stuck}", stacklevel=2)
        shutil.move(work / "airflow-home", work / "airflow-home.stuck")
        for store in stores.values():
            shutil.rmtree(store, ignore_errors=True)
        return _run_dags_once(env, work, repo, stores)


class DagRunStuck(RuntimeError):
    """``airflow dags test`` ran past DAG_RUN_TIMEOUT_S; the message says what it and its tasks printed."""


def _run_dags_once(env: Path, work: Path, repo: Path, stores: dict[str, str]) -> dict[str, subprocess.CompletedProcess[str]]:
    home = work / "airflow-home"
    home.mkdir()
    port = free_port()
    environ = airflow_environ(env, home, repo, "", port)
    airflow = str(env / "bin" / "airflow")
    _run([airflow, "db", "migrate"], env=environ, cwd=work, timeout=600)
    done = {}
    with execution_api(env, environ, port, work / "api-server.log"):
        for dag_id, store in stores.items():
            done[dag_id] = _dag_test(airflow, dag_id, {**environ, "REPROFLOW_STORE": store}, work, home)
    return done


def _dag_test(airflow: str, dag_id: str, environ: dict[str, str], work: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """``airflow dags test DAG_ID --use-executor`` in a session of its own, so that a stuck one is
    killed with its executor's workers and their task processes."""
    cmd = [airflow, "dags", "test", dag_id, "--use-executor"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ, cwd=work,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=DAG_RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        tree = _run(["ps", "-o", "pid,ppid,stat,etime,args", "-s", str(proc.pid)], check=False).stdout
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise DagRunStuck(f"{' '.join(cmd[1:])} ran past {DAG_RUN_TIMEOUT_S} s\n--- its processes:\n{tree}"
                          f"--- its output (tail):\n{out[-3000:]}\n{err[-3000:]}\n--- task logs (tails):\n"
                          f"{_log_tails(home)}--- api-server.log (tail):\n"
                          f"{(work / 'api-server.log').read_text(errors='replace')[-2000:]}") from None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # nothing of the DAG run outlives it
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _log_tails(home: Path) -> str:
    logs = sorted((home / "logs").rglob("*.log")) if (home / "logs").is_dir() else []
    return "".join(f"{p.relative_to(home)}:\n{p.read_text(errors='replace')[-800:]}\n" for p in logs[:20])
