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


def _probe_markdown(result: Any) -> str:
    lines = [
        f"# Determinism probe of `{result.run_id}`",
        "",
        f"**Verdict:** {result.verdict} · runs " + " & ".join(f"`{r}`" for r in result.run_ids),
        "",
        "| task | verdict | 1 vs 2 | vs original | why |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in result.tasks:
        between = "-" if t.between_runs is None else ("same" if t.between_runs else "differs")
        vs = " / ".join(v or "-" for v in t.vs_original) or "-"
        cause = "; ".join(t.causes).replace("|", "\\|")
        lines.append(f"| {t.task_name} | {t.verdict} | {between} | {vs} | {cause} |")
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
    twice: bool = False,
) -> Any:
    """Replay a recorded run and compare its outputs task by task.

    Args:
        run_id: the run to replay.
        store: the store URL (default ``$REPROFLOW_STORE`` of the worker, else ``./.reproflow``).
        in_place: use the worker's environment instead of rebuilding the recorded one.
        allow_changed_inputs: go on when an input changed (the verdict says so).
        task: replay only this task's runs.
        from_task: replay this task and everything downstream of it.
        twice: run the determinism probe instead (as ``reproflow replay --twice``): the flow
            runs twice in one environment; Completed only when every task is deterministic
            and both runs match the original.
    """
    from prefect.artifacts import create_markdown_artifact
    from prefect.states import Completed, Failed

    from . import replay

    logger = get_run_logger()
    if twice:
        from ._probe import probe

        probed = probe(run_id, store, rebuild=not in_place, allow_changed_inputs=allow_changed_inputs, task=task,
                       from_task=from_task, require_original=True)
        for t in probed.tasks:
            logger.info("%s: %s %s", t.task_name, t.verdict, "; ".join(t.causes))
        create_markdown_artifact(key="reproflow-probe", markdown=_probe_markdown(probed),
                                 description=f"determinism probe of {probed.run_id}")
        pdata = probed.model_dump(mode="json")
        if probed.exit_code == 0:
            return Completed(message=f"deterministic and reproduced: runs {', '.join(probed.run_ids)}", data=pdata)
        bad = ", ".join(dict.fromkeys(t.task_name for t in probed.tasks if t.verdict != "deterministic"))
        return Failed(message=f"{probed.verdict}: {bad or 'see the probe artifact'}", data=pdata)
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
