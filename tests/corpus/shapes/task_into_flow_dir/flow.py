"""`replay --task write_upper`, where write_upper writes into a folder the flow body made
(issue 10, shape 6): a partial replay skips the flow body, so the folder must be made for it."""
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task
def count(src: Path) -> int:
    return len(src.read_text().split())


@repro_task
def write_upper(src: Path, dest: Path) -> int:
    dest.write_text(src.read_text().upper())
    return len(dest.read_text())


@flow
def pipeline(src: Path = Path("data/words.txt"), run_dir: Path = Path("results/run-1")) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    count(src)
    write_upper(src, run_dir / "upper.txt")


if __name__ == "__main__":
    pipeline()
