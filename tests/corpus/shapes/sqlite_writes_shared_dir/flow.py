"""A `.map` into one output folder where each task writes an SQLite database (issue 10): sqlite
writes the file, and its journal, from C, unseen by the audit hook on open, so every mapped task
sees its siblings' databases change (and their journals come and go) while it runs. Each database
is the output of the task whose connection named it, never a sibling's."""
import sqlite3
import time
from pathlib import Path

from prefect import flow, unmapped

from reproflow import repro_task


@repro_task
def write_part(line: str, i: int, out_dir: Path) -> None:
    con = sqlite3.connect(out_dir / f"part-{i}.db")
    con.execute("create table words (n integer, ch text)")
    for n, ch in enumerate(line.upper() * 8):
        con.execute("insert into words values (?, ?)", (n, ch))
        con.commit()  # one transaction per row: the file changes for a while
        time.sleep(0.002)
    con.close()


@repro_task
def combine(out_dir: Path) -> str:
    out = []
    for p in sorted(out_dir.glob("part-*.db")):
        con = sqlite3.connect(p)
        out.append("".join(ch for (ch,) in con.execute("select ch from words order by n limit 5")))
        con.close()
    return "|".join(out)


@flow
def pipeline(src: Path = Path("data/lines.txt"), out_dir: Path = Path("results")) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = src.read_text().splitlines()
    parts = write_part.map(lines, list(range(len(lines))), unmapped(out_dir))
    parts.wait()
    return combine(out_dir, wait_for=parts)


if __name__ == "__main__":
    print(pipeline())
