"""A Prefect flow inside a package, run as ``python -m pipeline.main 3`` from the repository root:
it imports a sibling module relatively (``from .helpers import ...``), which only works when the
module runs as part of its package, and a task returns an instance of a dataclass defined in this
module (``__main__`` while it runs)."""
import sys
from dataclasses import dataclass
from pathlib import Path

from prefect import flow

from reproflow import repro_task

from .helpers import words


@dataclass
class Counts:
    words: int
    longest: str


@repro_task
def count(src: Path, top: int) -> Counts:
    ws = words(src.read_text())
    return Counts(words=len(ws), longest=sorted(ws, key=lambda w: (-len(w), w))[:top][-1])


@repro_task
def save(counts: Counts, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"{counts.words} {counts.longest}\n")
    return out


@flow
def module_flow(top: int = 1, src: Path = Path("data/text.txt")) -> Path:
    return save(count(src, top), Path("out") / "counts.txt")


if __name__ == "__main__":
    module_flow(top=int(sys.argv[1]))
