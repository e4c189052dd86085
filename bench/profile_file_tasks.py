"""Where reproflow's own CPU per file task goes inside a real flow: bench_file_tasks.py's flows,
with more of reproflow's per-task functions metered.

    cd bench && python profile_file_tasks.py declared|inferred fresh|warm [--rounds 5]

Prints the reproflow CPU per task (as bench_file_tasks.py meters it) of each round, then the
thread CPU per task inside each metered function (nested ones are inside their callers' figures;
the record's build and write run on the writer thread). Compare a stage here with the same stage
in ``bench_attempt.py`` (one thread, no Prefect) to see what the flow's other threads add to it.
"""

from __future__ import annotations

import argparse
import collections
import functools
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_file_tasks as b  # noqa: E402  (the flows, the variants)

_acc: dict[str, int] = collections.defaultdict(int)
_cnt: dict[str, int] = collections.defaultdict(int)
_lock = threading.Lock()


def _meter(owner, name: str) -> None:  # type: ignore[no-untyped-def]
    fn = getattr(owner, name)
    label = f"{getattr(owner, '__name__', owner)}.{name}"

    @functools.wraps(fn)
    def metered(*args, **kwargs):  # type: ignore[no-untyped-def]
        t0 = time.thread_time_ns()
        try:
            return fn(*args, **kwargs)
        finally:
            dt = time.thread_time_ns() - t0
            with _lock:
                _acc[label] += dt
                _cnt[label] += 1

    setattr(owner, name, metered)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant", choices=["declared", "inferred"])
    parser.add_argument("cache", choices=["fresh", "warm"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args()

    from reproflow.engines.prefect import _task
    from reproflow.recorder import _attempt
    from reproflow.store import Store

    b.meter_reproflow()  # reproflow's entry points, as bench_file_tasks.py meters them
    for name in ("_hash_signed", "_collect_outputs", "_write", "_typed_params", "_stop_watching",
                 "_note_written_in_run", "watch", "_done_watching", "__init__"):
        _meter(_attempt._Attempt, name)
    for name in ("hash_mapping", "task_record_bytes", "context_at_task_end", "get_context", "bind_arguments",
                 "hash_or_reason", "stat_signature", "get_store", "source_file", "env_seed"):
        _meter(_attempt, name)
    _meter(Store, "write_task_bytes")
    _meter(_task, "place_of")

    fresh = args.cache == "fresh"
    root = Path(tempfile.mkdtemp(prefix="profile-", dir=b._ROOT))
    b.timed(args.variant, b.inputs(root, 10), root / "out", fresh=False)  # warm-up: server, imports, capture
    srcs = b.inputs(root, args.tasks)
    b.timed(args.variant, srcs, root / "out", fresh=fresh)
    _acc.clear()
    _cnt.clear()
    owns = []
    for _ in range(args.rounds):
        b.settle(60)
        owns.append(b.timed(args.variant, srcs, root / "out", fresh=fresh)[2])
    n = args.tasks
    print(f"{args.variant}, {args.cache}: reproflow CPU/task median {1000 * statistics.median(owns) / n:.3f} ms "
          f"(rounds: {' '.join(f'{1000 * o / n:.3f}' for o in owns)})")
    total = args.rounds * n
    for label in sorted(_acc, key=lambda k: -_acc[k]):
        print(f"  {label:<48} {_acc[label] / total / 1e3:7.1f} us/task ({_cnt[label] / total:.1f} calls)")


if __name__ == "__main__":
    main()
