"""@repro_task against plain @task where pipelines live: mapped tasks that read and write files.

    python bench/bench_file_tasks.py [--tasks 100 1000] [--repeats 7] [--api-url URL]

Each task reads one 1 KiB file and writes one (``src: Path, dst: Path``), mapped over ``--tasks``
pairs, on Prefect's default task runner (a thread pool). Variants, alternating after one
warm-up run each, the order rotated every round (with a fixed order, ``@task``, always first,
came out slowest in two runs here: its place, not its work, may have decided that):

* ``@task``: the baseline.
* ``declared``: ``@repro_task(inputs=["src"], outputs=["dst"])``.
* ``inferred``: bare ``@repro_task`` (paths found in the parameters; ``dst`` does not exist
  before the task, so it is an output).

Each reproflow variant runs with a fresh hash cache (a new ``REPROFLOW_CACHE_DIR`` and an empty
in-memory cache: every input is hashed from its bytes) and with a warm one (the inputs were
hashed by the run before; outputs are always new and always hashed).

Printed per size: the median wall time of each variant and its ratio to ``@task`` (the flow
call, until it returns) with a 95% bootstrap interval (``_stats.py``: single runs move by ±15%
on the 2-core machine, so the interval tells a target met from one inside the noise), the
process's CPU ratio (with its interval too) (all threads, until reproflow's background work
for the run, artifacts included, is done), and **reproflow's own CPU per task**:
``time.thread_time`` inside every reproflow call a task run makes (building the attempt, begin,
success/failure, the record write on the writer thread), summed and divided by the task count;
other processes' load does not count in it, so it is the steady figure on a busy machine. It is
measured in runs of its own (each round runs each reproflow variant once more, metered): the
meter reads the thread's CPU clock around four or five calls a task on a hundred task threads,
and with it on in the timed runs their wall came out 3-15% higher than without it in three
in-process A/B runs (20-30 rounds each) on 2026-12-06, which ``@task`` did not pay. The wall and
CPU ratios come from the unmetered runs.
And the number of full garbage collections during the measured runs: ``settle`` collects
before each run (a full collection walks Prefect's whole heap, 0.2-0.5 s, and in the rotated
order it fell on one variant round after round), so a run pays only for one it triggers itself.

By default the flows run on a temporary Prefect server (a child process). Pass ``--api-url``
(or set ``PREFECT_API_URL``) to run against a real ``prefect server start``; one on this machine
is waited for between runs as the temporary one is (``settle``), so start it here::

    prefect server start --host 127.0.0.1 --port 4299 &
    python bench/bench_file_tasks.py --tasks 100 --repeats 15 --api-url http://127.0.0.1:4299/api

Start that server fresh (a new ``PREFECT_HOME``) for a measurement: its SQLite database grows by
about 2 MB a 100-task flow, and at 1.2 GB (an hour of benches) single ``@task`` runs spread from
0.5-1.1 s to 0.6-1.7 s, drifting upward within a run.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")  # the temporary server's shutdown logs tracebacks
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
#: every folder this run makes (store, hash caches, files), removed when it ends
_ROOT = tempfile.mkdtemp(prefix="bench-files-")
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
os.environ["REPROFLOW_STORE"] = os.path.join(_ROOT, "store")
if "--api-url" in sys.argv:
    os.environ["PREFECT_API_URL"] = sys.argv[sys.argv.index("--api-url") + 1]

from prefect import flow, task  # noqa: E402

from _stats import with_interval  # noqa: E402
from _prefect_bench import full_collections, meter_reproflow, own_cpu, reset_own_cpu, settle, thread_cpu  # noqa: E402  (also switches Prefect's heartbeat off)
from reproflow.capture import _files as _hashing
from reproflow import repro_task, wait_for_artifacts


# ---------------------------------------------------------------- the tasks
def process(src: Path, dst: Path) -> int:
    data = src.read_bytes()
    dst.write_bytes(data[::-1])
    return len(data)


VARIANTS = {
    "@task": task(process, name="plain"),
    "declared": repro_task(process, name="declared", inputs=["src"], outputs=["dst"]),
    "inferred": repro_task(process, name="inferred"),
}


def make_flow(t):  # type: ignore[no-untyped-def]
    @flow(name=f"files-{t.name}")
    def fan(srcs: list[Path], dsts: list[Path]) -> int:
        return sum(f.result() for f in t.map(srcs, dsts))

    return fan


FLOWS = {name: make_flow(t) for name, t in VARIANTS.items()}


def inputs(root: Path, n: int) -> list[Path]:
    src = root / "in"
    src.mkdir(parents=True, exist_ok=True)
    paths = [src / f"{i:05d}.bin" for i in range(n)]
    for i, p in enumerate(paths):
        if not p.exists():
            p.write_bytes(os.urandom(1024))
    old = time.time() - 10  # not "racily clean": the hash cache may keep them
    for p in paths:
        os.utime(p, (old, old))
    return paths


def timed(name: str, srcs: list[Path], out: Path, fresh: bool) -> tuple[float, float, float, int, dict[str, float]]:
    """(wall until the flow returns, process CPU until reproflow's work is done, reproflow CPU,
    full garbage collections meanwhile, CPU per kind of thread)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    dsts = [out / p.name for p in srcs]
    if fresh:
        os.environ["REPROFLOW_CACHE_DIR"] = tempfile.mkdtemp(prefix="cache-", dir=_ROOT)
        _hashing.clear_memory_cache()
    reset_own_cpu()
    gcs = full_collections()
    threads0 = thread_cpu()
    c0 = time.process_time()
    t0 = time.perf_counter()
    total = FLOWS[name](srcs, dsts)
    wall = time.perf_counter() - t0
    wait_for_artifacts()
    cpu = time.process_time() - c0
    own = own_cpu()
    threads = thread_cpu()
    threads.subtract(threads0)
    assert total == 1024 * len(srcs), total
    return wall, cpu, own, full_collections() - gcs, dict(threads)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--api-url", default=None, help="a real Prefect server (default: a temporary one)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="files-", dir=_ROOT))
    os.environ["REPROFLOW_CACHE_DIR"] = tempfile.mkdtemp(prefix="cache-", dir=_ROOT)
    server = os.environ.get("PREFECT_API_URL") or "temporary server"
    print(f"bench_file_tasks (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {server}, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})", flush=True)
    warm = inputs(root, 10)
    for name in FLOWS:  # warm-up: server start, imports, the once-per-process capture
        timed(name, warm, root / "out", fresh=False)
    cases = [("@task", False), ("declared", True), ("declared", False), ("inferred", True), ("inferred", False)]
    for n in args.tasks:
        srcs = inputs(root, n)
        walls: dict[tuple[str, bool], list[float]] = {c: [] for c in cases}
        cpus: dict[tuple[str, bool], list[float]] = {c: [] for c in cases}
        owns: dict[tuple[str, bool], list[float]] = {c: [] for c in cases}
        fulls: dict[tuple[str, bool], int] = {c: 0 for c in cases}
        kinds: dict[tuple[str, bool], dict[str, list[float]]] = {c: {} for c in cases}
        for r in range(args.repeats):
            for case in cases[r % len(cases):] + cases[:r % len(cases)]:  # each variant takes each place in turn
                settle(60, interval=0.5)
                wall, cpu, _, full, threads = timed(case[0], srcs, root / "out", fresh=case[1])
                fulls[case] += full
                for kind, spent in threads.items():
                    kinds[case].setdefault(kind, []).append(spent)
                walls[case].append(wall)
                cpus[case].append(cpu)
            # reproflow's own CPU, in runs of their own: the meter's clock reads cost the wall
            metered = cases[1:]
            meter_reproflow(True)
            try:
                for case in metered[r % len(metered):] + metered[:r % len(metered)]:
                    settle(60, interval=0.5)
                    owns[case].append(timed(case[0], srcs, root / "out", fresh=case[1])[2])
            finally:
                meter_reproflow(False)
        print(f"\n  {n} file tasks, median of {args.repeats} alternating runs "
              f"(load average now {os.getloadavg()[0]:.1f})")
        print(f"  {'variant':<18} {'wall s':>8} {'wall x [95% interval]':>22} {'CPU x [95% interval]':>22} "
              f"{'reproflow CPU/task':>19} {'full GCs':>9}")
        ref = ("@task", False)
        for case in cases:
            name, fresh = case
            label = name if name == "@task" else f"{name}, {'fresh' if fresh else 'warm'}"
            w = statistics.median(walls[case])
            own = "" if name == "@task" else f"{1000 * statistics.median(owns[case]) / n:.3f} ms"
            print(f"  {label:<18} {w:8.3f} {with_interval(walls[ref], walls[case]):>22} "
                  f"{with_interval(cpus[ref], cpus[case]):>22} {own:>19} {fulls[case]:>9}")
        base = {k: statistics.median(v) for k, v in kinds[("@task", False)].items()}
        print("  CPU per kind of thread, median ms over @task's (where reproflow's and Prefect's extra CPU runs):")
        for case in cases[1:]:
            label = f"{case[0]}, {'fresh' if case[1] else 'warm'}"
            extra = {k: 1000 * (statistics.median(v) - base.get(k, 0.0)) for k, v in kinds[case].items()}
            print(f"    {label:<16} " + ", ".join(f"{k} {v:+.1f}" for k, v in sorted(extra.items(), key=lambda kv: -abs(kv[1]))
                                              if abs(v) >= 0.5))
        print("  walls " + "; ".join(
            f"{c[0]}{'' if c[0] == '@task' else (' fresh' if c[1] else ' warm')}: "
            + " ".join(f"{x:.2f}" for x in walls[c]) for c in cases), flush=True)
    print("  target: wall <= 1.10x of @task at 100 tasks, reproflow CPU <= 0.5 ms per file task")


if __name__ == "__main__":
    main()
