"""Files the run changes after another task made them: a log started by one task and appended to
by the next ones, a tracked history file each run appends a line to, and a cleanup task deleting
the intermediate file an earlier task wrote."""
from pathlib import Path

from prefect import flow

from reproflow import repro_task

LOG = Path("out/run.log")


@repro_task
def start(src: Path, tmp: Path) -> None:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    LOG.write_text("start\n")
    tmp.write_text(src.read_text().upper())


@repro_task
def step(name: str, tmp: Path) -> int:
    n = len(tmp.read_text().split())
    with LOG.open("a") as fh:
        fh.write(f"{name}: {n}\n")
    return n


@repro_task
def record_history(total: int, history: Path) -> None:
    with history.open("a") as fh:
        fh.write(f"total,{total}\n")


@repro_task
def cleanup(tmp: Path) -> None:
    tmp.unlink()


@flow
def appender(src: Path = Path("data/in.txt"), history: Path = Path("data/history.csv")) -> None:
    tmp = Path("out/intermediate.txt")
    start(src, tmp)
    a = step("first", tmp)
    b = step("second", tmp)
    record_history(a + b, history)
    cleanup(tmp)


if __name__ == "__main__":
    appender()
