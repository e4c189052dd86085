"""`.map` into one output folder, then a task that reads the whole folder (issue 10, shape 1):
mapped tasks run at the same time, so each may see (and record) its siblings' files. The same
with the folder declared as the tasks' output (`outputs=["out_dir"]`), made by the tasks
themselves: each recorded the whole folder, with the siblings' files that were complete when
it ended, so its verdict depended on how long each task took (here a random jitter, as real
tasks' durations vary from run to run; what they write does not)."""
import random
import time
from pathlib import Path

from prefect import flow, unmapped

from reproflow import repro_task


@repro_task
def write_part(line: str, i: int, out_dir: Path) -> None:
    (out_dir / f"part-{i}.txt").write_text(line.upper())


@repro_task(outputs=["out_dir"])
def write_reversed(line: str, i: int, out_dir: Path) -> None:
    time.sleep(random.uniform(0, 0.3))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"rev-{i}.txt").write_text(line[::-1])
    time.sleep(random.uniform(0, 0.3))


@repro_task
def combine(out_dir: Path) -> str:
    return "|".join(p.read_text() for p in sorted(out_dir.glob("**/*.txt")))


@flow
def pipeline(src: Path = Path("data/lines.txt"), out_dir: Path = Path("results")) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = src.read_text().splitlines()
    parts = write_part.map(lines, list(range(len(lines))), unmapped(out_dir))
    reversed_parts = write_reversed.map(lines, list(range(len(lines))), unmapped(out_dir / "reversed"))
    parts.wait()
    reversed_parts.wait()
    return combine(out_dir, wait_for=[*parts, *reversed_parts])


if __name__ == "__main__":
    pipeline()
