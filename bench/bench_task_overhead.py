"""@repro_task against plain @task on the same 100-task flow, measured in the same process.

    python bench/bench_task_overhead.py [--tasks 100] [--repeats 5]

Prints the median wall time of each flow and the ratio (target: <= 1.10x). Both flows run on
the same temporary Prefect server, alternating, after one warm-up run each.

The time measured is the flow call, until it returns. reproflow publishes a run's Prefect
artifacts after that, on a background thread; the bench also prints how long after the return
they were all on the server (the "artifacts lag"), and waits for them between measured runs so
that work never lands in the next run's time. The CPU line (this process, all threads, the
artifacts included) is steadier than wall time on a shared machine.
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
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ["REPROFLOW_STORE"] = tempfile.mkdtemp(prefix="bench-store-")

from prefect import flow, task  # noqa: E402

from _prefect_bench import settle  # noqa: E402  (also switches Prefect's heartbeat off)
from _stats import with_interval  # noqa: E402
from reproflow import repro_task, wait_for_artifacts


def add_one(x: int) -> int:
    return x + 1


plain_task = task(add_one, name="plain")
repro = repro_task(add_one, name="repro")


def make_flow(t, n: int):  # type: ignore[no-untyped-def]
    @flow(name=f"bench-{t.name}")
    def many() -> int:
        total = 0
        for i in range(n):
            total += t(i)
        return total

    return many


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    flows = {"@task": make_flow(plain_task, args.tasks), "@repro_task": make_flow(repro, args.tasks)}
    for f in flows.values():
        f()  # warm-up: server start, imports, the once-per-process capture
    times: dict[str, list[float]] = {k: [] for k in flows}
    cpu: dict[str, list[float]] = {k: [] for k in flows}
    lags: list[float] = []
    for _ in range(args.repeats):
        for name, f in flows.items():
            settle()
            c0 = time.process_time()
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
            if name == "@repro_task":
                t1 = time.perf_counter()
                wait_for_artifacts()
                lags.append(time.perf_counter() - t1)
            cpu[name].append(time.process_time() - c0)  # every thread of this process, artifacts included
    base = statistics.median(times["@task"])
    ours = statistics.median(times["@repro_task"])
    print(f"{args.tasks}-task flow, median of {args.repeats} runs (python {sys.version.split()[0]})")
    for name, ts in times.items():
        print(f"  runs {name:<12} " + " ".join(f"{t:.3f}" for t in ts))
    print(f"  best-of ratio {min(times['@repro_task']) / min(times['@task']):.3f}x")
    print(f"  @task        {base:8.3f} s   {1000 * base / args.tasks:6.2f} ms/task")
    print(f"  @repro_task  {ours:8.3f} s   {1000 * ours / args.tasks:6.2f} ms/task")
    print(f"  ratio        {with_interval(times['@task'], times['@repro_task'])}   (95% bootstrap interval; target <= 1.10x); "
          f"overhead {1000 * (ours - base) / args.tasks:.2f} ms/task")
    cbase, cours = statistics.median(cpu["@task"]), statistics.median(cpu["@repro_task"])
    print(f"  CPU          {with_interval(cpu['@task'], cpu['@repro_task'])}   ({1000 * cbase / args.tasks:.2f} vs "
          f"{1000 * cours / args.tasks:.2f} ms/task, "
          "this process's threads, artifacts included; the Prefect server's process not counted)")
    print(f"  artifacts lag {statistics.median(lags):7.3f} s   after the flow returned (median; published in the background)")


if __name__ == "__main__":
    main()
