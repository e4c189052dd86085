"""What recording costs a whole process: ``python flow.py`` with ``@repro_task`` against ``@task``.

    prefect server start --host 127.0.0.1 --port 4299 &
    python bench/bench_process.py --repeats 9 --api-url http://127.0.0.1:4299/api

A short flow (the corpus's ``basic_files`` shape: one task reading a file and writing one, one
task on its result) in a fresh git repository, run as a script in a fresh interpreter each time, as a user runs it. Once per process
reproflow captures the environment, hardware, git state and a source snapshot (of the flow's
repository and of every package installed from a local folder: here reproflow's own checkout
when it is installed editable, ~500 files, as a user's own project installed with
``pip install -e .`` would be), and at the end publishes its Prefect artifacts; the per-task
figures of ``bench_task_overhead.py`` and ``bench_file_tasks.py`` leave that out.

Variants, alternating after one warm-up run each, the order rotated every round:

* ``@task``: the baseline.
* ``@repro_task``: the same flow recorded, with the caches a second run on this machine has
  (``REPROFLOW_CACHE_DIR`` kept between runs: the source snapshot of an unchanged folder and what
  each installed distribution provides are not worked out again).
* ``@repro_task, fresh cache``: each run with a new, empty ``REPROFLOW_CACHE_DIR`` (a first run).

Printed: the median wall time (the process, start to exit) and CPU (user + system of the process
and the children it waited for, git included) of each, their ratio to ``@task`` with a 95%
bootstrap interval (``_stats.py``), and reproflow's CPU per process: the difference of the CPU
medians. Every variant runs against the one real Prefect server ``--api-url`` names (a temporary
server per process would cost more than everything measured here). Child interpreters share a
private bytecode cache (``PYTHONPYCACHEPREFIX``), filled by the warm-up runs, as after a normal
``pip install``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _stats import with_interval  # noqa: E402

#: The corpus's plain shape (tests/corpus/shapes/basic_files): a file task with its paths declared,
#: and a task on its result. The baseline is the same file with Prefect's @task.
SHAPE = Path(__file__).resolve().parents[1] / "tests" / "corpus" / "shapes" / "basic_files"

VARIANTS = ("@task", "@repro_task", "@repro_task, fresh cache")


def make_repo(root: Path) -> Path:
    """The shape as a committed git repository holding ``repro_flow.py`` (as the corpus has it)
    and ``task_flow.py`` (each ``@repro_task(...)`` made a plain ``@task``)."""
    repo = root / "repo"
    shutil.copytree(SHAPE, repo, ignore=shutil.ignore_patterns("expect.json", "__pycache__"))
    recorded = (repo / "flow.py").read_text()
    plain = re.sub(r"@repro_task(\([^)]*\))?", "@task", recorded).replace("from reproflow import repro_task",
                                                                         "from prefect import task")
    (repo / "flow.py").unlink()
    (repo / "repro_flow.py").write_text(recorded)
    (repo / "task_flow.py").write_text(plain)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bench flow"]):
        subprocess.run(["git", "-c", "user.email=b@example.org", "-c", "user.name=bench", *args], cwd=repo,
                       check=True, capture_output=True)
    return repo


def run_once(variant: str, repo: Path, env: dict[str, str], root: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one ``python <flow>.py`` in a fresh interpreter."""
    env = dict(env)
    if variant == "@repro_task, fresh cache":
        env["REPROFLOW_CACHE_DIR"] = tempfile.mkdtemp(prefix="cache-", dir=root)
    script = "task_flow.py" if variant == "@task" else "repro_flow.py"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, script], cwd=repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"bench_process: {variant} run failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    if variant == "@repro_task, fresh cache":
        shutil.rmtree(env["REPROFLOW_CACHE_DIR"], ignore_errors=True)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--api-url", default=os.environ.get("PREFECT_API_URL"),
                        help="a real Prefect server (default: $PREFECT_API_URL)")
    args = parser.parse_args()
    if not args.api_url:
        sys.exit("bench_process: no Prefect server: start one (`prefect server start --host 127.0.0.1 --port 4299 &`) "
                 "and pass --api-url http://127.0.0.1:4299/api")
    root = Path(tempfile.mkdtemp(prefix="bench-process-"))
    try:
        repo = make_repo(root)
        env = {**os.environ, "PREFECT_API_URL": args.api_url, "PREFECT_LOGGING_LEVEL": "ERROR",
               "REPROFLOW_STORE": str(root / "store"), "REPROFLOW_CACHE_DIR": str(root / "cache"),
               "PYTHONPYCACHEPREFIX": str(root / "pycache"), "DO_NOT_TRACK": "1"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        load = os.getloadavg()
        print(f"bench_process (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.api_url}, "
              f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})", flush=True)
        for variant in VARIANTS:  # warm-up: bytecode, the server's first flow, the kept cache
            run_once(variant, repo, env, root)
        walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cpus: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for i in range(args.repeats):
            order = VARIANTS[i % len(VARIANTS):] + VARIANTS[:i % len(VARIANTS)]
            for variant in order:
                wall, cpu = run_once(variant, repo, env, root)
                walls[variant].append(wall)
                cpus[variant].append(cpu)
            print(f"  round {i + 1}/{args.repeats}", file=sys.stderr, flush=True)
        base_cpu = statistics.median(cpus["@task"])
        print(f"\n  a 2-task flow as a script, median of {args.repeats} alternating runs "
              f"(load average now {os.getloadavg()[0]:.1f})")
        print(f"  {'variant':26s} {'wall s':>7s} {'wall x [95% interval]':>24s} {'CPU s':>7s} "
              f"{'CPU x [95% interval]':>23s} {'reproflow CPU':>14s}")
        for variant in VARIANTS:
            extra = statistics.median(cpus[variant]) - base_cpu
            print(f"  {variant:26s} {statistics.median(walls[variant]):7.2f} "
                  f"{with_interval(walls['@task'], walls[variant]):>24s} {statistics.median(cpus[variant]):7.2f} "
                  f"{with_interval(cpus['@task'], cpus[variant]):>23s} "
                  f"{'' if variant == '@task' else f'{extra * 1000:+.0f} ms':>14s}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
