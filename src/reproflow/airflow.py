"""reproflow for Airflow 3 TaskFlow DAGs: swap ``@task`` for ``@repro_task``, and close the run
when the DAG run ends::

    from airflow.sdk import dag
    from reproflow.airflow import close_run, repro_task

    @repro_task(inputs=["raw"])
    def load(raw: str) -> list[dict]: ...

    @dag(schedule=None, on_success_callback=close_run, on_failure_callback=close_run)
    def pipeline(): ...

Every task instance of one DAG run, in any process or on any worker, records into one reproflow
run derived from the DAG run's ``dag_id`` and ``run_id``. Needs no Prefect.
"""

from .engines.airflow._taskflow import close_run, recorded, repro_task, run_id_of

__all__ = ["close_run", "recorded", "repro_task", "run_id_of"]
