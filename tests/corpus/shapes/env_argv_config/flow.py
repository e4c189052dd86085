"""Configuration as scripts take it: the data folder from an environment variable read at import
(a module constant, with a default), the flow's parameters from the command line (argparse), and a
task that reads a file in that folder by a name built inside it."""
import argparse
import os
from pathlib import Path

from prefect import flow

from reproflow import repro_task

DATA_DIR = Path(os.environ.get("PIPELINE_DATA", "data"))


@repro_task
def load(name: str) -> list[int]:
    return [int(x) for x in (DATA_DIR / name).read_text().split()]


@repro_task
def top(values: list[int], limit: int) -> list[int]:
    return sorted(values, reverse=True)[:limit]


@repro_task
def save(values: list[int], dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(",".join(map(str, values)) + "\n")


@flow
def configured(name: str, limit: int = 2, dst: Path = Path("out/top.txt")) -> None:
    save(top(load(name), limit), dst)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--limit", type=int, default=2)
    args = parser.parse_args()
    configured(args.name, limit=args.limit)
