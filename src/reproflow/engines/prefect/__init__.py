"""The Prefect 3 adapter: ``@repro_task`` (a ``prefect.Task``), flow runs and subflows as reproflow
runs, the flow end hook, UI artifacts and the ``CONTENT`` cache policy. Needs ``reproflow[prefect]``."""
