"""Does recording stay flat as a flow grows? @repro_task vs plain @task, 100 and 10,000 mapped tasks.

    python bench/bench_scale.py [--small 100] [--large 10000] [--repeats 7]

One process, one temporary Prefect server, Prefect's default task runner (a thread pool). Each
flow maps one trivial task over ``range(n)``. Two measures of the recording overhead per task,
both at both sizes in the same run:

* **wall**: ``(t_repro - t_plain) / n``, the end-to-end difference. On a busy machine this
  difference is smaller than the run-to-run noise of Prefect itself (tens of ms per task at
  10,000 tasks), so it is printed but cannot carry the verdict alone.
* **reproflow CPU**: the CPU time (``time.thread_time``, so other processes' load does not count)
  of every reproflow call a task run makes: building the attempt, ``begin`` (parameters, input
  hashes, process context lookup), ``success``/``failure`` (result hash, the record) and the
  record write (on the writer thread), summed over the run and divided by ``n``.

The figure of merit is ``overhead@large / overhead@small`` (target <= 1.5x: the per-task cost
is flat). The small flows alternate and repeat; the large ones run once each. The large
@repro_task run must leave exactly ``--large`` task records, every one valid (the store loads
and validates them), and an end record that counts them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")  # the temporary server's shutdown logs tracebacks
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
STORE = os.environ["REPROFLOW_STORE"] = tempfile.mkdtemp(prefix="bench-scale-store-")

from prefect import flow, task  # noqa: E402

from _prefect_bench import meter_reproflow, own_cpu, reset_own_cpu, settle  # noqa: E402  (also switches Prefect's heartbeat off)
from reproflow import repro_task
from reproflow.store import Store

meter_reproflow()


def add_one(x: int) -> int:
    return x + 1


VARIANTS = {"@task": task(add_one, name="plain"), "@repro_task": repro_task(add_one, name="repro")}


def make_flow(t):  # type: ignore[no-untyped-def]
    @flow(name=f"scale-{t.name}")
    def fan(n: int) -> int:
        return sum(f.result() for f in t.map(range(n)))

    return fan


FLOWS = {name: make_flow(t) for name, t in VARIANTS.items()}


def timed(name: str, n: int) -> tuple[float, str, float]:
    """Wall time of one flow run of ``n`` tasks, its flow-run id, and reproflow's CPU seconds."""
    reset_own_cpu()
    t0 = time.perf_counter()
    state = FLOWS[name](n, return_state=True)
    dt = time.perf_counter() - t0
    cpu = own_cpu()
    assert state.is_completed(), state.message
    assert state.result() == n * (n + 1) // 2
    return dt, str(state.state_details.flow_run_id), cpu


def check_complete(run_id: str, n: int) -> float:
    """Every task record of the run is there once and valid; returns the load time."""
    t0 = time.perf_counter()
    run = Store(STORE).load_run(run_id, with_context=False)
    dt = time.perf_counter() - t0
    assert run.status == "COMPLETED" and run.end is not None and run.end.n_tasks == n, (run.status, run.end)
    assert len(run.tasks) == n and len({t.task_run_id for t in run.tasks}) == n, len(run.tasks)
    assert sorted(t.map_index for t in run.tasks) == list(range(n))  # type: ignore[type-var]
    assert all(t.state == "COMPLETED" for t in run.tasks)
    return dt


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    t_start = time.perf_counter()

    for name in FLOWS:  # warm-up: server start, imports, the once-per-process capture
        timed(name, 10)
    small: dict[str, list[float]] = {k: [] for k in FLOWS}
    small_cpu: list[float] = []
    for _ in range(args.repeats):
        for name in FLOWS:
            settle(60, interval=0.5)
            dt, _, cpu = timed(name, args.small)
            small[name].append(dt)
            if name == "@repro_task":
                small_cpu.append(cpu)

    large: dict[str, float] = {}
    large_run, large_cpu = "", 0.0
    for name in FLOWS:
        settle(600, interval=0.5)
        dt, run_id, cpu = timed(name, args.large)
        large[name] = dt
        print(f"  {args.large} tasks, {name:<12} {dt:8.1f} s  ({1000 * dt / args.large:.2f} ms/task)", flush=True)
        if name == "@repro_task":
            large_run, large_cpu = run_id, cpu
    load_s = check_complete(large_run, args.large)

    n_s, n_l = args.small, args.large
    over_small_med = (statistics.median(small["@repro_task"]) - statistics.median(small["@task"])) / n_s
    over_small_min = (min(small["@repro_task"]) - min(small["@task"])) / n_s
    over_large = (large["@repro_task"] - large["@task"]) / n_l
    print(f"\nbench_scale (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, thread-pool task runner)")
    for name, ts in small.items():
        print(f"  {n_s} tasks, {name:<12} runs " + " ".join(f"{t:.3f}" for t in ts)
              + f"  median {statistics.median(ts):.3f} s")
    print(f"  overhead/task @{n_s}:   {1000 * over_small_med:7.3f} ms (medians)  {1000 * over_small_min:7.3f} ms (mins)")
    print(f"  overhead/task @{n_l}: {1000 * over_large:7.3f} ms")
    for label, base in (("medians", over_small_med), ("mins", over_small_min)):
        ratio = f"{over_large / base:.2f}x" if base > 0 and over_large > 0 else "n/a (below the noise)"
        print(f"  wall ratio overhead@{n_l} / overhead@{n_s} ({label}): {ratio}")
    cpu_small = statistics.median(small_cpu) / n_s
    cpu_large = large_cpu / n_l
    print(f"  reproflow CPU/task @{n_s}:   {1000 * cpu_small:7.3f} ms (median of " + " ".join(
        f"{1000 * c / n_s:.3f}" for c in small_cpu) + ")")
    print(f"  reproflow CPU/task @{n_l}: {1000 * cpu_large:7.3f} ms")
    print(f"  ratio reproflow CPU/task @{n_l} / @{n_s}: {cpu_large / cpu_small:.2f}x  (target <= 1.5x)")
    print(f"  {n_l}-task run: {n_l} valid task records, loaded and validated in {load_s:.1f} s")
    print(f"  bench wall time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
