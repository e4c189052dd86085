"""An output folder outside the repository (an absolute path, as for a scratch disk), made by the
flow body and written by several tasks (issue 10, shape 1, outside the source root): the replay
uses it in place, so what the recorded run wrote there must be taken out first."""
import json
from pathlib import Path

from prefect import flow

from reproflow import repro_task

SCRATCH = Path(__file__).resolve().parent.parent / "scratch" / "results"


@repro_task
def split(src: Path, out_dir: Path) -> int:
    lines = src.read_text().splitlines()
    for i, line in enumerate(lines):
        (out_dir / f"part-{i}.txt").write_text(line.upper())
    return len(lines)


@repro_task
def summarize(n: int, out_dir: Path) -> None:
    parts = sorted(out_dir.glob("*.txt"))  # every file there: leftovers would change it
    (out_dir / "summary.json").write_text(json.dumps({p.name: p.read_text() for p in parts}, sort_keys=True))


@flow
def pipeline(src: Path = Path("data/lines.txt"), out_dir: Path = SCRATCH) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    summarize(split(src, out_dir), out_dir)


if __name__ == "__main__":
    pipeline()
