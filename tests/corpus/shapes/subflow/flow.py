"""A parent flow with a task of its own calling two subflows; one maps a task over a list
(issue 10, shape 4): one run for the whole, the subflows' tasks inside it."""
import json
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task(inputs=["src"])
def load(src: Path) -> list[str]:
    return src.read_text().split()


@repro_task
def clean(word: str) -> str:
    return word.strip(".,").lower()


@repro_task(outputs=["dst"])
def count(words: list[str], dst: Path) -> int:
    counts: dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(counts, sort_keys=True))
    return len(counts)


@flow
def normalize(words: list[str]) -> list[str]:
    return clean.map(words).result()


@flow
def tally(words: list[str], dst: Path) -> int:
    return count(words, dst)


@flow
def pipeline(src: Path = Path("data/text.txt"), dst: Path = Path("out/counts.json")) -> int:
    words = load(src)
    return tally(normalize(words), dst)


if __name__ == "__main__":
    pipeline()
