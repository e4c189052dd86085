"""One script, two flow runs (a sweep over output targets): the same declared output takes a
file in the first run and a folder in the second, which by then holds the first run's file.
The second run's task must own only the files it wrote there: the first run's file is not in
a replay of the second run, and a replay that expected it would call it missing."""
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task(inputs=["src"], outputs=["dst"])
def export(src: Path, dst: Path) -> int:
    lines = src.read_text().splitlines()
    if dst.suffix:  # one file
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text("\n".join(lines).upper())
    else:  # a folder: one file per line
        dst.mkdir(parents=True, exist_ok=True)
        for i, line in enumerate(lines):
            (dst / f"line-{i}.txt").write_text(line)
    return len(lines)


@flow
def pipeline(dst: Path) -> int:
    return export(Path("data/lines.txt"), dst)


if __name__ == "__main__":
    for target in (Path("results/summary.txt"), Path("results")):
        pipeline(target)
