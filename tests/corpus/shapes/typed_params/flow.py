"""Flow parameters of the types people annotate (list[Path], dict, date, datetime, Decimal,
tuple, Literal, Optional left at None), given non-default values in the call under
`if __name__ == "__main__":`, through flow.with_options(name=..., flow_run_name=...); the flow
has log_prints=True and tasks log through get_run_logger()."""
import json
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Literal, Optional

from prefect import flow, get_run_logger

from reproflow import repro_task


@repro_task
def count_words(files: list[Path]) -> dict[str, int]:
    counts = {f.name: len(f.read_text().split()) for f in files}
    get_run_logger().info("counted %d files", len(counts))
    return counts


@repro_task
def summarize(counts: dict[str, int], when: date, at: datetime, rate: Decimal, window: tuple[int, int],
              mode: Literal["sum", "max"], label: Optional[str], options: dict) -> dict:
    value = sum(counts.values()) if mode == "sum" else max(counts.values())
    print(f"{mode} of {len(counts)} counts: {value}")
    lo, hi = window
    return {"value": str(Decimal(value) * rate), "day": when.isoformat(), "weekday": when.strftime("%A"),
            "at": at.isoformat(), "in_window": lo <= value <= hi, "label": label or "unlabelled", **options}


@repro_task(outputs=["dst"])
def write_json(summary: dict, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(summary, sort_keys=True, indent=2))


@flow(log_prints=True)
def report(files: list[Path] = [Path("data/a.txt")], when: date = date(2024, 1, 1),
           at: datetime = datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc), rate: Decimal = Decimal("1.5"),
           window: tuple[int, int] = (0, 10), mode: Literal["sum", "max"] = "sum", label: Optional[str] = None,
           options: Optional[dict] = None, out_dir: Path = Path("out")) -> None:
    get_run_logger().info("report for %s", when)
    print(f"{len(files)} files, window {window}")
    summary = summarize(count_words(files), when, at, rate, window, mode, label, options or {})
    write_json(summary, out_dir / f"report-{when:%Y%m%d}.json")


if __name__ == "__main__":
    nightly = report.with_options(name="nightly-report", flow_run_name="nightly-{when}")
    nightly(files=[Path("data/a.txt"), Path("data/b.txt"), Path("data/c.txt")], when=date(2024, 3, 1),
            at=datetime(2024, 3, 1, 23, 30, tzinfo=timezone.utc), rate=Decimal("0.25"), window=(2, 8), mode="max",
            options={"team": "data", "tags": ["nightly", "words"], "limit": None})
