"""The cost of a reproflow.CONTENT cache key, and a cache hit against plain Prefect caching.

    python bench/bench_incremental.py [--size-mib 1024] [--runs 5]

Key: the key of a task with one unchanged input of SIZE MiB, first (hashes the file; the
process's one-time capture of its context is measured before, on a small file) and then per
call (median of 200; target: under 1 ms), beside Prefect's INPUTS key on the same arguments.

Hit: a flow of one cached task, run once to fill the cache, then RUNS times (the variants taking
turns): median wall time of a hit with @repro_task(cache_policy=CONTENT) against plain
@task(cache_policy=INPUTS), and against @repro_task(cache_policy=INPUTS) (recorded, Prefect's
key: what the content key itself adds to a recorded hit), in one process; each measured run
must be a hit (no task body runs again). Prefect's own server starts in the process
(ephemeral) unless PREFECT_API_URL names one. The temporary folder (with the big file) is
removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-incr-"))
    try:
        run(tmp, args.size_mib, args.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: Path, size_mib: int, runs: int) -> None:
    os.environ["REPROFLOW_CACHE_DIR"] = str(tmp / "cache")
    os.environ["REPROFLOW_STORE"] = str(tmp / "store")
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")  # a loaded machine
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    big = tmp / "big.bin"
    block = os.urandom(1 << 20)
    with open(big, "wb") as fh:
        for _ in range(size_mib):
            fh.write(block)
    old = time.time() - 60
    os.utime(big, (old, old))  # not "racily clean": the stat-keyed cache may keep it

    import _prefect_bench  # noqa: F401  (fair flows: no heartbeat rounding)
    from prefect import flow, task
    from prefect.cache_policies import INPUTS

    from reproflow import CONTENT, repro_task
    from reproflow.recorder._content import key_parts

    bodies = {"content": 0, "recorded": 0, "plain": 0}  # how often each task body really ran

    @repro_task(cache_policy=CONTENT)
    def read_size(path: Path, variant: str) -> int:
        bodies["content"] += 1
        return path.stat().st_size

    @repro_task(cache_policy=INPUTS)
    def read_size_recorded(path: Path, variant: str) -> int:
        bodies["recorded"] += 1
        return path.stat().st_size

    @task(cache_policy=INPUTS)
    def read_size_plain(path: Path, variant: str) -> int:
        bodies["plain"] += 1
        return path.stat().st_size

    small = tmp / "small.txt"
    small.write_text("x")
    t0 = time.perf_counter()
    key_parts(read_size, {"path": small, "variant": "content"})  # the process's one-time capture
    capture = time.perf_counter() - t0
    t0 = time.perf_counter()
    parts = key_parts(read_size, {"path": big, "variant": "content"})
    first = time.perf_counter() - t0
    assert parts is not None and parts.inputs
    per = []
    for _ in range(200):
        t0 = time.perf_counter()
        key_parts(read_size, {"path": big, "variant": "content"})
        per.append(time.perf_counter() - t0)
    prefect_per = []
    for _ in range(200):
        t0 = time.perf_counter()
        INPUTS.compute_key(None, {"path": big, "variant": "plain"}, {})  # type: ignore[arg-type]
        prefect_per.append(time.perf_counter() - t0)
    key_ms, prefect_ms = statistics.median(per) * 1e3, statistics.median(prefect_per) * 1e3
    print(f"key, {size_mib} MiB input: first {first * 1e3:.1f} ms (hashes the file; the process's "
          f"one-time capture before it: {capture * 1e3:.0f} ms); "
          f"then {key_ms:.3f} ms per key (target < 1 ms); Prefect INPUTS {prefect_ms:.3f} ms")

    @flow
    def content_flow(path: Path) -> int:
        return read_size(path, "content")

    @flow
    def recorded_flow(path: Path) -> int:
        return read_size_recorded(path, "recorded")  # INPUTS keys only the arguments: each variant its own

    @flow
    def plain_flow(path: Path) -> int:
        return read_size_plain(path, "plain")

    def timed(f: object) -> float:
        _prefect_bench.settle()
        t0 = time.perf_counter()
        f(big)  # type: ignore[operator]
        return time.perf_counter() - t0

    flows = {"content": content_flow, "recorded": recorded_flow, "plain": plain_flow}
    for f in flows.values():
        timed(f)  # fill the caches (the first also starts the server)
    filled = dict(bodies)
    times: dict[str, list[float]] = {name: [] for name in flows}
    for _ in range(runs):
        for name, f in flows.items():
            times[name].append(timed(f))
    assert bodies == filled == {name: 1 for name in flows}, f"a measured run was not a cache hit: {bodies}"
    ours, rec, base = (statistics.median(times[n]) * 1e3 for n in ("content", "recorded", "plain"))
    print(f"hit, whole flow: @repro_task CONTENT {ours:.0f} ms, @repro_task INPUTS {rec:.0f} ms, "
          f"plain @task INPUTS {base:.0f} ms ({ours / base:.2f}x plain Prefect, {ours / rec:.2f}x recorded "
          f"INPUTS; median of {runs}; @repro_task also records the run)")

if __name__ == "__main__":
    main()
