"""Outputs stamped with the time, as reports often are: a results folder named after the run's
start time (made by the flow body), and a report whose content holds datetime.now(). Neither can
repeat; the replay must say so, never call them reproduced. Outputs named after the Prefect run
instead (its flow run's name, a task run's id) are named anew by every run, and reproflow knows
both names: the same bytes there reproduce (they "differed": the file was missing, the returned
path another). An archive of the same rows, zipped with the clock as each member's time (as
zipfile's writestr and pandas' .csv.zip do), differs in those times alone, and so does a
figure saved as PDF by matplotlib, which writes the clock into its CreationDate: the replay says
so, not "nondeterminism"."""
import json
import zipfile
from datetime import datetime
from pathlib import Path

from prefect import flow, runtime

from reproflow import repro_task


@repro_task(inputs=["src"])
def total(src: Path) -> float:
    return sum(float(x) for x in src.read_text().split())


@repro_task
def write_report(value: float, out_dir: Path) -> Path:
    dest = out_dir / "report.json"
    dest.write_text(json.dumps({"total": value, "generated_at": datetime.now().isoformat()}))
    return dest


@repro_task
def write_value(value: float, out_dir: Path) -> Path:
    dest = out_dir / "total.txt"
    dest.write_text(f"{value}\n")
    return dest


@repro_task
def bundle(value: float, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("total.txt", f"{value}\n")


@repro_task
def plot(value: float, dest: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().bar(["total"], [value])
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest)


@repro_task
def write_named(value: float) -> Path:
    dest = Path("runs") / str(runtime.flow_run.name) / "total.txt"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(f"{value}\n")
    return dest


@repro_task
def write_by_id(value: float) -> None:
    Path("by_task_run").mkdir(exist_ok=True)
    Path("by_task_run", f"{runtime.task_run.id}.txt").write_text(f"{value}\n")


@flow
def pipeline(src: Path = Path("data/values.txt")) -> None:
    out_dir = Path("results") / datetime.now().strftime("run-%Y%m%d-%H%M%S-%f")
    out_dir.mkdir(parents=True)
    value = total(src)
    write_report(value, out_dir)
    write_value(value, out_dir)
    write_named(value)
    bundle(value, Path("archive/total.zip"))
    plot(value, Path("figures/total.pdf"))
    write_by_id(value)


if __name__ == "__main__":
    pipeline()
