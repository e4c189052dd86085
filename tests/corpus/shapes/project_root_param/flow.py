"""The project's root folder passed to the tasks as a base folder (``HERE = Path(__file__)
.parent``, the body reading ``base / "data" / ...`` and writing ``base / "out" / ...``), as
scripts written to run from anywhere do. The folder was hashed whole as the tasks' input: the
git repository, the store this run writes into, any virtual environment (seconds for a
``.venv``), so no restored checkout could match it and the replay refused the run."""
from pathlib import Path

from prefect import flow

from reproflow import repro_task

HERE = Path(__file__).resolve().parent


@repro_task
def load(base: Path) -> list[int]:
    return [int(x) for x in (base / "data" / "numbers.txt").read_text().split()]


@repro_task
def save(values: list[int], base: Path) -> int:
    out = base / "out"
    out.mkdir(exist_ok=True)
    (out / "total.txt").write_text(f"{sum(values)}\n")
    return sum(values)


@flow
def pipeline(base: Path = HERE) -> int:
    return save(load(base), base)


if __name__ == "__main__":
    print(pipeline())
