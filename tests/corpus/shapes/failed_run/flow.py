"""Failures as pipelines have them: a task that raises on bad data, called with
return_state=True so the flow goes on without it (a failed task in a run that goes on), a
fallback task, then a task that raises and fails the whole flow run."""
import json
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task
def parse(src: Path) -> list[str]:
    return src.read_text().split()


@repro_task
def strict_numbers(tokens: list[str]) -> list[int]:
    return [int(t) for t in tokens]  # "n/a" in the data: ValueError


@repro_task
def lenient_numbers(tokens: list[str]) -> list[int]:
    return [int(t) for t in tokens if t.isdigit()]


@repro_task(outputs=["dst"])
def save(numbers: list[int], dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(numbers))


@repro_task
def check_total(numbers: list[int], limit: int) -> int:
    total = sum(numbers)
    if total > limit:
        raise RuntimeError(f"total {total} is over the limit {limit}")
    return total


@flow
def pipeline(src: Path = Path("data/numbers.txt"), limit: int = 50) -> int:
    tokens = parse(src)
    state = strict_numbers(tokens, return_state=True)
    numbers = state.result() if state.is_completed() else lenient_numbers(tokens)
    save(numbers, Path("out/numbers.json"))
    return check_total(numbers, limit)


if __name__ == "__main__":
    pipeline()
