"""Randomness from the standard library: random.seed() once at import then random.sample() in a
task (repeats), random.shuffle() with no seed at all, and a file named by uuid4() (a new name every
run): never a false "reproduced"."""
import random
import uuid
from pathlib import Path

from prefect import flow

from reproflow import repro_task

random.seed(1234)


@repro_task
def pick(n: int) -> list[int]:
    return random.sample(range(100), n)


@repro_task
def shuffled(values: list[int]) -> list[int]:
    rng = random.Random()
    out = list(values)
    rng.shuffle(out)
    return out


@repro_task
def save(values: list[int], out_dir: Path) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.txt"
    (out_dir / name).write_text(",".join(map(str, sorted(values))) + "\n")
    return name


@flow
def draws(n: int = 8, out_dir: Path = Path("out")) -> str:
    values = pick(n)
    shuffled(values)
    return save(values, out_dir)


if __name__ == "__main__":
    draws()
