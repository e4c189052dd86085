"""Prefect's ProcessPoolTaskRunner: task runs execute in worker processes, which record them
themselves, as Dask's workers do (docs/scale.md). Mapped tasks write their files slowly into one
folder: a worker's audit hook cannot see the other worker's writes, and a task must not record
the file the other worker is still writing as its own output (it did, half written: a false
"differs" at replay, as on Dask)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reproflow.records import ProcessContext
from reproflow.store import Store

pytestmark = pytest.mark.slow

#: The corpus's Dask shape (mapped tasks writing their files line by line into one folder, then
#: a task reading the folder), its Dask runner swapped for a process pool of two workers.
DASK_SHAPE = Path(__file__).resolve().parent / "corpus" / "shapes" / "dask_runner" / "flow.py"


def _process_pool_flow() -> str:
    text = DASK_SHAPE.read_text()
    swapped = re.sub(r"DaskTaskRunner\(cluster_kwargs=\{.*?\}\)", "ProcessPoolTaskRunner(max_workers=2)", text, flags=re.S)
    swapped = swapped.replace("from prefect_dask import DaskTaskRunner",
                              "from prefect.task_runners import ProcessPoolTaskRunner")
    assert "Dask" not in swapped.split('"""', 2)[2], "the Dask shape changed: swap its runner here too"
    return swapped.replace("    scale_out()", "    print(scale_out())")


def test_process_pool_workers_record_each_task_with_its_own_file(tmp_path: Path, prefect_api_env: dict[str, str]) -> None:
    (tmp_path / "data").mkdir()
    # files of 4, 8, 12 and 16 lines: a task ends while the other worker's is half written
    words = {f"f{i}": " ".join(f"w{i}{j}" for j in range(4 + 4 * i)) for i in range(4)}
    for name, text in words.items():
        (tmp_path / "data" / f"{name}.txt").write_text(text + "\n")
    (tmp_path / "flow.py").write_text(_process_pool_flow())
    store_url = str(tmp_path / "store")
    env = {**os.environ, **prefect_api_env, "REPROFLOW_STORE": store_url, "PREFECT_LOGGING_LEVEL": "WARNING"}
    proc = subprocess.run([sys.executable, "flow.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "40", proc.stdout + proc.stderr

    store = Store(store_url)
    [run_id] = store.run_ids()
    run = store.load_run(run_id)
    tasks = [t for t in run.final_tasks() if t.task_name == "count"]
    assert run.status == "COMPLETED" and sorted(t.map_index for t in tasks) == [0, 1, 2, 3]
    pids = {store.get_model_blob(t.context, ProcessContext).pid for t in tasks if t.context}
    flow_pid = store.get_model_blob(run.record.context, ProcessContext).pid
    assert flow_pid and len(pids) == 2 and flow_pid not in pids  # both workers ran tasks, never the flow's process
    complete = {f"f{i}.count": hashlib.sha256("".join(f"{j} w{i}{j}\n" for j in range(4 + 4 * i)).encode()).hexdigest()
                for i in range(4)}
    for t in tasks:
        got = {Path(r.uri).name: (r.kind, r.sha256) for r in t.outputs}
        # its own file, complete; a file another worker finished while this task ran may be
        # there too (complete: the replay compares it with what it wrote there), but never one
        # another worker was still writing
        assert got.get(f"f{t.map_index}.count") == ("file", complete[f"f{t.map_index}.count"]), got
        assert all(kind == "file" and digest == complete[name] for name, (kind, digest) in got.items()), got
