"""An async flow: one task reads its lines from a named pipe the flow body feeds from a thread
(a stream, as from another program: hashing it once took the data before the task could read
it, and the task waited forever); another task runs past its `timeout_seconds` and is
cancelled (its failure record was itself cancelled, and the attempt had none). The pipe is an
input without a hash, saying why; the timed-out task is recorded FAILED both times."""
import asyncio
import os
import tempfile
import threading
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task
async def read_pipe(pipe: Path) -> list[str]:
    return await asyncio.to_thread(lambda: pipe.read_text().split())


@repro_task(timeout_seconds=0.5)
async def too_slow(n: int) -> int:
    await asyncio.sleep(60)
    return n


@repro_task
async def summary(words: list[str], slow_state: str) -> str:
    return f"{len(words)} words; slow task {slow_state}"


@flow
async def streams() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        pipe = Path(tmp) / "feed"
        os.mkfifo(pipe)

        def feed() -> None:
            with open(pipe, "w") as fh:
                fh.write("alpha beta gamma\n")

        threading.Thread(target=feed, daemon=True).start()
        words = await read_pipe(pipe)
    slow = await too_slow(1, return_state=True)
    return await summary(words, slow.type.value)


if __name__ == "__main__":
    print(asyncio.run(streams()))
