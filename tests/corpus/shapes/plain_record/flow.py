"""Plain Python, no flow: a script whose `with reproflow.record():` block calls @repro_task
functions (issue 10, shape 5). Replay runs the script again."""
from pathlib import Path

import reproflow
from reproflow import repro_task


@repro_task(inputs=["src"], outputs=["dst"])
def shout(src: Path, dst: Path) -> int:
    text = src.read_text()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text.upper())
    return len(text.split())


@repro_task
def total(counts: list[int]) -> dict[str, int]:
    return {"files": len(counts), "words": sum(counts)}


if __name__ == "__main__":
    with reproflow.record():
        counts = [shout(Path("data") / f"{n}.txt", Path("out") / f"{n}.txt") for n in ("a", "b")]
        print(total(counts))
