"""How fast is `reproflow runs list` with 1,000 runs in the store? (10 runs as the baseline.)

    python bench/bench_runs_list.py [--runs 1000] [--baseline 10] [--tasks 5] [--repeats 5] [--store URL]

Each store is filled through the Store API the way a recorded flow fills it: one real captured
process context (environment, git, hardware) shared by the runs, then per run ``run.json``,
``--tasks`` task records, ``end.json`` and the run's index entry. Then, for both stores, the
median of ``--repeats`` timings of:

* ``Store.list_runs()`` (the library call),
* ``reproflow runs list`` in-process through the CLI (table, and ``--json``), output discarded,
* ``reproflow runs list`` as a subprocess (the installed entry point: interpreter start and
  imports included), output discarded.

``--store`` puts both stores under another fsspec URL (a fresh folder is used by default).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import os
import posixpath
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

from reproflow.cli._common import run_cli
from reproflow.cli import app
from reproflow.records import DataRef, RunEnd, RunRecord, RunSummary, TaskRecord
from reproflow.store import Store

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def fill(url: str, n_runs: int, n_tasks: int) -> Store:
    """A store with ``n_runs`` complete runs of ``n_tasks`` tasks each, written as a flow would."""
    from reproflow.capture import get_context

    store = Store(url)
    context, _ = get_context(store, entry_file=os.path.abspath(__file__))
    for i in range(n_runs):
        run_id = str(uuid.uuid4())
        started = T0 + dt.timedelta(minutes=i)
        store.write_run(RunRecord(run_id=run_id, flow_name=f"etl-{i % 7}", flow_run_name=f"run-{i}", context=context,
                                  started_at=started, parameters={"n": i, "path": f"/data/in-{i}.csv"},
                                  entrypoint="flows/etl.py:etl", engine="prefect"))
        for j in range(n_tasks):
            ref = DataRef(uri=f"/data/part-{i}-{j}.parquet", sha256=uuid.uuid4().hex * 2, size=1024 * j, param="path")
            store.write_task(TaskRecord(run_id=run_id, task_run_id=str(uuid.uuid4()), task_name=f"step{j}",
                                        task_key=f"step{j}-abc", function=f"flows.etl:step{j}", state="COMPLETED",
                                        started_at=started, ended_at=started, duration_s=0.01, context=context,
                                        parameters={"i": j}, parameters_hash=uuid.uuid4().hex, inputs=[ref],
                                        result_hash=uuid.uuid4().hex, engine="prefect"))
        end = RunEnd(run_id=run_id, status="COMPLETED" if i % 10 else "FAILED", ended_at=started, n_tasks=n_tasks)
        store.write_run_end(end, RunSummary(run_id=run_id, flow_name=f"etl-{i % 7}", started_at=started,
                                            ended_at=started, status=end.status, dirty=False, commit="0" * 40,
                                            n_tasks=n_tasks))
    return store


def median_time(fn: Callable[[], None], repeats: int) -> tuple[float, list[float]]:
    """Median wall time of ``repeats`` calls, after one warm-up call (imports, caches)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def library_call(url: str, n: int) -> Callable[[], None]:
    def go() -> None:
        assert len(Store(url).list_runs()) == n

    return go


def cli_in_process(url: str, *extra: str) -> Callable[[], None]:
    def go() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            code = run_cli(app, ["runs", "list", "--store", url, *extra])
        assert code == 0, code

    return go


def cli_subprocess(url: str) -> Callable[[], None]:
    exe = shutil.which("reproflow", path=os.path.dirname(sys.executable)) or shutil.which("reproflow")
    cmd = [exe, "runs", "list", "--store", url] if exe else [sys.executable, "-m", "reproflow.cli", "runs", "list", "--store", url]

    def go() -> None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "160"})

    return go


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--store", default=None, help="parent URL for the two stores (default: a temp folder)")
    args = parser.parse_args()
    parent = args.store or tempfile.mkdtemp(prefix="bench-runs-list-")
    results: dict[int, dict[str, float]] = {}
    for n in (args.baseline, args.runs):
        url = posixpath.join(parent, f"store-{n}")
        t0 = time.perf_counter()
        store = fill(url, n, args.tasks)
        fill_s = time.perf_counter() - t0
        assert len(store.list_runs()) == n
        row = {"fill": fill_s}
        row["Store.list_runs()"], _ = median_time(library_call(url, n), args.repeats)
        row["runs list (in-process, table)"], _ = median_time(cli_in_process(url), args.repeats)
        row["runs list (in-process, --json)"], _ = median_time(cli_in_process(url, "--json"), args.repeats)
        row["runs list (subprocess, table)"], _ = median_time(cli_subprocess(url), args.repeats)
        results[n] = row
    print(f"bench_runs_list (python {sys.version.split()[0]}, store under {parent}, {args.tasks} tasks/run, "
          f"median of {args.repeats})")
    b, big = args.baseline, args.runs
    print(f"  {'':34} {b:>8} runs {big:>8} runs   ratio   per extra run")
    for key in results[b]:
        if key == "fill":
            continue
        x, y = results[b][key], results[big][key]
        print(f"  {key:34} {1000 * x:10.1f} ms {1000 * y:10.1f} ms {y / x:6.1f}x {1e6 * (y - x) / (big - b):9.0f} us")
    print(f"  (writing the stores took {results[b]['fill']:.1f} s and {results[big]['fill']:.1f} s)")
    if not args.store:
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
