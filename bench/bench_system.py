"""Benchmark the capture of system libraries, per process and per task, against baselines.

Run: ``python bench/bench_system.py [--repeat N]``

Each measurement runs in a fresh interpreter that has imported numpy (its BLAS is mapped), and
threadpoolctl and the hash cache (the hardware capture and the store import them anyway), with a
bytecode cache as a normal install has; the median of N is printed. A child times:

* ``per process``: the first :func:`reproflow.capture.system.current` of the process (read
  ``/proc/self/maps``, hash-cache lookups, ELF facts and dpkg owners from the machine's cache,
  threadpoolctl), with this machine's caches warm (a discarded run fills them first);
* ``new machine``: the same with an empty ``REPROFLOW_CACHE_DIR``: every library hashed, its ELF
  header read with pyelftools (imported then), dpkg's database indexed;
* ``per task``: :func:`reproflow.capture.context_at_task_end` when nothing was loaded since (the
  check every task pays: one ``dl_iterate_phdr`` call), averaged over 20,000 calls;
* ``per task, a library loaded``: the same right after ``ctypes.CDLL`` loaded one more library
  (the capture again and the new context's blobs).

Baselines, measured in the same children: the environment capture of the same process
(``capture_environment``, once per process too), one read of ``/proc/self/maps`` (what checking
for change by reading the map would cost each task), and the cached ``get_context`` call every
task already makes.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]

CHILD = r"""
import ctypes, ctypes.util, json, sys, time
import numpy  # noqa: F401 - its BLAS is what we look for
import pydantic, reproflow.records  # every recording process has these
import threadpoolctl, reproflow.capture._files  # the hardware capture and the store import them anyway
from reproflow.capture import system, get_context, context_at_task_end
from reproflow.capture.environment import capture_environment
from reproflow.store import Store

def ms(fn, n=1):
    t = time.perf_counter()
    for _ in range(n):
        v = fn()
    return (time.perf_counter() - t) * 1000 / n, v

out = {}
out["per_process_ms"], (gen, libs) = ms(system.current)
out["libraries"] = len(libs.libraries)
out["dpkg"] = sum(1 for l in libs.libraries if l.origin == "dpkg")
out["environment_ms"], _ = ms(capture_environment)
def read_maps():
    with open("/proc/self/maps", "rb") as fh:
        return fh.read()
out["read_maps_ms"], _ = ms(read_maps, 200)
store = Store(sys.argv[1])
digest, _ = get_context(store, root=sys.argv[2])
out["get_context_cached_us"] = ms(lambda: get_context(store, root=sys.argv[2]), 2000)[0] * 1000
out["per_task_us"] = ms(lambda: context_at_task_end(store, digest), 20000)[0] * 1000
mapped = system.mapped_files() or frozenset()
for name in ("gomp", "expat", "bz2", "lzma", "uuid", "ffi", "sqlite3"):
    found = ctypes.util.find_library(name)
    if found and not any(p.rsplit("/", 1)[-1].startswith(found.split(".so")[0] + ".so") for p in mapped):
        ctypes.CDLL(found)
        out["loaded"] = found
        break
out["per_task_loaded_ms"], new = ms(lambda: context_at_task_end(store, digest))
out["new_context"] = new != digest
print(json.dumps(out))
"""


def child(store: str, root: str, env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", CHILD, store, root], capture_output=True, text=True, env=env,
                          check=True, cwd=root)  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-system-") as tmp:
        # a bytecode cache, as a normal install has (these machines set PYTHONDONTWRITEBYTECODE)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONPYCACHEPREFIX": os.path.join(tmp, "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        warm = {**env, "REPROFLOW_CACHE_DIR": os.path.join(tmp, "cache")}
        child(os.path.join(tmp, "store-warmup"), tmp, warm)  # fills this machine's caches
        runs, cold = [], []
        for i in range(args.repeat):
            runs.append(child(os.path.join(tmp, f"store-{i}"), tmp, warm))
            fresh = {**env, "REPROFLOW_CACHE_DIR": os.path.join(tmp, f"cache-cold-{i}")}
            cold.append(child(os.path.join(tmp, f"store-cold-{i}"), tmp, fresh))

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(float(r[key]) for r in rows)

    first = runs[0]
    print(f"fresh interpreters with numpy imported, median of {args.repeat}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"  {first['libraries']} ELF files mapped, {first['dpkg']} owned by dpkg; "
          f"after a task loaded {first.get('loaded')}: new context {first['new_context']}")  # fmt: skip
    pp, envc = med(runs, "per_process_ms"), med(runs, "environment_ms")
    print("per process")
    print(f"  system libraries, machine caches warm   {pp:8.1f} ms   ({pp / envc:.2f}x the environment capture)")
    print(f"  system libraries, new machine           {med(cold, 'per_process_ms'):8.1f} ms")
    print(f"  baseline: environment capture           {envc:8.1f} ms")
    pt, gc, rm = med(runs, "per_task_us"), med(runs, "get_context_cached_us"), med(runs, "read_maps_ms") * 1000
    print("per task")
    print(f"  nothing loaded since (the check)        {pt:8.1f} us   ({pt / gc:.2f}x a cached get_context, "
          f"{rm / pt:.0f}x cheaper than reading the map)")  # fmt: skip
    print(f"  a library loaded during the task        {med(runs, 'per_task_loaded_ms'):8.1f} ms")
    print(f"  baseline: cached get_context            {gc:8.1f} us")
    print(f"  baseline: one read of /proc/self/maps   {rm:8.1f} us")


if __name__ == "__main__":
    main()
