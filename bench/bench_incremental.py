"""The cost of a reproflow.CONTENT cache key, and a cache hit against plain Prefect caching.

    python bench/bench_incremental.py [--size-mib 1024] [--runs 5]

Key: the key of a task with one unchanged input of SIZE MiB, first (hashes the file) and then
per call (median of 200; target: under 1 ms), beside Prefect's INPUTS key on the same arguments.
Hit: a flow of one cached task, run once to fill the cache, then RUNS times: median wall time of
a hit with @repro_task(cache_policy=CONTENT) against @task(cache_policy=INPUTS), in one process.
"""

from __future__ import annotations

import argparse
import os
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
    os.environ["REPROFLOW_CACHE_DIR"] = str(tmp / "cache")
    os.environ["REPROFLOW_STORE"] = str(tmp / "store")
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    big = tmp / "big.bin"
    block = os.urandom(1 << 20)
    with open(big, "wb") as fh:
        for _ in range(args.size_mib):
            fh.write(block)
    old = time.time() - 60
    os.utime(big, (old, old))  # not "racily clean": the stat-keyed cache may keep it

    import _prefect_bench  # noqa: F401  (fair flows: no heartbeat rounding)
    from prefect import flow, task
    from prefect.cache_policies import INPUTS

    from reproflow import CONTENT, repro_task
    from reproflow.recorder._content import key_parts

    @repro_task(cache_policy=CONTENT)
    def read_size(path: Path) -> int:
        return path.stat().st_size

    @task(cache_policy=INPUTS)
    def read_size_plain(path: Path) -> int:
        return path.stat().st_size

    t0 = time.perf_counter()
    parts = key_parts(read_size, {"path": big})
    first = time.perf_counter() - t0
    assert parts is not None and parts.inputs
    per = []
    for _ in range(200):
        t0 = time.perf_counter()
        key_parts(read_size, {"path": big})
        per.append(time.perf_counter() - t0)
    prefect_per = []
    for _ in range(200):
        t0 = time.perf_counter()
        INPUTS.compute_key(None, {"path": big}, {})  # type: ignore[arg-type]
        prefect_per.append(time.perf_counter() - t0)
    key_ms, prefect_ms = statistics.median(per) * 1e3, statistics.median(prefect_per) * 1e3
    print(f"key, {args.size_mib} MiB input: first {first * 1e3:.1f} ms (hashes the file); "
          f"then {key_ms:.3f} ms per key (target < 1 ms); Prefect INPUTS {prefect_ms:.3f} ms")

    @flow
    def content_flow(path: Path) -> int:
        return read_size(path)

    @flow
    def plain_flow(path: Path) -> int:
        return read_size_plain(path)

    def timed(f: object) -> float:
        _prefect_bench.settle()
        t0 = time.perf_counter()
        f(big)  # type: ignore[operator]
        return time.perf_counter() - t0

    timed(content_flow), timed(plain_flow)  # fill both caches (and start the server)
    ours = statistics.median(timed(content_flow) for _ in range(args.runs))
    base = statistics.median(timed(plain_flow) for _ in range(args.runs))
    print(f"hit, whole flow: CONTENT {ours * 1e3:.0f} ms, Prefect INPUTS {base * 1e3:.0f} ms "
          f"({ours / base:.2f}x; median of {args.runs}; CONTENT also records the run)")


if __name__ == "__main__":
    main()
