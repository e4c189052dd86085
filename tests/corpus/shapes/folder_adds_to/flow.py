"""A folder that exists before the run (holding a file the run did not write, kept out of git)
and that the run adds files to (issue 10, shape 1): its state before the run is in no snapshot
and its original path now holds the run's outputs too."""
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task
def tally(src: Path, out_dir: Path) -> int:
    notes = sorted(p.name for p in out_dir.iterdir())
    words = src.read_text().split()
    (out_dir / "tally.txt").write_text(f"{len(words)} words; found {', '.join(notes)}\n")
    return len(words)


@repro_task
def shout(src: Path, out_dir: Path) -> None:
    (out_dir / "upper.txt").write_text(src.read_text().upper())


@flow
def pipeline(src: Path = Path("data/words.txt"), out_dir: Path = Path("results")) -> None:
    tally(src, out_dir)
    shout(src, out_dir)


if __name__ == "__main__":
    pipeline()
