"""Which part of reproflow's per-task path the file-task flow's wall time pays for (issue 16).

    python bench/ablate_file_tasks.py [--modes full floor minimal begin-only no-record no-record-io no-output-hash
                                               batch-50ms lookup-existing lookup-missing no-held-read] [--rounds 8]
                                      [--switch-interval SECONDS]

bench_file_tasks.py's 100 mapped file tasks ("declared", warm hash cache) against ``@task``, in
one fresh process per mode, with one part of the recording switched off by a patch in that
process only (a measurement, never a way to run reproflow):

* ``full``: nothing off (bench_file_tasks.py's "declared, warm").
* ``floor``: no attempt at all (the wrapper calls the function): what the adapter, the run's
  start and end records and the audit hook cost alone.
* ``minimal``: the attempt replaced by the least any recorder that hashes on the task's thread
  must do there: the input's stat and its hash from the in-memory cache before the body, the
  output's stat, bytes and SHA-256 after it; nothing watched, no record. Its CPU per task
  (metered like the attempt's) is the floor of that design in the flow: on 2026-12-06 it was 163
  against the full attempt's 359 us a task on the task threads (in-process A/B, 8 rounds), so
  less than half of what the attempt spends there is what the hashing itself costs among
  Prefect's threads.
* ``begin-only``: inputs hashed and the body watched, no success (no outputs, no record).
* ``no-record``: everything but the record: no parameter typing, no record build, no write.
* ``no-record-io``: the record built on the writer thread, not written.
* ``no-output-hash``: no output hashed.
* ``batch-50ms``: nothing off, task records gathered for 50 ms before the writer takes them
  instead of the writer's second: what the longer window saves.
* ``lookup-existing`` / ``lookup-missing``: nothing off, and 20 more ``os.stat`` calls before each
  attempt, of the task's input file (it exists) or of 20 new names in the output folder, where the
  other tasks are creating their files (none of them exists). It measures what a lookup costs in
  the flow: an inferred output is looked up before its task runs (``docs/recording.md``).
* ``no-held-read``: nothing off, and every file hashed is read the usual way, letting the GIL go
  at its open, read and close, not held (``capture/_heldio.py``): what holding it saves.

Printed per mode: the median wall and process CPU ratios to ``@task`` (alternating, the order
swapped each round) and reproflow's own CPU per task as bench_file_tasks.py meters it.
Ratios move by about +-0.05 between runs on the 2-core machine: compare modes run back to back.
``--switch-interval`` sets ``sys.setswitchinterval`` in every mode's process (baseline included):
how long a thread coming back from a system call may wait for the GIL, which tells whether a
mode's cost is its CPU or its hand-overs of the GIL.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = ("full", "floor", "minimal", "begin-only", "no-record", "no-record-io", "no-output-hash", "batch-50ms", "lookup-existing",
         "lookup-missing", "no-held-read")
#: the os.stat calls the lookup-* modes add before each attempt
LOOKUPS = 20


def _patch(mode: str) -> None:
    from reproflow.engines.prefect import _task
    from reproflow.recorder import _attempt
    from reproflow.store import Store

    if mode == "floor":
        _task._prefect_attempt = lambda *a: None
    elif mode == "minimal":
        from _prefect_bench import _metered  # (bench_file_tasks.py, imported first, set Prefect's environment)
        from reproflow.capture import _files

        _Minimal.cached = staticmethod(_files._cached)  # looked up here, not inside the metered calls
        _Minimal.before, _Minimal.after = _metered(_Minimal.before), _metered(_Minimal.after)
        _task._prefect_attempt = lambda spec, args, kwargs: _Minimal()
    elif mode == "begin-only":
        _attempt._Attempt.success = lambda self, *a, **k: self._done_watching()
    elif mode == "no-record":
        _attempt._Attempt._write = lambda self, *a, **k: None
    elif mode == "no-record-io":
        Store.write_task_bytes = lambda self, *a: None
        Store.write_task_batch = lambda self, *a: None
    elif mode == "no-output-hash":
        _attempt._Attempt._collect_outputs = lambda self, result: []
    elif mode == "batch-50ms":
        from reproflow.store import _writer

        _writer.BATCH_S = 0.05
    elif mode in ("lookup-existing", "lookup-missing"):
        import itertools

        begin, fresh = _attempt._Attempt.begin, itertools.count()

        def looked_up(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            src, dst = (os.fspath(a) for a in self.args[:2])
            for _ in range(LOOKUPS):
                try:
                    os.stat(src if mode == "lookup-existing" else os.path.join(os.path.dirname(dst), f"none-{next(fresh)}"))
                except FileNotFoundError:
                    pass
            return begin(self, *args, **kwargs)

        _attempt._Attempt.begin = looked_up
    elif mode == "no-held-read":
        from reproflow.capture import _files

        _files.read_small = lambda path, st: None
    elif mode != "full":
        raise SystemExit(f"unknown mode {mode!r}; one of {', '.join(MODES)}")


class _Minimal:
    """The ``minimal`` mode's attempt for ``process(src, dst)`` (see the module's notes); its
    ``before`` and ``after`` are metered as bench_file_tasks.py meters the attempt's calls (the
    body left out)."""

    cached = None  #: the hash cache's in-memory lookup (``_files._cached``), set by ``_patch``

    def call(self, fn, args, kwargs):  # type: ignore[no-untyped-def]
        self.before(args[0])
        result = fn(*args, **kwargs)
        self.after(args[1])
        return result

    def before(self, src):  # type: ignore[no-untyped-def]
        path = os.fspath(src)
        return self.cached(path, os.stat(path), False)

    def after(self, dst):  # type: ignore[no-untyped-def]
        path = os.fspath(dst)
        os.stat(path)
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()


def one(mode: str, rounds: int, switch_interval: float | None = None) -> None:
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)  # for @task and reproflow alike, in this process
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_file_tasks as b  # the flows

    b.meter_reproflow()  # in every run of every mode, @task's too (it meters reproflow's calls only)
    _patch(mode)
    root = Path(tempfile.mkdtemp(prefix="ablate-", dir=b._ROOT))
    warm = b.inputs(root, 10)
    for name in b.FLOWS:
        b.timed(name, warm, root / "out", fresh=False)
    srcs = b.inputs(root, 100)
    res: dict[str, list[tuple[float, float, float, int]]] = {"@task": [], "declared": []}
    for r in range(rounds):
        for v in (["@task", "declared"] if r % 2 else ["declared", "@task"]):
            b.settle(60, interval=0.5)
            res[v].append(b.timed(v, srcs, root / "out", fresh=False))
    base_w = statistics.median(x[0] for x in res["@task"])
    base_c = statistics.median(x[1] for x in res["@task"])
    d = res["declared"]
    print(f"RESULT {mode} {statistics.median(x[0] for x in d) / base_w:.3f} "
          f"{statistics.median(x[1] for x in d) / base_c:.3f} {1000 * statistics.median(x[2] for x in d) / 100:.3f}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval in each mode's process (Python's default: 0.005 s)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.rounds, args.switch_interval)
        return
    interval = f", switch interval {args.switch_interval} s" if args.switch_interval is not None else ""
    print(f"ablate_file_tasks: 100 declared file tasks, warm cache, {args.rounds} alternating rounds per mode"
          f"{interval} (load average {os.getloadavg()[0]:.1f})")
    print(f"  {'mode':<16} {'wall x':>7} {'CPU x':>7} {'reproflow CPU/task':>19}")
    for mode in args.modes:
        extra = ["--switch-interval", str(args.switch_interval)] if args.switch_interval is not None else []
        out = subprocess.run([sys.executable, __file__, "--one", mode, "--rounds", str(args.rounds), *extra],
                             capture_output=True, text=True, check=False)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(f"  {mode:<16} failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
            continue
        _, _, wall, cpu, own = line.split()
        print(f"  {mode:<16} {float(wall):6.3f}x {float(cpu):6.3f}x {float(own):15.3f} ms", flush=True)


if __name__ == "__main__":
    main()
