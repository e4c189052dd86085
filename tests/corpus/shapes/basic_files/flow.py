"""The plain shape the suite always had: declared input file, declared output file, a result."""
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task(inputs=["src"], outputs=["dst"])
def shout(src: Path, dst: Path) -> int:
    text = src.read_text()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text.upper())
    return len(text.split())


@repro_task
def double(n: int) -> int:
    return 2 * n


@flow
def basic(src: Path = Path("data/in.txt"), dst: Path = Path("out/upper.txt")) -> int:
    return double(shout(src, dst))


if __name__ == "__main__":
    basic()
