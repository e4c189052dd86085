"""Tasks submitted to the task runner (.submit), ordered by wait_for where data passes through
a file rather than a return value, and a result gathered from futures."""
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task(inputs=["src"], outputs=["dst"])
def stage(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(src.read_text().upper())


@repro_task(inputs=["src"])
def count(src: Path, letter: str) -> int:
    return src.read_text().count(letter)


@repro_task
def total(counts: list[int]) -> int:
    return sum(counts)


@flow
def pipeline(src: Path = Path("data/colors.txt"), staged: Path = Path("work/colors.txt")) -> int:
    done = stage.submit(src, staged)
    counts = [count.submit(staged, letter, wait_for=[done]) for letter in "EN"]
    return total.submit(counts).result()


if __name__ == "__main__":
    pipeline()
