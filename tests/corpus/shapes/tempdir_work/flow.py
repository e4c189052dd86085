"""Intermediate files in a temporary folder the flow body makes (tempfile.TemporaryDirectory) and
deletes when the flow ends: a task splits the data into parts there, another merges them into
the one output kept in the repository."""
import tempfile
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task
def split(src: Path, scratch: Path) -> list[Path]:
    parts = []
    for i, line in enumerate(src.read_text().splitlines()):
        part = scratch / f"part-{i}.txt"
        part.write_text(line.upper() + "\n")
        parts.append(part)
    return parts


@repro_task
def merge(parts: list[Path], dst: Path) -> int:
    dst.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(p.read_text() for p in parts)
    dst.write_text(text)
    return len(text)


@flow
def scratch_pipeline(src: Path = Path("data/in.txt"), dst: Path = Path("out/merged.txt")) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return merge(split(src, Path(tmp)), dst)


if __name__ == "__main__":
    scratch_pipeline()
