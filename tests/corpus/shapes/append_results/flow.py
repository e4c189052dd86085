"""A parameter sweep whose mapped tasks each append their score as one line to a shared results
file (a CSV of metrics), then a task that summarizes the file. Each task recorded the file as it
was when it ended, holding whichever siblings' lines were in by then; the tasks take their own
time (a random jitter here, as real ones do), so a replay found other lines in and said "differs",
blaming nondeterminism in tasks whose work is deterministic."""
import random
import time
from pathlib import Path

from prefect import flow

from reproflow import repro_task

RESULTS = "results.csv"


@repro_task
def evaluate(lr: float) -> float:
    time.sleep(random.uniform(0, 0.2))  # how long a real task takes varies from run to run
    score = round(1.0 / (1.0 + abs(lr - 0.01) * 100), 4)
    with open(RESULTS, "a") as fh:
        fh.write(f"{lr},{score}\n")
    return score


@repro_task
def summarize(results: Path, dst: Path) -> str:
    rows = sorted(results.read_text().splitlines()[1:])
    best = max(rows, key=lambda r: float(r.split(",")[1]))
    dst.write_text("\n".join(rows) + f"\nbest: {best}\n")
    return best


@flow
def sweep(lrs: list[float] = [0.001, 0.003, 0.01, 0.03, 0.1]) -> str:
    Path(RESULTS).write_text("lr,score\n")
    scores = evaluate.map(lrs)
    return summarize(Path(RESULTS), Path("summary.txt"), wait_for=scores)


if __name__ == "__main__":
    print(sweep())
