"""Data on S3: tasks read and write s3:// URLs (str parameters) with fsspec, as teams keep data.

`clean` declares its input and output; `summarize` and `stamp` declare nothing (URLs found in their
parameters). The flow is run twice, so the second run finds every output object already there, from
the first: an object a task replaces is its output, not an input (`summarize` reproduces), and an
object written with the time differs (`stamp`), never "reproduced" on its return value alone.
`parts` declares an output prefix and writes one object under it, named for the run: in the second
run the prefix also holds the first run's object, which is not this run's output (the replay
starts without it)."""
import json
import os
import time

import fsspec
from prefect import flow

from reproflow import repro_task


@repro_task(inputs=["src"], outputs=["dst"])
def clean(src: str, dst: str) -> int:
    with fsspec.open(src, "rt") as f:
        rows = [line for line in f.read().splitlines()[1:] if line.strip()]
    with fsspec.open(dst, "wt") as f:
        f.write("\n".join(rows))
    return len(rows)


@repro_task
def summarize(table: str, sites_url: str, out: str) -> dict:
    with fsspec.open(table, "rt") as f:
        rows = [line.split(",") for line in f.read().splitlines()]
    with fsspec.open(sites_url, "rt") as f:
        sites = f.read().split()
    totals = {s: sum(int(v) for site, v in rows if site == s) for s in sites}
    with fsspec.open(out, "wt") as f:
        json.dump(totals, f)
    return totals


@repro_task
def stamp(out: str) -> str:
    with fsspec.open(out, "wt") as f:
        f.write(f"made at {time.time()}")
    return "done"


@repro_task(outputs=["prefix"])
def parts(table: str, prefix: str, tag: str) -> int:
    with fsspec.open(table, "rt") as f:
        rows = f.read().splitlines()
    with fsspec.open(f"{prefix}/rows-{tag}.txt", "wt") as f:
        f.write(f"{len(rows)}\n")
    return len(rows)


@flow
def pipeline(bucket: str = os.environ.get("DATA_BUCKET", "s3://data"), tag: str = "first") -> dict:
    n = clean(f"{bucket}/raw/measurements.csv", f"{bucket}/out/clean.csv")
    parts(f"{bucket}/out/clean.csv", f"{bucket}/out/parts", tag)
    totals = summarize(f"{bucket}/out/clean.csv", f"{bucket}/raw/sites.txt", f"{bucket}/out/totals.json")
    stamp(f"{bucket}/out/stamp.txt", wait_for=[n])
    return totals


if __name__ == "__main__":
    bucket = os.environ.get("DATA_BUCKET", "s3://data")
    # the second run names its object otherwise: the first run's is left under the prefix
    pipeline(bucket, tag="second" if fsspec.filesystem("s3").exists(f"{bucket}/out/parts") else "first")
