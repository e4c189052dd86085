"""The flow body itself writes files that tasks then read: the run's settings dumped to JSON, a
data file generated when it is missing, and a folder of lookup files (none is written by a task).
And data shipped as an archive, unpacked by the flow body as pipelines that download a dataset
do: tarfile's extractall and shutil.copy2 give each file the time stamp it had in the archive or
the source (years old), not the time it was written; the run wrote those files all the same."""
import json
import shutil
import tarfile
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


@repro_task
def total(table: Path) -> float:
    rows = table.read_text().split("\n")[1:]
    return sum(float(r.split(",")[1]) for r in rows if r)


@repro_task
def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


@repro_task
def rescale(value: float, factor_file: Path, dest: Path) -> Path:
    dest.write_text(f"{value * float(factor_file.read_text().split()[1])}\n")
    return dest


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
    with tarfile.open("data/raw.tar.gz") as tar:
        tar.extractall(out, filter="data")  # the members' mtimes, from 2020
    shutil.copy2("data/factor.txt", out / "factor.txt")  # the source's mtime
    count_files(out / "raw")
    rescale(total(out / "raw" / "values.csv"), out / "factor.txt", out / "rescaled.txt")


if __name__ == "__main__":
    body_writes()
