"""Plain Python, no flow, no record(): a @repro_task called directly from a script (issue 10,
shape 5). The call is a run of its own; replay calls the function again with its recorded
arguments, and never runs the script (whose other work, below, must not happen again)."""
import sys
from pathlib import Path

from reproflow import repro_task


@repro_task(inputs=["src"], outputs=["dst"])
def shout(src: Path, dst: Path, suffix: str = "!") -> int:
    text = src.read_text().strip()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text.upper() + suffix + "\n")
    return len(text.split())


if __name__ == "__main__":
    # The script's own work around the task: it refuses to run twice in one checkout.
    marker = Path("ran-once")
    if marker.exists():
        sys.exit("flow.py already ran here")
    marker.write_text("")
    print(shout(Path("data/in.txt"), Path("out/upper.txt"), suffix="?"))
