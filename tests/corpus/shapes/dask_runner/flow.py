"""Scale-out: a flow on Prefect's Dask task runner (a LocalCluster of two worker processes), mapping a
task over data files that writes one file each, slowly (line by line, as a long job writes its
log), into an output folder the flow body makes, then a task reading the whole folder. Tasks run
in the workers' processes, not the flow's: a task's hook on open cannot see the writes of the
task running beside it in the other worker, whose file it finds half written when it ends."""
import time
from pathlib import Path

from prefect import flow
from prefect_dask import DaskTaskRunner

from reproflow import repro_task


@repro_task
def count(src: Path, out_dir: Path) -> int:
    words = src.read_text().split()
    with open(out_dir / f"{src.stem}.count", "w") as fh:
        for i, word in enumerate(words):
            fh.write(f"{i} {word}\n")
            fh.flush()
            time.sleep(0.05)
    return len(words)


@repro_task
def total(out_dir: Path, report: Path) -> int:
    n = sum(len(p.read_text().splitlines()) for p in sorted(out_dir.glob("*.count")))
    report.write_text(f"total {n}\n")
    return n


@flow(task_runner=DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True,
                                                 "dashboard_address": None}))
def scale_out(data: Path = Path("data"), out_dir: Path = Path("out/counts")) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = count.map(sorted(data.glob("*.txt")), out_dir)
    return total.submit(out_dir, Path("out/report.txt"), wait_for=counts).result()


if __name__ == "__main__":
    scale_out()
