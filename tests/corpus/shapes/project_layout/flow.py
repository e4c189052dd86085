"""A project as people lay it out: a sibling module (`from helpers import ...`), a package under
src/ put on sys.path by the script, a config.yaml beside flow.py opened by a relative path, a
settings.json found through __file__, a lookup table ignored by git (on disk before the run, not
in the snapshot), all read by tasks that declare none of them."""
import json
import sys
from pathlib import Path

import yaml
from prefect import flow

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from helpers import normalise  # noqa: E402
from textkit.stats import frequencies  # noqa: E402

from reproflow import repro_task  # noqa: E402

HERE = Path(__file__).resolve().parent


@repro_task
def load_words(src: Path) -> list[str]:
    config = yaml.safe_load(open("config.yaml"))  # relative to the working folder
    words = normalise(src.read_text(), config["lowercase"])
    return [w for w in words if len(w) >= config["min_length"]]


@repro_task
def count(words: list[str]) -> dict[str, int]:
    settings = json.loads((HERE / "settings.json").read_text())
    return frequencies(words, top=settings["top"])


@repro_task
def label(counts: dict[str, int]) -> dict[str, str]:
    lookup = dict(line.split(",") for line in Path("data/lookup.csv").read_text().split())
    return {w: lookup.get(w, "other") for w in counts}


@repro_task(outputs=["dst"])
def save(counts: dict[str, int], labels: dict[str, str], dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps({w: [n, labels[w]] for w, n in counts.items()}, sort_keys=True))


@flow
def words(src: Path = Path("data/text.txt"), dst: Path = Path("out/words.json")) -> None:
    counts = count(load_words(src))
    save(counts, label(counts), dst)


if __name__ == "__main__":
    words()
