"""Mapped tasks each writing one object under an output prefix on S3 passed as a str parameter,
a prefix that does not exist before the run."""
import os
import time

import fsspec
from prefect import flow, unmapped

from reproflow import repro_task


@repro_task
def count(line: str, i: int, out_prefix: str) -> int:
    time.sleep(0.2 * (i % 2))
    with fsspec.open(f"{out_prefix}/part-{i}.txt", "wt") as f:
        f.write(f"{len(line.split())}\n")
    return len(line.split())


@repro_task
def lines(src: str) -> list[str]:
    with fsspec.open(src, "rt") as f:
        return f.read().splitlines()


@flow
def pipeline(bucket: str = os.environ.get("DATA_BUCKET", "s3://data")) -> int:
    ls = lines(f"{bucket}/raw/lines.txt")
    return sum(f.result() for f in count.map(ls, list(range(len(ls))), unmapped(f"{bucket}/out/parts")))


if __name__ == "__main__":
    print(pipeline())
