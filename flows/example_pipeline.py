"""An example reproflow pipeline: weather measurements in, per-site statistics out.

Run it from anywhere:

    python flows/example_pipeline.py
    reproflow runs show latest

It reads ``flows/data/measurements.csv``, writes a cleaned copy, computes statistics per site
(mapped tasks) and writes a JSON report. Every task run is recorded in the store
(``./.reproflow`` unless ``REPROFLOW_STORE`` or ``--store`` says otherwise).
"""

from __future__ import annotations

import csv
import json
import os
import statistics
from pathlib import Path
from typing import Annotated

# With no PREFECT_API_URL, Prefect starts a temporary API server for the script. It gives up if the
# server is not up within 20 s, which a busy machine can exceed, and its telemetry heartbeat can
# meet a locked SQLite database and print a traceback: wait longer, send no telemetry (a setting
# of yours wins).
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, unmapped  # noqa: E402

from reproflow import Input, Output, repro_task  # noqa: E402

HERE = Path(__file__).resolve().parent


@repro_task(inputs=["source"], outputs=["target"])
def clean(source: Path, target: Path) -> int:
    """Drop rows with a missing humidity value; returns how many rows were kept."""
    with source.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["humidity_pct"].strip()]
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["site", "day", "temperature_c", "humidity_pct"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


@repro_task
def sites(table: Annotated[Path, Input]) -> list[str]:
    """The distinct sites in the cleaned table, in a stable order."""
    with table.open(newline="") as fh:
        return sorted({r["site"] for r in csv.DictReader(fh)})


@repro_task(retries=1)
def site_stats(table: Annotated[Path, Input], site: str) -> dict[str, float]:
    """Mean and standard deviation of temperature and humidity for one site."""
    with table.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["site"] == site]
    temps = [float(r["temperature_c"]) for r in rows]
    hums = [float(r["humidity_pct"]) for r in rows]
    return {
        "n": len(rows),
        "temperature_mean": round(statistics.fmean(temps), 4),
        "temperature_sd": round(statistics.stdev(temps), 4),
        "humidity_mean": round(statistics.fmean(hums), 4),
    }


@repro_task
def report(stats: list[dict[str, float]], names: list[str], target: Annotated[Path, Output]) -> Path:
    """Write the per-site statistics as one JSON document."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(dict(zip(names, stats)), indent=2, sort_keys=True) + "\n")
    return target


@flow(name="weather-stats", log_prints=True)
def weather_stats(
    source: Path = HERE / "data" / "measurements.csv",
    out_dir: Path = Path("out"),
) -> Path:
    """Clean the measurements, compute statistics per site, write a report."""
    cleaned = out_dir / "measurements.clean.csv"
    kept = clean(source, cleaned)
    print(f"kept {kept} rows")
    names = sites(cleaned)
    stats = site_stats.map(unmapped(cleaned), names)
    return report(stats, names, out_dir / "report.json")


if __name__ == "__main__":
    result = weather_stats()
    print(f"report written to {result}")
