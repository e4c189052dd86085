"""A `.map` into one output folder where each task's file is written by a subprocess, slowly
(issue 10): the audit hook on open does not see a subprocess write, and every mapped task sees
its siblings' files change, half written, while it runs. Each file is the output of the task whose
subprocess's arguments name it, never a sibling's."""
import subprocess
import sys
from pathlib import Path

from prefect import flow, unmapped

from reproflow import repro_task

WRITE_SLOWLY = """
import sys, time
target, text = sys.argv[1], sys.argv[2] * 40
with open(target, "w") as fh:
    for ch in text:
        fh.write(ch); fh.flush()
        time.sleep(0.003)
"""


@repro_task
def write_part(line: str, i: int, out_dir: Path) -> None:
    subprocess.run([sys.executable, "-c", WRITE_SLOWLY, str(out_dir / f"part-{i}.txt"), line.upper()], check=True)


@repro_task
def combine(out_dir: Path) -> str:
    return "|".join(p.read_text()[:8] for p in sorted(out_dir.glob("part-*.txt")))


@flow
def pipeline(src: Path = Path("data/lines.txt"), out_dir: Path = Path("results")) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = src.read_text().splitlines()
    parts = write_part.map(lines, list(range(len(lines))), unmapped(out_dir))
    parts.wait()
    return combine(out_dir, wait_for=parts)


if __name__ == "__main__":
    print(pipeline())
