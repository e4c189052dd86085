"""Data shipped as an archive and unpacked by the flow body before the tasks run, as pipelines
that download a dataset do: tarfile's extractall and shutil.copy2 give each file the time stamp
it had in the archive or the source (years old), not the time it was written. The tasks read
the unpacked files; work/ is not in git and is removed after recording. The run wrote those
files itself, so the replay must run the flow body again and compare, not look for them before
the run as if they came from outside, and must never call a changed file reproduced."""
import shutil
import tarfile
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task
def total(table: Path) -> float:
    rows = table.read_text().split("\n")[1:]
    return sum(float(r.split(",")[1]) for r in rows if r)


@repro_task
def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


@repro_task
def scale(value: float, lookup: Path, dest: Path) -> Path:
    factor = float(lookup.read_text().split()[1])
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(f"{value * factor}\n")
    return dest


@flow
def pipeline(archive: Path = Path("data/raw.tar.gz"), work: Path = Path("work")) -> float:
    work.mkdir(exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")  # the members' mtimes, from 2020
    shutil.copy2("data/lookup.txt", work / "lookup.txt")  # the source's mtime
    value = total(work / "raw" / "values.csv")
    count_files(work / "raw")
    scale(value, work / "lookup.txt", Path("results") / "scaled.txt")
    return value


if __name__ == "__main__":
    pipeline()
