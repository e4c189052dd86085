"""A flow with no @repro_task of its own that calls one subflow twice, on two files (issue 10,
shape 4): the parent is the recorded run, both calls' tasks are in it."""
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task(inputs=["src"], outputs=["dst"])
def shout(src: Path, dst: Path) -> int:
    text = src.read_text()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text.upper())
    return len(text.split())


@flow
def convert(name: str) -> int:
    return shout(Path("data") / f"{name}.txt", Path("out") / f"{name}.txt")


@flow
def batch(names: list[str] = ["a", "b"]) -> int:
    return sum(convert(n) for n in names)


if __name__ == "__main__":
    batch()
