"""What watching for undeclared reads costs: 100 recorded file tasks with the audit hook and without.

    python bench/bench_undeclared.py [--tasks 100] [--repeats 7] [--rounds 2] [--no-undeclared] [--micro]

Each task reads its declared 1 KiB input, one file it does not declare (a shared lookup table,
hashed after the task as an undeclared input) and writes its declared output, recorded by
``reproflow.record()`` (plain Python: no engine's own cost dilutes the ratio). Two child
processes per round, alternating: ``watch`` (as shipped) and ``off`` (``capture._reads.start``
replaced by one that never installs the hook, so no undeclared read is recorded). Each child runs
one warm-up block (first context capture, cold hash cache), then ``--repeats`` blocks of
``--tasks`` tasks, and prints the median process CPU and wall time of a block. The CPU ratio is
the figure to read on a shared machine; the wall ratio is printed beside it. With
``--no-undeclared`` the tasks read only their declared input: what watching costs a task that
reads nothing undeclared (the target: at most 2%). Without it, ``watch`` also hashes and records
the lookup file in every task, the cost of one more input.

With ``--micro``, the added work alone, without the noise of a whole recorded task: per
simulated task, what ``_Attempt`` does for watching (start, the audit events of one declared read
and one write, stop, the check of what was read, done) in a process with the hook and in one without
(where ``sys.audit`` finds no hook), 20,000 tasks per block, median of ``--repeats`` blocks; the
difference is printed against the CPU per task of the 100-task run measured beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(variant: str, n: int, repeats: int, work: Path, lookup_read: bool) -> None:
    os.environ["REPROFLOW_STORE"] = str(work / f"store-{variant}")
    os.environ["REPROFLOW_CACHE_DIR"] = str(work / f"cache-{variant}")
    import reproflow
    from reproflow import repro_task
    from reproflow.capture import _reads

    if variant == "off":
        def start():  # type: ignore[no-untyped-def]
            reads = _reads.Reads()
            return reads, _reads._current.set(None)

        _reads.start = start  # type: ignore[assignment]

    lookup = work / "lookup.csv"

    @repro_task(inputs=["src"], outputs=["dst"])
    def step(src: Path, dst: Path) -> int:
        text = src.read_text()
        table = lookup.read_text() if lookup_read else ""  # undeclared
        dst.write_text(text.upper())
        return len(text) + len(table)

    data = work / "data"

    def block(i: int) -> None:
        out = work / f"out-{variant}-{i}"
        out.mkdir()
        with reproflow.record(name=f"bench-{variant}"):
            for k in range(n):
                step(data / f"{k}.txt", out / f"{k}.txt")

    block(-1)
    cpu, wall = [], []
    for i in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        block(i)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    print(json.dumps({"cpu": statistics.median(cpu), "wall": statistics.median(wall)}))


def micro_child(variant: str, repeats: int, loops: int = 20000) -> None:
    from reproflow.capture import _reads

    src, dst = "/data/in/0.txt", "/data/out/0.txt"

    def task() -> bool:
        if variant == "watch":
            reads, token = _reads.start()
        else:
            reads, token = _reads.Reads(), _reads._current.set(None)
        sys.audit("open", src, "r", 0)  # what open() raises (the file itself is not opened)
        sys.audit("open", dst, "w", 0)
        _reads.stop(token)
        declared = {src}  # _Attempt._stop_watching: the read was the declared input
        only_declared = all(p in declared for p in reads.read)
        if variant == "watch":
            _reads.done(reads)  # the writers' registry of tasks running side by side
        return only_declared

    for _ in range(loops // 10):
        task()
    times = []
    for _ in range(repeats):
        c0 = time.process_time()
        for _ in range(loops):
            task()
        times.append((time.process_time() - c0) / loops)
    print(json.dumps({"cpu": statistics.median(times)}))


def micro(args: argparse.Namespace) -> None:
    results: dict[str, list[float]] = {"off": [], "watch": []}
    for r in range(args.rounds):
        for variant in ("off", "watch") if r % 2 == 0 else ("watch", "off"):
            proc = subprocess.run([sys.executable, __file__, "--micro-child", variant, "--repeats", str(args.repeats)],
                                  capture_output=True, text=True, check=True)
            results[variant].append(json.loads(proc.stdout.strip().splitlines()[-1])["cpu"])
    off, on = statistics.median(results["off"]), statistics.median(results["watch"])
    print(f"added work per task, median of {args.repeats} blocks x {args.rounds} rounds of 20,000 simulated tasks")
    print(f"  off {off * 1e6:.2f} us, watch {on * 1e6:.2f} us: +{(on - off) * 1e6:.2f} us per task")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", choices=["watch", "off"])
    ap.add_argument("--micro-child", choices=["watch", "off"])
    ap.add_argument("--micro", action="store_true", help="the added work alone (see the docstring)")
    ap.add_argument("--work")
    ap.add_argument("--no-undeclared", action="store_true",
                    help="tasks read only their declared input: the cost of watching alone")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.tasks, args.repeats, Path(args.work), not args.no_undeclared)
        return
    if args.micro_child:
        micro_child(args.micro_child, args.repeats)
        return
    if args.micro:
        micro(args)
        return
    results: dict[str, list[dict[str, float]]] = {"off": [], "watch": []}
    with tempfile.TemporaryDirectory(prefix="bench-undeclared-") as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        for k in range(args.tasks):
            (work / "data" / f"{k}.txt").write_bytes(os.urandom(512).hex().encode())
        (work / "lookup.csv").write_text("key,value\n" + "".join(f"{i},{i * i}\n" for i in range(50)))
        for r in range(args.rounds):
            for variant in ("off", "watch") if r % 2 == 0 else ("watch", "off"):
                rwork = work / f"r{r}-{variant}"
                rwork.mkdir()
                for name in ("data", "lookup.csv"):
                    os.symlink(work / name, rwork / name)
                proc = subprocess.run([sys.executable, __file__, "--child", variant, "--tasks", str(args.tasks),
                                       "--repeats", str(args.repeats), "--work", str(rwork)]
                                      + (["--no-undeclared"] if args.no_undeclared else []),
                                      capture_output=True, text=True, check=True)
                results[variant].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    off_cpu = statistics.median(r["cpu"] for r in results["off"])
    on_cpu = statistics.median(r["cpu"] for r in results["watch"])
    off_wall = statistics.median(r["wall"] for r in results["off"])
    on_wall = statistics.median(r["wall"] for r in results["watch"])
    n = args.tasks
    print(f"{n} file tasks, median of {args.repeats} blocks x {args.rounds} rounds")
    print(f"  off:   CPU {off_cpu * 1000:.0f} ms ({off_cpu / n * 1000:.2f} ms/task)   wall {off_wall * 1000:.0f} ms")
    print(f"  watch: CPU {on_cpu * 1000:.0f} ms ({on_cpu / n * 1000:.2f} ms/task)   wall {on_wall * 1000:.0f} ms")
    print(f"  CPU ratio {on_cpu / off_cpu:.3f}x ({(on_cpu - off_cpu) / n * 1e6:+.0f} us/task); "
          f"wall ratio {on_wall / off_wall:.3f}x")


if __name__ == "__main__":
    main()
