"""File names that are not UTF-8 (Latin-1 bytes, as an old archive or a Windows share leaves
them): Python reads them as lone surrogates (os.fsdecode), which no UTF-8 text can hold. A task
writes one file a line, named by the line's Latin-1 bytes, into a folder; another reads them all
back by listing the folder and writes a summary; the first returns the paths it wrote. Recording
them once crashed the task (its record could not be encoded as UTF-8 JSON)."""
import os
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task
def split(src: Path, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for line in src.read_text(encoding="utf-8").splitlines():
        name = os.fsdecode(line.split()[0].encode("latin-1") + b".txt")  # b"caf\xe9.txt"
        path = out_dir / name
        path.write_text(line.upper(), encoding="utf-8")
        written.append(path)
    return written


@repro_task
def summary(out_dir: Path, dst: Path) -> int:
    names = sorted(os.listdir(os.fsencode(out_dir)))
    dst.write_bytes(b"\n".join(n + b": " + (out_dir / os.fsdecode(n)).read_bytes() for n in names) + b"\n")
    return len(names)


@flow
def non_utf8(src: Path = Path("data/lines.txt"), out_dir: Path = Path("parts")) -> int:
    split(src, out_dir)
    return summary(out_dir, Path("summary.txt"))


if __name__ == "__main__":
    non_utf8()
