"""The system calls reproflow adds to a file task, counted by strace (issue 16).

    python bench/syscalls_file_tasks.py [--tasks 100] [--flows 3]

bench_file_tasks.py's flow of mapped file tasks (each reads one 1 KiB file and writes one), one
fresh process per variant (``@task``; ``declared`` and ``inferred``, each with a warm and a fresh
hash cache). After two warm-up flows, ``strace -f -c`` is attached to the process and ``--flows``
flows run back to back, each until reproflow's work for it is done (its end and its Prefect
artifacts, written after the flow returns, count too). Printed per variant: the calls per task of
each kind (stat, open, read, close, write, futex, all), and beside each reproflow variant its
difference to ``@task``.

Why count them: a task's reproflow CPU in a flow is several times what the same calls cost in one
thread (``bench_attempt.py``). Each file system call lets the GIL go, and with Prefect's task
threads waiting for it, it may be handed to another thread and back: the ``futex`` calls count
such hand-overs and the waits on locks, and vary with timing from run to run. What reproflow must
do for a file is what it
costs: an input's stat (and its bytes with a fresh cache), an output's bytes with a stat before
and after (a file still being written when the task ended is recorded unhashed), a missing
inferred path's lookup and an inferred input's stat after the task (was it changed in place?).
Counts do not depend on the machine's speed; ``strace`` slows the process, so no time is printed.

Needs ``strace`` (``apt-get install strace``) and permission to trace the process (root, or
``kernel.yama.ptrace_scope`` 0).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: the calls printed, each the sum of these strace names
KINDS = {
    "stat": ("newfstatat", "stat", "lstat", "fstat", "statx", "fstatat64", "stat64", "lstat64", "fstat64"),
    "open": ("openat", "open"),
    "read": ("read", "pread64"),
    "close": ("close",),
    "write": ("write", "pwrite64"),
    "futex": ("futex",),
}
CASES = [("@task", False), ("declared", False), ("declared", True), ("inferred", False), ("inferred", True)]
_LINE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def one(variant: str, fresh: bool, tasks: int, flows: int) -> None:
    """The child: warm up, say "ready", wait for a line on stdin (strace is attached then), run
    the measured flows, say "done", and wait for stdin to close (strace is detached then)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_file_tasks as b  # the flows and variants

    root = Path(tempfile.mkdtemp(prefix="syscalls-", dir=b._ROOT))
    srcs = b.inputs(root, tasks)
    for i in range(2):
        b.timed(variant, srcs, root / f"warm{i}", fresh=fresh)
    b.settle(60, interval=0.5)
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(flows):  # new output folders: no removal of the last flow's files counted
        b.timed(variant, srcs, root / f"out{i}", fresh=fresh)
    print("done", flush=True)
    sys.stdin.read()


def counts(strace_summary: str) -> dict[str, int]:
    """Calls by system call name, from ``strace -c`` output."""
    out: dict[str, int] = {}
    for line in strace_summary.splitlines():
        m = _LINE.match(line)
        if m and m.group(2) != "total":
            out[m.group(2)] = int(m.group(1))
    return out


def _until(lines: Any, word: str) -> bool:
    """Read the child's output up to a line that is ``word``; False at its end."""
    for line in lines:
        if line.strip() == word:
            return True
    return False


def measure(case: tuple[str, bool], tasks: int, flows: int) -> dict[str, float]:
    variant, fresh = case
    child = subprocess.Popen([sys.executable, __file__, "--one", variant, *(["--fresh"] if fresh else []),
                              "--tasks", str(tasks), "--flows", str(flows)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        if not _until(child.stdout, "ready"):
            raise SystemExit(f"the {variant} process failed before its flows (see its output above)")
        with tempfile.NamedTemporaryFile("r", suffix=".strace") as summary:
            tracer = subprocess.Popen(["strace", "-f", "-c", "-p", str(child.pid), "-o", summary.name],
                                      stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # attached to every thread before the first measured flow
            child.stdin.write("go\n")
            child.stdin.flush()
            if not _until(child.stdout, "done"):
                raise SystemExit(f"the {variant} process failed during its flows")
            tracer.send_signal(signal.SIGINT)  # detach: strace writes its summary
            tracer.wait(60)
            calls = counts(Path(summary.name).read_text())
    finally:
        child.stdin.close()
        child.wait(60)
    per = {kind: sum(calls.get(n, 0) for n in names) / (tasks * flows) for kind, names in KINDS.items()}
    per["all"] = sum(calls.values()) / (tasks * flows)
    return per


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--flows", type=int, default=3)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--fresh", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.fresh, args.tasks, args.flows)
        return
    if shutil.which("strace") is None:
        raise SystemExit("syscalls_file_tasks: strace is not installed (apt-get install strace)")
    print(f"syscalls_file_tasks (python {sys.version.split()[0]}, {os.cpu_count()} CPUs): {args.tasks} file tasks "
          f"a flow, {args.flows} flows per variant, system calls per task (in brackets: more than @task)", flush=True)
    kinds = [*KINDS, "all"]
    print(f"  {'variant':<18}" + "".join(f"{k:>16}" for k in kinds))
    base: dict[str, float] | None = None
    for case in CASES:
        per = measure(case, args.tasks, args.flows)
        name, fresh = case
        label = name if name == "@task" else f"{name}, {'fresh' if fresh else 'warm'}"
        if base is None:
            base = per
            cells = [f"{per[k]:16.1f}" for k in kinds]
        else:
            cells = [f"{per[k]:7.1f} [{per[k] - base[k]:+6.1f}]" for k in kinds]
        print(f"  {label:<18}" + "".join(cells), flush=True)


if __name__ == "__main__":
    main()
