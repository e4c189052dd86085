"""``reproflow.CONTENT``: a Prefect cache policy keyed by what a task reads, not by its arguments'
identity. The key itself is computed engine-neutrally in ``reproflow.recorder._content``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from prefect.cache_policies import CachePolicy

from ...recorder._content import key_parts, remember


@dataclass
class Content(CachePolicy):
    """Prefect cache policy keyed by input content, parameters, code (with the project functions
    it calls) and the environment. Use ``@repro_task(cache_policy=reproflow.CONTENT)`` or any
    ``@task(cache_policy=reproflow.CONTENT)``; Prefect then persists results (needed for a hit)."""

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> Optional[str]:
        if task_ctx is None:
            return None
        parts = key_parts(task_ctx.task, inputs or {})
        if parts is None:
            return None
        remember(str(task_ctx.task_run.id), parts)
        return f"reproflow-{parts.key}"


CONTENT = Content()




__all__ = ["CONTENT", "Content"]
