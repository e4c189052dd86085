"""An output folder passed as a flow parameter and made by the flow body with a plain ``mkdir()``
(no ``exist_ok``): the folder must not exist when the flow starts, so a replay that recreated it
empty before the flow ran made the flow body fail (issue 10)."""
import json
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task
def split(src: Path, out_dir: Path) -> list[Path]:
    parts = []
    for i, line in enumerate(src.read_text().splitlines()):
        p = out_dir / f"part-{i}.txt"
        p.write_text(line.upper())
        parts.append(p)
    return parts


@repro_task
def summarize(parts: list[Path], out_dir: Path) -> Path:
    dest = out_dir / "summary.json"
    dest.write_text(json.dumps({p.name: len(p.read_text()) for p in parts}, sort_keys=True))
    return dest


@flow
def pipeline(src: Path = Path("data/lines.txt"), out_dir: Path = Path("results") / "today") -> None:
    out_dir.mkdir(parents=True)
    parts = split(src, out_dir)
    summarize(parts, out_dir)


if __name__ == "__main__":
    pipeline()
