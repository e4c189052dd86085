"""A DAG run that fails: a task that succeeds on its second try, then one that always fails."""

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import dag

from reproflow.airflow import close_run, repro_task

TRIED = Path(__file__).resolve().parent / "results" / "flaky-tried"


@repro_task(retries=1, retry_delay=timedelta(seconds=0))
def flaky() -> str:
    if not TRIED.exists():
        TRIED.parent.mkdir(parents=True, exist_ok=True)
        TRIED.touch()
        raise RuntimeError("the first try fails")
    return "made on the second try"


@repro_task
def broken(made: str) -> None:
    raise ValueError(f"cannot use {made!r}")


@dag(dag_id="reproflow_retry", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
     on_success_callback=close_run, on_failure_callback=close_run)
def retry() -> None:
    broken(flaky())


retry()
