"""Paths as many pipelines pass them: str parameters (never a Path), files opened by a name built
from a module constant (os.path from __file__) and from a relative str, a task returning a dict
of the Paths it wrote, and tasks writing to a str path they were given (nothing declared; one
writes a temporary file and moves it into place): one file holds the same every run, the other
the time it was written. One task logs through a logging.FileHandler it opens itself: its log
holds the time too, but a log is no output (a replay said "differs" about it). The time-stamped
file is written from a thread pool the task starts: a thread's opens are its task's too."""
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prefect import flow

from reproflow import repro_task

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
STOPWORDS = "data/stopwords.txt"


@repro_task
def load(src: str) -> list[str]:
    with open(os.path.join(DATA_DIR, src)) as fh:
        words = fh.read().split()
    with open(STOPWORDS) as fh:
        stop = set(fh.read().split())
    return [w for w in words if w not in stop]


@repro_task
def split(words: list[str], out_dir: str) -> dict[str, Path]:
    os.makedirs(out_dir, exist_ok=True)
    log = logging.getLogger("split")
    handler = logging.FileHandler(os.path.join(out_dir, "split.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.warning("splitting %d words", len(words))
    log.removeHandler(handler)
    handler.close()
    parts = {"short": [w for w in words if len(w) <= 4], "long": [w for w in words if len(w) > 4]}
    paths = {}
    for name, group in parts.items():
        path = Path(out_dir) / f"{name}.txt"
        path.write_text("\n".join(group) + "\n")
        paths[name] = path
    return paths


@repro_task
def summarize(paths: dict[str, Path], dst: str) -> int:
    counts = {name: len(path.read_text().split()) for name, path in paths.items()}
    with open(dst + ".part", "w") as fh:  # written whole, then moved into place
        json.dump(counts, fh, sort_keys=True)
    os.replace(dst + ".part", dst)
    return sum(counts.values())


@repro_task
def stamp(total: int, dst: str) -> int:
    def write() -> None:
        with open(dst, "w") as fh:
            fh.write(f"{total} words, counted at {time.time()}\n")

    with ThreadPoolExecutor(1) as pool:  # written from a thread of the task's own
        pool.submit(write).result()
    return total


@flow
def words(src: str = "words.txt", out_dir: str = "out/parts", dst: str = "out/summary.json") -> int:
    return stamp(summarize(split(load(src), out_dir), dst), "out/stamp.txt")


if __name__ == "__main__":
    words()
