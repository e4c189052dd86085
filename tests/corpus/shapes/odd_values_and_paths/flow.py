"""Values and paths that once failed the task when it was recorded, not when it ran: an int past
Python's 4,300-digit text limit as a parameter and a result; an optional cache path under a file
(`stat` raises ENOTDIR, not FileNotFoundError). Each task reproduces. (An error whose `__str__`
raises is tested in plain Python, tests/test_recording_never_breaks.py: Prefect's own flow
engine fails on it, with `@task` as with `@repro_task`.)"""
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task
def power(base: int, exp: int) -> int:
    return base**exp


@repro_task
def digits_mod(n: int, m: int) -> int:
    return n % m


@repro_task
def cached_count(src: Path, cache: Path) -> int:
    if cache.exists():  # never: the cache path is under a file
        return int(cache.read_text())
    return len(src.read_text().split())


@repro_task
def report(count: int, residue: int, dst: Path) -> str:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(f"{count} {residue}\n")
    return dst.read_text()


@flow
def odd(src: Path = Path("data/words.txt"), dst: Path = Path("out/report.txt")) -> str:
    big = power(7, 6000)
    residue = digits_mod(big, 1_000_003)
    count = cached_count(src, src / "cache.txt")
    return report(count, residue, dst)


if __name__ == "__main__":
    print(odd())
