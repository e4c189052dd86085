"""The engine tests' pipeline as a Prefect flow: ``python prefect_flow.py`` records one run."""

from prefect import flow, unmapped

import pipeline_steps as steps
from reproflow import repro_task

load = repro_task(inputs=["raw"])(steps.load)
clean = repro_task(outputs=["out"])(steps.clean)
stat = repro_task(inputs=["clean_csv"])(steps.stat)
report = repro_task(outputs=["out"])(steps.report)


@flow(name="reproflow_pipeline")
def pipeline(raw: str = str(steps.RAW)) -> str:
    rows = load(raw)
    cleaned = clean(rows, str(steps.RESULTS / "clean.csv"))
    stats = stat.map(unmapped(cleaned), steps.STATS)
    return report(stats, str(steps.RESULTS / "report.json"))


if __name__ == "__main__":
    pipeline()
