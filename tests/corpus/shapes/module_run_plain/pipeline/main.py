"""Plain Python in a package, run as ``python -m pipeline.main 2``: a ``with reproflow.record():``
block calling ``@repro_task`` functions, and a relative import of a sibling module."""
import sys
from pathlib import Path

import reproflow
from reproflow import repro_task

from .helpers import words


@repro_task
def repeat(src: Path, times: int, dst: Path) -> int:
    text = " ".join(words(src.read_text()) * times)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text)
    return len(text)


if __name__ == "__main__":
    with reproflow.record():
        print(repeat(Path("data/a.txt"), int(sys.argv[1]), Path("out/a.txt")))
