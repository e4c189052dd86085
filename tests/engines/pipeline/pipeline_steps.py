"""The steps of the pipeline every engine test runs (issue 12): read a CSV, clean it, four
statistics fanned out over the clean table, a report. Plain functions: ``prefect_flow.py`` and
``airflow_dag.py`` make them recorded tasks of their engine, so each engine's run records the same
tasks with the same data."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
RAW = HERE / "data" / "measurements.csv"
RESULTS = HERE / "results"
STATS = ["mean", "median", "min", "max"]


def load(raw: str) -> list[dict[str, str]]:
    """The raw CSV's rows as read (strings, untouched)."""
    with open(raw, newline="") as f:
        return list(csv.DictReader(f))


def clean(rows: list[dict[str, str]], out: str) -> str:
    """Station names stripped, rows without a reading and repeated rows dropped; writes ``out``."""
    seen: set[tuple[str, int, float]] = set()
    kept: list[tuple[str, int, float]] = []
    for row in rows:
        reading = row["temp_c"].strip()
        if not reading:
            continue
        key = (row["station"].strip(), int(row["day"]), float(reading))
        if key not in seen:
            seen.add(key)
            kept.append(key)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["station", "day", "temp_c"])
        writer.writerows(kept)
    return out


def stat(clean_csv: str, name: str) -> dict[str, object]:
    """One statistic of the clean table's readings."""
    with open(clean_csv, newline="") as f:
        temps = [float(row["temp_c"]) for row in csv.DictReader(f)]
    fn = {"mean": statistics.fmean, "median": statistics.median, "min": min, "max": max}[name]
    return {"stat": name, "value": round(fn(temps), 6)}


def report(stats: list[dict[str, object]], out: str) -> str:
    """The statistics as one JSON file."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps({str(s["stat"]): s["value"] for s in stats}, sort_keys=True, indent=1) + "\n")
    return out
