"""The flow body itself writes files that tasks then read: the run's settings dumped to JSON, a
data file generated when it is missing, and a folder of lookup files (none is written by a task)."""
import json
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task
def scale(src: Path, settings: Path) -> list[float]:
    factor = json.loads(settings.read_text())["factor"]
    return [float(x) * factor for x in src.read_text().split()]


@repro_task
def offset(values: list[float]) -> list[float]:
    base = float(Path("out/base.txt").read_text())  # written by the flow body, not named here
    return [v + base for v in values]


@repro_task
def label(values: list[float], lookup: Path) -> list[str]:
    names = {p.stem: p.read_text().strip() for p in sorted(lookup.iterdir())}
    return [names["high"] if v > 104 else names["low"] for v in values]


@repro_task
def save(values: list[float], labels: list[str], dst: Path) -> None:
    dst.write_text("\n".join(f"{v:.2f} {n}" for v, n in zip(values, labels)) + "\n")


@flow
def body_writes(src: Path = Path("data/values.txt"), factor: float = 2.5) -> None:
    out = Path("out")
    out.mkdir(exist_ok=True)
    settings = out / "settings.json"
    settings.write_text(json.dumps({"factor": factor}))
    base = out / "base.txt"
    if not base.exists():
        base.write_text("100\n")
    lookup = out / "lookup"
    lookup.mkdir(exist_ok=True)
    (lookup / "low.txt").write_text("low\n")
    (lookup / "high.txt").write_text("high\n")
    values = offset(scale(src, settings))
    save(values, label(values, lookup), out / "result.txt")


if __name__ == "__main__":
    body_writes()
