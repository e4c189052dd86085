"""Absolute paths built from __file__ as flow parameters' defaults (the script works from any
folder): the recorded parameters name the original checkout. The replay must run from the store
alone, so the original checkout's data and outputs are removed after recording."""
from pathlib import Path

from prefect import flow

from reproflow import repro_task

HERE = Path(__file__).resolve().parent


@repro_task
def count(src: Path) -> dict[str, int]:
    words = src.read_text().split()
    return {w: words.count(w) for w in sorted(set(words))}


@repro_task
def save(counts: dict[str, int], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / "counts.csv"
    dst.write_text("".join(f"{w},{n}\n" for w, n in counts.items()))
    return dst


@flow
def absolute(src: Path = HERE / "data" / "words.txt", out_dir: Path = HERE / "out") -> Path:
    return save(count(src), out_dir)


if __name__ == "__main__":
    absolute()
