"""The output folder is made by the tasks themselves (out_dir.mkdir(exist_ok=True) in each), not
by the flow body: tasks running at the same time (an async flow's asyncio.gather, a .map() on
threads) each find it missing when they start, and each writes its own file into it. Each task's
outputs were recorded as the whole folder, with as many of its siblings' files as the timing let
in, so a replay said "differs" and blamed nondeterminism in code that had none."""
import asyncio
import time
from pathlib import Path

from prefect import flow, task

from reproflow import repro_task


@repro_task
async def count_words(src: Path, out_dir: Path) -> int:
    await asyncio.sleep(0.05)  # every call has started (and seen no out_dir) before one writes
    n = len(src.read_text().split())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{src.stem}.count").write_text(f"{n}\n")
    return n


@repro_task
def shout(src: Path, out_dir: Path) -> int:
    time.sleep(0.2)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = src.read_text().upper()
    (out_dir / f"{src.stem}.txt").write_text(text)
    return len(text)


@task
def sources(data: Path) -> list[Path]:
    return sorted(data.glob("*.txt"))


@flow
async def pipeline(data: Path = Path("data"), out_dir: Path = Path("out")) -> int:
    srcs = sources(data)
    counts = await asyncio.gather(*(count_words(p, out_dir / "counts") for p in srcs))
    lengths = [f.result() for f in shout.map(srcs, [out_dir / "upper"] * len(srcs))]
    return sum(counts) + sum(lengths)


if __name__ == "__main__":
    print(asyncio.run(pipeline()))
