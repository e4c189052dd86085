"""`.map` into one output folder, then a task that reads the whole folder (issue 10, shape 1):
mapped tasks run at the same time, so each may see (and record) its siblings' files."""
from pathlib import Path

from prefect import flow, unmapped

from reproflow import repro_task


@repro_task
def write_part(line: str, i: int, out_dir: Path) -> None:
    (out_dir / f"part-{i}.txt").write_text(line.upper())


@repro_task
def combine(out_dir: Path) -> str:
    return "|".join(p.read_text() for p in sorted(out_dir.glob("part-*.txt")))


@flow
def pipeline(src: Path = Path("data/lines.txt"), out_dir: Path = Path("results")) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = src.read_text().splitlines()
    parts = write_part.map(lines, list(range(len(lines))), unmapped(out_dir))
    parts.wait()
    return combine(out_dir, wait_for=parts)


if __name__ == "__main__":
    pipeline()
