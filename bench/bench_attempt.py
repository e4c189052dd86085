"""reproflow's own CPU for one file task's attempt, in one thread, without Prefect's engine.

    python bench/bench_attempt.py [--iterations 3000] [--rounds 5] [--owned]

A microbench for the per-task path that ``bench_file_tasks.py`` measures in a real flow: the
same attempt a mapped ``@repro_task`` builds for ``process(src: Path, dst: Path)`` (the task run
context set as Prefect's engine sets it), its ``begin``, the body, its ``success`` and the
record's write, all on the calling thread (the record is written inline, not on the writer
thread). Variants: declared / inferred paths x a fresh / warm hash cache. Printed: the median
over rounds of ``time.thread_time_ns`` per attempt (the body's own read and write included,
as in the real flow's metered calls), and the body alone for scale. No Prefect server is
started: the context is built, not run. Compare two checkouts by running this with each one's
``src`` first on ``PYTHONPATH``, alternately.

``--owned``: the run is this process's, as in a flow: what a flow's task thread pays (the record
is built and written on the writer thread), and apart, the writer thread's CPU per attempt.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

#: every folder this run makes (store, hash cache, files), removed when it ends
_ROOT = tempfile.mkdtemp(prefix="bench-attempt-")
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
os.environ["REPROFLOW_STORE"] = os.path.join(_ROOT, "store")
os.environ["REPROFLOW_CACHE_DIR"] = os.path.join(_ROOT, "cache")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")


def process(src: Path, dst: Path) -> int:
    data = src.read_bytes()
    dst.write_bytes(data[::-1])
    return len(data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--busy-threads", type=int, default=0,
                        help="threads running Python meanwhile, contending for the GIL as Prefect's do")
    parser.add_argument("--owned", action="store_true",
                        help="the run is this process's, as in a flow: records are built and written on the writer "
                             "thread, whose CPU is printed apart")
    parser.add_argument("--variants", nargs="+", default=["declared-fresh", "declared-warm", "inferred-fresh", "inferred-warm"])
    args = parser.parse_args()

    from prefect.client.schemas.objects import TaskRun
    from prefect.context import TaskRunContext

    import reproflow
    from reproflow import repro_task
    from reproflow.capture import _files
    from reproflow.engines.prefect import _task
    from reproflow.engines.prefect._flowrun import FlowPlace, _places
    from reproflow.recorder import _runs
    from reproflow.recorder._runs import get_store, start_run

    tasks = {
        "declared": repro_task(process, name="declared", inputs=["src"], outputs=["dst"]),
        "inferred": repro_task(process, name="inferred"),
    }
    root = Path(tempfile.mkdtemp(prefix="files-", dir=_ROOT))
    (root / "in").mkdir()
    old = time.time() - 10
    srcs = []
    for i in range(args.iterations):
        p = root / "in" / f"{i:05d}.bin"
        p.write_bytes(os.urandom(1024))
        os.utime(p, (old, old))
        srcs.append(p)
    flow_run_id = uuid.uuid4()
    run_id = str(flow_run_id)
    store = get_store()
    start_run(store, run_id=run_id, flow_name="bench", flow_run_name=None, fn=process, parameters={},
              engine="prefect", seed=None)
    _places[run_id] = FlowPlace(run_id)
    if not args.owned:
        _runs._started.pop(run_id)  # not owned: each record is written inline, on this thread
    from reproflow.store._writer import writer

    def writer_cpu_ns() -> int:
        thread = next((t for t in threading.enumerate() if t.name == "reproflow-writer"), None)
        return 0 if thread is None else time.clock_gettime_ns(time.pthread_getcpuclockid(thread.ident))  # type: ignore[arg-type]

    def one_round(variant: str) -> tuple[float, float, float]:
        name, cache = variant.split("-")
        t = tasks[name]
        out = root / f"out-{variant}-{uuid.uuid4().hex[:6]}"
        out.mkdir()
        if cache == "fresh":
            _files.clear_memory_cache()
        else:  # the inputs hashed once before
            for p in srcs:
                _files.hash_local(p)
        ctxs = []
        for i, src in enumerate(srcs):
            tr = TaskRun.model_construct(id=uuid.uuid4(), flow_run_id=flow_run_id, run_count=1, tags=[],
                                         task_inputs={"src": [], "dst": []}, name=f"{t.name}-{i}")
            ctxs.append(TaskRunContext.model_construct(task=t, task_run=tr))
        dsts = [out / p.name for p in srcs]
        fn = t.fn  # the wrapper Prefect calls
        writer().flush()
        w0 = writer_cpu_ns()
        c0 = time.thread_time_ns()
        for ctx, src, dst in zip(ctxs, srcs, dsts):
            token = TaskRunContext.__var__.set(ctx)
            try:
                fn(src, dst)
            finally:
                TaskRunContext.__var__.reset(token)
        total = time.thread_time_ns() - c0
        writer().flush()
        on_writer = writer_cpu_ns() - w0
        body0 = time.thread_time_ns()
        for src, dst in zip(srcs, dsts):
            process(src, dst)
        body = time.thread_time_ns() - body0
        return total / len(srcs) / 1e3, body / len(srcs) / 1e3, on_writer / len(srcs) / 1e3

    stop = threading.Event()

    def busy() -> None:
        x = 0
        while not stop.is_set():
            for i in range(1000):
                x += i

    for _ in range(args.busy_threads):
        threading.Thread(target=busy, daemon=True).start()
    for v in args.variants:  # warm-up
        one_round(v)
    results: dict[str, list[tuple[float, float, float]]] = {v: [] for v in args.variants}
    for r in range(args.rounds):
        order = args.variants[r % len(args.variants):] + args.variants[:r % len(args.variants)]
        for v in order:
            results[v].append(one_round(v))
    stop.set()
    print(f"bench_attempt ({reproflow.__file__}, python {sys.version.split()[0]}, "
          f"load {os.getloadavg()[0]:.1f}), {args.iterations} attempts x {args.rounds} rounds, "
          f"{args.busy_threads} busy threads")
    for v in args.variants:
        per = statistics.median(x for x, _, _ in results[v])
        body = statistics.median(b for _, b, _ in results[v])
        later = statistics.median(w for _, _, w in results[v])
        print(f"  {v:<16} {per:7.1f} us/attempt (body alone {body:5.1f} us; reproflow {per - body:6.1f} us)"
              + (f" + {later:5.1f} us on the writer thread" if args.owned else ""))


if __name__ == "__main__":
    main()
