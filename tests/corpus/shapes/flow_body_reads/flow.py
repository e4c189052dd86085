"""The flow body reads its parameters from a JSON file kept beside the project and ignored by git
(not in the source snapshot), and passes a value from it to a task. The flow body's own reads are
no task's inputs, so nothing checks the file before a replay; here it is gone by then."""
import json
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task
def square(n: int) -> int:
    return n * n


@flow
def body_reads() -> int:
    params = json.loads(Path("data/params.json").read_text())
    return square(params["n"])


if __name__ == "__main__":
    body_reads()
