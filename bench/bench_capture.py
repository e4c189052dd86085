"""Benchmark the once-per-process capture (environment + hardware + git) against baselines.

Run: ``python bench/bench_capture.py [--repeat N] [--no-bytecode-cache]``

Each measurement runs in a fresh interpreter (a process captures once, so "cold" is what users
pay), repeated N times; the median is printed. Every child first imports pydantic and
``reproflow.records`` (any recording process has them) and then times:

* ``first call``  env + hw + git the first time in the process, including the lazy imports they
  need (detect-secrets, psutil, threadpoolctl) -- what the first task of a run pays;
* ``after prefetch()`` the first call when ``reproflow.capture.prefetch()`` ran 1 s earlier
  (as when a task is decorated, before the flow starts);
* ``work only``   the same three calls again in the same process: the capture work itself;
* ``get_context`` the full first capture into a fresh local store (adds the source snapshot,
  local-distribution snapshots and blob writes), and a second, cached call.

Baselines, measured in the same run: ``uv pip freeze`` (a subprocess listing distributions) and
naive ``importlib.metadata`` (``d.metadata["Name"]``, ``d.version``, ``d.requires``, each of
which re-parses METADATA), first call in a fresh interpreter.

By default children use a private bytecode cache (``PYTHONPYCACHEPREFIX``) warmed by one
discarded run, like a normal ``pip install`` that compiles ``.pyc`` files; ``--no-bytecode-cache``
keeps the environment as it is (``PYTHONDONTWRITEBYTECODE`` makes every import compile).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, tempfile, time
import pydantic, reproflow.records  # every recording process has these
root = sys.argv[1]
prefetched = len(sys.argv) > 2 and sys.argv[2] == "prefetch"
out = {}
if prefetched:  # what @repro_task can do when a task is decorated, before the flow starts
    import reproflow.capture
    reproflow.capture.prefetch()
    time.sleep(1.0)  # a flow run's own start-up (Prefect needs longer than this)

def timed(fn):
    t = time.perf_counter()
    value = fn()
    return value, (time.perf_counter() - t) * 1000

t0 = time.perf_counter()
from reproflow.capture.environment import capture_environment
from reproflow.capture.hardware import capture_hardware
from reproflow.capture.git import capture_git
from reproflow.values._redact import detector_setup_ms
out["import_ms"] = (time.perf_counter() - t0) * 1000
_, out["env_first_ms"] = timed(capture_environment)
out["detect_secrets_setup_ms"] = detector_setup_ms()
_, out["hw_first_ms"] = timed(capture_hardware)
_, out["git_first_ms"] = timed(lambda: capture_git(root))
out["first_ms"] = out["env_first_ms"] + out["hw_first_ms"] + out["git_first_ms"]
env, out["env_ms"] = timed(capture_environment)
_, out["hw_ms"] = timed(capture_hardware)
_, out["git_ms"] = timed(lambda: capture_git(root))
out["work_ms"] = out["env_ms"] + out["hw_ms"] + out["git_ms"]
out["n_dists"] = len(env.distributions)

from reproflow.capture import get_context
from reproflow.store import Store
store = Store(tempfile.mkdtemp(prefix="bench-store-"))
(_, ctx), out["context_first_ms"] = timed(lambda: get_context(store, root=root))
_, out["context_cached_ms"] = timed(lambda: get_context(store, root=root))
out["context_capture_ms"] = ctx.capture_ms
out["cpu_source"] = ctx.hardware.cpu.source
out["source_files"] = ctx.source.files
print(json.dumps(out))
"""

NAIVE = r"""
import json, time
t = time.perf_counter()
import importlib.metadata as md
rows = [(d.metadata["Name"], d.version, d.requires, d.read_text("direct_url.json")) for d in md.distributions()]
print(json.dumps({"naive_ms": (time.perf_counter() - t) * 1000, "n": len(rows)}))
"""


def _child(code: str, env: dict[str, str], *args: str) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _uv_freeze_ms(env: dict[str, str]) -> float | None:
    uv = shutil.which("uv", path=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    if uv is None:
        return None
    t = time.perf_counter()
    subprocess.run([uv, "pip", "freeze", "--python", sys.executable], capture_output=True, check=True, env=env)
    return (time.perf_counter() - t) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-bytecode-cache", action="store_true")
    parser.add_argument("--root", default=str(ROOT), help="git work tree to capture (default: this checkout)")
    opts = parser.parse_args()

    env = dict(os.environ)
    pycache = None
    if not opts.no_bytecode_cache:
        pycache = tempfile.mkdtemp(prefix="bench-pycache-")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
        _child(CHILD, env, opts.root)  # fills the bytecode cache (and the CPU cache); discarded
        _child(NAIVE, env)

    runs = [_child(CHILD, env, opts.root) for _ in range(opts.repeat)]
    pre = [_child(CHILD, env, opts.root, "prefetch") for _ in range(opts.repeat)]
    naive = [_child(NAIVE, env)["naive_ms"] for _ in range(opts.repeat)]
    freeze = [ms for ms in (_uv_freeze_ms(env) for _ in range(opts.repeat)) if ms is not None]

    def med(key: str) -> float:
        return statistics.median(float(r[key] or 0.0) for r in runs)

    first, work = med("first_ms"), med("work_ms")
    print(f"reproflow capture benchmark  (python {sys.version.split()[0]}, {runs[0]['n_dists']:.0f} distributions, "
          f"median of {opts.repeat} fresh processes, bytecode cache: {'warm' if pycache else 'as configured'})")
    print(f"  cpu info source in children: {runs[-1]['cpu_source']}; source files snapshotted: {runs[-1]['source_files']:.0f}")
    print()
    print(f"  {'measurement':<44}{'ms':>9}")
    rows = [
        ("import capture modules", med("import_ms")),
        ("environment, first call (incl. lazy imports)", med("env_first_ms")),
        ("  of which detect-secrets setup", med("detect_secrets_setup_ms")),
        ("hardware, first call", med("hw_first_ms")),
        ("git, first call", med("git_first_ms")),
        ("ENV+HW+GIT FIRST CALL", first),
        ("ENV+HW+GIT FIRST CALL after prefetch()", statistics.median(float(r["first_ms"]) for r in pre)),
        ("environment, work only", med("env_ms")),
        ("hardware, work only", med("hw_ms")),
        ("git, work only", med("git_ms")),
        ("ENV+HW+GIT WORK ONLY", work),
        ("get_context first call (+source, blobs)", med("context_first_ms")),
        ("get_context second call (cached)", med("context_cached_ms")),
        ("baseline: naive importlib.metadata (cold)", statistics.median(naive)),
    ]
    if freeze:
        rows.append(("baseline: `uv pip freeze` subprocess", statistics.median(freeze)))
    for label, ms in rows:
        print(f"  {label:<44}{ms:>9.2f}")
    print()
    pre_first = statistics.median(float(r["first_ms"]) for r in pre)
    verdict = lambda ms: "PASS" if ms <= 100 else "FAIL"  # noqa: E731
    print(f"  target env+hw+git <= 100 ms in-process: work only {work:.1f} ms ({verdict(work)}); "
          f"first call {first:.1f} ms ({verdict(first)}) cold")
    print(f"    in a flow (@repro_task calls prefetch() at decoration): first call {pre_first:.1f} ms "
          f"({verdict(pre_first)})")
    print(f"  ratio env+hw+git work / naive importlib.metadata: {work / statistics.median(naive):.2f}x")
    if freeze:
        print(f"  ratio env+hw+git work / uv pip freeze: {work / statistics.median(freeze):.2f}x")
    if pycache:
        shutil.rmtree(pycache, ignore_errors=True)


if __name__ == "__main__":
    main()
