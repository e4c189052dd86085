"""The Airflow 3 adapter (TaskFlow tasks recorded into one run per DAG run); users import it from
:mod:`reproflow.airflow`. Nothing here imports Airflow until a DAG file uses it."""
