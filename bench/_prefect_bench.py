"""What the flow benchmarks share: a fair Prefect and a quiet server between measured runs.

Importing this module switches off Prefect 3.8's flow-run heartbeat for every variant: its
thread sleeps in 1 s steps and is joined when a flow ends, which rounds each flow's wall time up
to its next whole second (+0..1 s) and would decide a ratio by chance. The setting cannot be
None from the environment.
"""

from __future__ import annotations

import collections
import functools
import gc
import re
import threading
import time

from prefect.flow_engine import BaseFlowRunEngine

from _servers import local_server

BaseFlowRunEngine.heartbeat_seconds = property(lambda self: None)  # type: ignore[assignment,method-assign]


def settle(timeout: float = 30.0, interval: float = 0.3) -> None:
    """Wait until reproflow has published the last run's Prefect artifacts and the Prefect
    server (the temporary one, a child process, or a real one on this machine that
    ``PREFECT_API_URL`` names: :func:`_servers.local_server`) has worked off its event backlog (under
    5% CPU), so no
    measured run pays for the one before it; then collect the garbage of the runs before.

    The collection: a full (oldest-generation) collection walks the whole heap, most of it
    Prefect's, 0.2-0.5 s on the 2-core machine, and comes about every 4-5 flow runs here, on
    whichever run crosses CPython's threshold. With a full collection every 4 runs and the
    variants' order rotated each round, the same variant takes it round after round (run k is
    variant (k + k // 5) mod 5 of 5: runs 4, 8, 12, 16 and 20 are all the fifth): "inferred,
    warm" came out 1.32-1.42x of ``@task`` with 1.5x its process CPU on the idle machine, with
    no more reproflow CPU per task than the others (issue 16). Every measured run now starts
    with nothing pending, and :func:`full_collections` counts those that still come during one
    (a run that promotes more objects than a quarter of the heap)."""
    import psutil

    from reproflow.engines.prefect._artifacts import wait_for_artifacts

    wait_for_artifacts(timeout)  # the last run's artifacts, published after its flow returned
    counted = _FULL["n"]
    gc.collect()
    _FULL["n"] = counted
    me = psutil.Process()
    server = local_server()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = me.children(recursive=True) + server
        for k in kids:
            try:
                k.cpu_percent(None)
            except psutil.Error:
                pass
        time.sleep(interval)
        busy = 0.0
        for k in kids:
            try:
                busy += k.cpu_percent(None)
            except psutil.Error:
                pass
        if busy < 5.0:
            return


_FULL = {"n": 0}


def _count_full(phase: str, info: dict) -> None:  # type: ignore[type-arg]
    if phase == "stop" and info.get("generation") == 2:
        _FULL["n"] += 1


gc.callbacks.append(_count_full)


def full_collections() -> int:
    """Full (oldest-generation) garbage collections in this process so far, ``settle``'s own
    left out."""
    return _FULL["n"]


# ---------------------------------------------------------------- reproflow's own CPU per task
#: One ``[CPU nanoseconds, depth]`` per thread that entered a metered call (see meter_reproflow):
#: each thread adds to its own, so a metered call takes no lock that a hundred task threads
#: would share (the lock is taken once per thread, and by own_cpu()).
_ACCS: list[list[int]] = []
_accs_lock = threading.Lock()
_local = threading.local()
_thread_ns = time.thread_time_ns


def _acc() -> list[int]:
    try:
        return _local.acc  # type: ignore[no-any-return]
    except AttributeError:
        acc = _local.acc = [0, 0]
        with _accs_lock:  # once per thread
            _ACCS.append(acc)
        return acc


def _metered(fn):  # type: ignore[no-untyped-def]
    """Add the calling thread's CPU time inside ``fn`` to its accumulator (outermost call only)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        acc = _acc()
        if acc[1]:
            return fn(*args, **kwargs)
        acc[1] = 1
        t0 = _thread_ns()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[0] += _thread_ns() - t0
            acc[1] = 0

    return wrapper


def reset_own_cpu() -> None:
    """Between runs (no metered call in flight)."""
    with _accs_lock:
        for acc in _ACCS:
            acc[0] = 0


def own_cpu() -> float:
    """CPU seconds inside reproflow's per-task calls since the last reset_own_cpu()."""
    with _accs_lock:
        return sum(acc[0] for acc in _ACCS) / 1e9


#: (owner, attribute, the original, its metered wrapper) for each metered entry point
_METERED: list[tuple[object, str, object, object]] = []


def meter_reproflow(on: bool = True) -> None:
    """Wrap reproflow's per-task entry points (the attempt recorder and the record writes) so
    own_cpu() sums their thread CPU time; ``on=False`` puts the originals back.

    Metering is not free: two reads of the thread's CPU clock (a system call) around each of a
    task's four or five calls, on a hundred task threads. A bench that reports wall time should
    measure it with metering off and reproflow's CPU in runs of their own with it on
    (bench_file_tasks.py does)."""
    if not _METERED:
        from reproflow.engines.prefect import _task
        from reproflow.recorder import _attempt
        from reproflow.store import Store

        targets: list[tuple[object, str]] = [(_task, "_prefect_attempt")]
        # _publish: a record written where it was made
        targets += [(_task._Attempt, name) for name in ("begin", "success", "failure", "_publish")]
        # on the writer thread: each record built, then each batch of them written
        targets.append((_attempt, "_encode_task_record"))
        targets += [(Store, name) for name in ("write_task", "write_task_batch", "write_map")]
        for owner, name in targets:
            fn = getattr(owner, name)
            _METERED.append((owner, name, fn, _metered(fn)))
    for owner, name, fn, wrapped in _METERED:
        setattr(owner, name, wrapped if on else fn)


# ---------------------------------------------------------------- CPU per kind of thread
#: CPU seconds of the threads that ended since this module was imported, per kind of thread.
_ENDED: collections.Counter[str] = collections.Counter()
_ended_lock = threading.Lock()
#: thread name (its numbers dropped) -> the kind printed
KINDS = {"ThreadPoolExecutor": "task threads", "MainThread": "flow thread", "reproflow-writer": "record writer",
         "reproflow-artifacts": "artifacts (after the flow returns)", "GlobalEventLoopThread": "Prefect's loops",
         "RunSyncEventLoopThread": "Prefect's loops", "EventsWorkerThread": "Prefect's loops"}


def _kind(name: str) -> str:
    return KINDS.get(re.sub(r"[-_]?\d+(_\d+)?$", "", name), "other")


_run = threading.Thread.run


def _counted_run(self: threading.Thread) -> None:
    try:
        _run(self)
    finally:
        spent = time.thread_time()
        with _ended_lock:
            _ENDED[_kind(self.name)] += spent


threading.Thread.run = _counted_run  # type: ignore[method-assign]


def thread_cpu() -> collections.Counter[str]:
    """CPU seconds so far per kind of thread (see KINDS): the live threads' own CPU clocks, and
    what the threads that ended (started after this module was imported) had spent."""
    with _ended_lock:
        out = collections.Counter(_ENDED)
    for t in threading.enumerate():
        try:
            out[_kind(t.name)] += time.clock_gettime(time.pthread_getcpuclockid(t.ident))  # type: ignore[arg-type]
        except (OSError, TypeError, AttributeError):
            pass  # ended meanwhile (counted above), or no per-thread clocks here
    return out
