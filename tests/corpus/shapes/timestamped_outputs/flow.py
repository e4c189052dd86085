"""Outputs stamped with the time, as reports often are: a results folder named after the run's
start time (made by the flow body), and a report whose content holds datetime.now(). Neither can
repeat; the replay must say so, never call them reproduced."""
import json
from datetime import datetime
from pathlib import Path

from prefect import flow

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


@flow
def pipeline(src: Path = Path("data/values.txt")) -> None:
    out_dir = Path("results") / datetime.now().strftime("run-%Y%m%d-%H%M%S-%f")
    out_dir.mkdir(parents=True)
    value = total(src)
    write_report(value, out_dir)
    write_value(value, out_dir)


if __name__ == "__main__":
    pipeline()
