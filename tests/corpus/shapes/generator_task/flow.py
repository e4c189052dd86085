"""Generator tasks (issue 10): a sync generator task and an async generator task, each reading a
file it never names (data/tag.txt: an undeclared input) in its body and writing one file per item
into a folder the flow body made; the flow consumes the items one by one, reading a file of its
own between them (not the tasks' read)."""
import asyncio
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task
def numbered(src: Path, out_dir: Path):
    tag = Path("data/tag.txt").read_text().strip()
    for i, line in enumerate(src.read_text().splitlines()):
        (out_dir / f"sync-{i}.txt").write_text(f"{tag}:{line}")
        yield f"{tag}:{line}"


@repro_task
async def anumbered(src: Path, out_dir: Path):
    tag = Path("data/tag.txt").read_text().strip()
    for i, line in enumerate(src.read_text().splitlines()):
        await asyncio.sleep(0)
        (out_dir / f"async-{i}.txt").write_text(f"{tag}:{line.upper()}")
        yield f"{tag}:{line.upper()}"


@flow
async def pipeline(src: Path = Path("data/lines.txt"), out_dir: Path = Path("results")) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for item in numbered(src, out_dir):
        items.append(item + Path("data/lines.txt").read_text()[:1])
    async for item in anumbered(src, out_dir):
        items.append(item)
    return items


if __name__ == "__main__":
    print(asyncio.run(pipeline()))
