"""An async flow running two async subflows concurrently (asyncio.gather), each awaiting an
async @repro_task (issue 10, shape 4)."""
import asyncio
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task(inputs=["src"], outputs=["dst"])
async def shout(src: Path, dst: Path) -> int:
    text = src.read_text()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text.upper())
    return len(text.split())


@flow
async def convert(name: str) -> int:
    return await shout(Path("data") / f"{name}.txt", Path("out") / f"{name}.txt")


@flow
async def batch(names: list[str] = ["a", "b"]) -> int:
    return sum(await asyncio.gather(*(convert(n) for n in names)))


if __name__ == "__main__":
    asyncio.run(batch())
