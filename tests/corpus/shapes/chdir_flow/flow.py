"""A script that moves into its own folder first, so it can be run from anywhere
(os.chdir(Path(__file__).parent) at import), and a task that changes into a work folder to run a
step there (contextlib.chdir), writing relative names inside it."""
import contextlib
import os
from pathlib import Path

from prefect import flow

from reproflow import repro_task

os.chdir(Path(__file__).resolve().parent)


@repro_task
def count_lines(src: Path) -> int:
    return len(src.read_text().splitlines())


@repro_task
def build(n: int, work: Path) -> str:
    work.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(work):
        Path("lines.txt").write_text(f"{n}\n")
        with open("notes.txt", "w") as fh:
            fh.write("built in " + os.path.basename(os.getcwd()) + "\n")
        return Path("lines.txt").read_text().strip()


@repro_task
def report(value: str, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(f"lines: {value}\n")


@flow
def chdir_pipeline(src: Path = Path("data/in.txt"), work: Path = Path("out/work")) -> None:
    report(build(count_lines(src), work), Path("out/report.txt"))


if __name__ == "__main__":
    chdir_pipeline()
