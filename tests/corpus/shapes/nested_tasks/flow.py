"""Tasks inside tasks: a task calling another task's plain function (.fn), a task calling
another task (a nested task run, one per call), an async task submitted from a sync flow, and
mapped futures resolved in the flow body with wait() and .result()."""
import asyncio
import json
from pathlib import Path

from prefect import flow
from prefect.futures import wait

from reproflow import repro_task


@repro_task
def clean(text: str) -> str:
    return " ".join(text.lower().replace(",", " ").split())


@repro_task
def tokenize(text: str) -> list[str]:
    return clean.fn(text).split()  # the plain function: no task run of its own


@repro_task
def lengths(texts: list[str]) -> dict[str, int]:
    return {t: len(tokenize(t)) for t in texts}  # nested task runs, one per text


@repro_task
async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@repro_task(outputs=["dst"])
def save(data: dict, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(data, sort_keys=True))


@flow
def pipeline(texts: list[str] = ["Hello, World", "Nested tasks, inside tasks, run"]) -> dict:
    counts = lengths(texts)
    futures = double.map(list(counts.values()))
    wait(futures)
    doubled = [f.result() for f in futures]
    result = {"counts": counts, "doubled": doubled}
    save(result, Path("out/result.json"))
    return result


if __name__ == "__main__":
    pipeline()
