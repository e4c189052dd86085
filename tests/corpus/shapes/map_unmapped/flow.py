"""Mapped tasks with unmapped() arguments: a constant, a list, and another task's result
passed whole to every mapped run; the mapped results gathered by a downstream task."""
import json
from pathlib import Path

from prefect import flow, unmapped

from reproflow import repro_task


@repro_task(inputs=["src"])
def read_values(src: Path) -> list[float]:
    return [float(line) for line in src.read_text().split()]


@repro_task(inputs=["src"])
def read_config(src: Path) -> dict:
    return json.loads(src.read_text())


@repro_task
def scale(value: float, factor: float, labels: list[str], config: dict) -> dict:
    scaled = value * factor + config["offset"]
    return {"value": scaled, "label": labels[int(scaled > config["offset"])]}


@repro_task(outputs=["dst"])
def write(rows: list[dict], dst: Path) -> int:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(rows, sort_keys=True))
    return len(rows)


@flow
def pipeline(values: Path = Path("data/values.txt"), config: Path = Path("data/config.json")) -> int:
    cfg = read_config(config)
    rows = scale.map(read_values(values), factor=unmapped(2.5), labels=unmapped(["low", "high"]),
                     config=unmapped(cfg))
    return write(rows, Path("out/scaled.json"))


if __name__ == "__main__":
    pipeline()
