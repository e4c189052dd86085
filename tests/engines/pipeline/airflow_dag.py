"""The engine tests' pipeline as an Airflow 3 TaskFlow DAG: ``airflow dags test reproflow_pipeline``
records one run."""

import pendulum
from airflow.sdk import dag

import pipeline_steps as steps
from reproflow.airflow import close_run, repro_task

load = repro_task(inputs=["raw"])(steps.load)
clean = repro_task(outputs=["out"])(steps.clean)
stat = repro_task(inputs=["clean_csv"])(steps.stat)
report = repro_task(outputs=["out"])(steps.report)


@dag(dag_id="reproflow_pipeline", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
     on_success_callback=close_run, on_failure_callback=close_run)
def pipeline() -> None:
    rows = load(str(steps.RAW))
    cleaned = clean(rows, str(steps.RESULTS / "clean.csv"))
    stats = stat.partial(clean_csv=cleaned).expand(name=steps.STATS)
    report(stats, str(steps.RESULTS / "report.json"))


pipeline()
