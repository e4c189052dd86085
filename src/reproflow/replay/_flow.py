"""The replay as a Prefect flow, so a replay can be started from the Prefect UI.

Deployed by ``deployments/prefect.yaml`` (``prefect deploy --all --prefect-file
deployments/prefect.yaml``); its only required parameter is the run id. The flow run ends
Completed when every task reproduced and Failed otherwise, and leaves a markdown artifact with
the verdict table.
"""

from __future__ import annotations

from typing import Any, Optional

from prefect import flow, get_run_logger


def _markdown(result: Any) -> str:
    lines = [
        f"# Replay of `{result.run_id}`",
        "",
        f"**Verdict:** {result.verdict} · replay run `{result.replay_run_id or '-'}`",
        "",
        "| task | verdict | outputs | likely cause |",
        "| --- | --- | --- | --- |",
    ]
    for v in result.tasks:
        outs = f"{sum(o.match for o in v.outputs)}/{len(v.outputs)}" if v.outputs else "-"
        cause = "; ".join(v.causes).replace("|", "\\|")
        lines.append(f"| {v.task_name} | {v.verdict} | {outs} | {cause} |")
    if result.drift:
        lines += ["", "**Environment drift:** " + "; ".join(result.drift[:20])]
    return "\n".join(lines)


@flow(name="reproflow-replay", log_prints=False)
def replay_flow(
    run_id: str,
    store: Optional[str] = None,
    in_place: bool = False,
    allow_changed_inputs: bool = False,
    task: Optional[str] = None,
    from_task: Optional[str] = None,
) -> Any:
    """Replay a recorded run and compare its outputs task by task.

    Args:
        run_id: the run to replay.
        store: the store URL (default ``$REPROFLOW_STORE`` of the worker, else ``./.reproflow``).
        in_place: use the worker's environment instead of rebuilding the recorded one.
        allow_changed_inputs: go on when an input changed (the verdict says so).
        task: replay only this task's runs.
        from_task: replay this task and everything downstream of it.
    """
    from prefect.artifacts import create_markdown_artifact
    from prefect.states import Completed, Failed

    from . import replay

    logger = get_run_logger()
    result = replay(
        run_id,
        store,
        in_place=in_place,
        allow_changed_inputs=allow_changed_inputs,
        task=task,
        from_task=from_task,
    )
    for v in result.tasks:
        logger.info("%s: %s %s", v.task_name, v.verdict, "; ".join(v.causes))
    create_markdown_artifact(
        key="reproflow-replay",
        markdown=_markdown(result),
        description=f"replay of {result.run_id}",
    )
    data = result.model_dump(mode="json")
    if result.reproduced:
        return Completed(message=f"reproduced: replay run {result.replay_run_id}", data=data)
    bad = ", ".join(dict.fromkeys(v.task_name for v in result.tasks if v.verdict != "reproduced"))
    return Failed(message=f"{result.verdict}: {bad or 'see the verdict artifact'}", data=data)


__all__ = ["replay_flow"]
