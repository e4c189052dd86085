"""reproflow's replay and determinism probe as Prefect flows, to start from the Prefect UI.

Deploy them from an installed reproflow by their module entrypoints (no checkout of reproflow
needed)::

    # prefect.yaml of your project
    deployments:
      - name: replay
        entrypoint: reproflow.flows:replay_flow
        work_pool: {name: reproflow-process}
      - name: probe
        entrypoint: reproflow.flows:probe_flow
        work_pool: {name: reproflow-process}

or serve them from a long-running process::

    from reproflow.flows import replay_flow
    replay_flow.serve(name="replay")

A flow run of either leaves on itself: the replay plan (what is rebuilt, where inputs come from,
what is risky), the per-task verdict table and links to the recorded run's flow run and to the
replay's own recorded run; on the recorded run's flow run it updates a ``reproflow-replays``
artifact naming every replay of it and its verdict. A replay that cannot run (a refused plan, a
changed input) ends the flow run Failed with the one-line reason as its state message.
See docs/replay.md ("From the Prefect UI").
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any, Optional

from prefect import flow, get_run_logger

MAX_ROWS = 500


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _ui_url(flow_run_id: str) -> Optional[str]:
    """The Prefect UI's page of a flow run, when the UI URL is known."""
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    return f"{str(base).rstrip('/')}/runs/flow-run/{flow_run_id}" if base else None


def plan_markdown(plan: Any) -> str:
    """The replay plan as the CLI prints it, in a Markdown code block."""
    from rich.console import Console

    from .replay._render import plan_renderable

    console = Console(record=True, width=110, color_system=None, force_terminal=False, file=io.StringIO())
    console.print(plan_renderable(plan))
    text = console.export_text()
    return f"# Replay plan of `{plan.run_id}`\n\n```\n{text.rstrip()}\n```\n"


def verdict_rows(tasks: Any) -> list[dict[str, Any]]:
    """One row per task run: task, map index, verdict, outputs compared, cause."""
    rows = []
    for v in list(tasks)[:MAX_ROWS]:
        causes = list(v.causes)
        for o in v.outputs:
            if not o.match:
                causes.insert(0, f"{o.uri}: {(o.expected or '-')[:19]} != {(o.actual or '-')[:19]}")
        rows.append({
            "task": v.task_name,
            "map_index": "" if v.map_index is None else v.map_index,
            "verdict": v.verdict,
            "outputs": f"{sum(o.match for o in v.outputs)}/{len(v.outputs)} match" if v.outputs else "-",
            "result": ("no stable hash" if v.verdict == "unverified" and v.result_unhashable else "n/a") if v.result_match is None
            else ("match" if v.result_match else "differs"),
            "cause": "; ".join(causes) or (v.error or ""),
        })
    return rows


def probe_rows(tasks: Any) -> list[dict[str, Any]]:
    """One row per task run of a determinism probe."""
    rows = []
    for t in list(tasks)[:MAX_ROWS]:
        rows.append({
            "task": t.task_name,
            "map_index": "" if t.map_index is None else t.map_index,
            "verdict": t.verdict,
            "run 1 vs run 2": "-" if t.between_runs is None else ("same" if t.between_runs else "differs"),
            "vs original": " / ".join(v or "-" for v in t.vs_original) or "-",
            "cause": "; ".join(t.causes) or (t.error or ""),
        })
    return rows


def _links(run_id: str, new_runs: list[str]) -> list[tuple[str, str, str]]:
    """(key, link, description) for the recorded run's flow run and the replay's own runs."""
    out = []
    recorded = _ui_url(run_id)
    if recorded:
        out.append(("reproflow-recorded-run", recorded, f"the recorded run {run_id} in the Prefect UI"))
    for i, rid in enumerate(r for r in new_runs if r):
        url = _ui_url(rid)
        if url:
            out.append((f"reproflow-replay-run-{i + 1}" if len(new_runs) > 1 else "reproflow-replay-run", url,
                        f"the replay's own recorded run {rid} in the Prefect UI"))
    return out


def replays_markdown(store: Any, run_id: str) -> str:
    """Every replay of ``run_id`` found in the store, newest first, with its status."""
    rows = [s for s in store.list_runs() if getattr(s, "replay_of", None) == run_id]
    lines = [f"# Replays of `{run_id}`", "", "| replay run | started | status |", "| --- | --- | --- |"]
    for s in rows[:MAX_ROWS]:
        url = _ui_url(s.run_id)
        name = f"[`{s.run_id}`]({url})" if url else f"`{s.run_id}`"
        lines.append(f"| {name} | {_md_cell(s.started_at)} | {_md_cell(s.status)} |")
    if not rows:
        lines.append("| - | - | - |")
    return "\n".join(lines) + "\n"


def _publish(run_id: str, store_url: Optional[str], *, plan: Any, table: list[dict[str, Any]], table_key: str,
             summary: str, new_runs: list[str]) -> None:
    """The replay flow run's artifacts, and the replays list on the recorded run's flow run."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    from .analysis._api import open_store

    if plan is not None:
        create_markdown_artifact(key="reproflow-replay-plan", markdown=plan_markdown(plan),
                                 description=f"reproflow: replay plan of {run_id}")
    create_table_artifact(key=table_key, table=table, description=summary)
    for key, link, description in _links(run_id, new_runs):
        create_link_artifact(key=key, link=link, link_text=description, description=description)
    try:
        recorded = uuid.UUID(run_id)
    except ValueError:
        return
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    store = open_store(store_url)
    with get_client(sync_client=True) as client:
        try:
            client.read_flow_run(recorded)
        except Exception:  # noqa: BLE001 - the recorded run lives on another Prefect server
            return
        client.create_artifact(artifact=ArtifactCreate(
            type="markdown", key="reproflow-replays", flow_run_id=recorded,
            description="reproflow: replays of this run", data=replays_markdown(store, run_id)))


def _failed(message: str, logger: Any) -> Any:
    from prefect.states import Failed

    logger.error(message)
    return Failed(message=message)


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
        run_id: the run to replay (a unique prefix is enough).
        store: the store URL (default ``$REPROFLOW_STORE`` of the worker, else ``./.reproflow``).
        in_place: use the worker's environment instead of rebuilding the recorded one.
        allow_changed_inputs: go on when an input changed (the verdict says so; the run fails).
        task: replay only this task's runs.
        from_task: replay this task and everything downstream of it.
        twice: run the determinism probe instead (as ``reproflow replay --twice``): the flow
            runs twice in one environment; Completed only when every task is deterministic
            and both runs match the original.
    """
    from prefect.states import Completed, Failed

    from .errors import ReproflowError

    logger = get_run_logger()
    if twice:
        return _probe(run_id, store, rebuild=not in_place, allow_changed_inputs=allow_changed_inputs, task=task,
                      from_task=from_task, require_original=True)
    from .replay import replay

    seen: dict[str, Any] = {}
    try:
        result = replay(run_id, store, in_place=in_place, allow_changed_inputs=allow_changed_inputs, task=task,
                        from_task=from_task, on_plan=lambda prepared: seen.setdefault("plan", prepared.plan))
    except ReproflowError as exc:
        if "plan" in seen:
            from prefect.artifacts import create_markdown_artifact

            create_markdown_artifact(key="reproflow-replay-plan", markdown=plan_markdown(seen["plan"]),
                                     description=f"reproflow: replay plan of {run_id} (refused)")
        return _failed(str(exc), logger)
    for v in result.tasks:
        logger.info("%s%s: %s %s", v.task_name, "" if v.map_index is None else f"[{v.map_index}]", v.verdict,
                    "; ".join(v.causes))
    ok = sum(v.verdict == "reproduced" for v in result.tasks)
    n_unverified = result.counts.get("unverified", 0)
    unchecked = f", {n_unverified} unverified (nothing compared them; see why above)" if n_unverified else ""
    summary = (f"reproflow: replay of {result.run_id}: {result.verdict}, {ok}/{len(result.tasks)} task runs "
               f"reproduced{unchecked}")
    _publish(result.run_id, store, plan=seen.get("plan"), table=verdict_rows(result.tasks),
             table_key="reproflow-verdicts", summary=summary, new_runs=[result.replay_run_id or ""])
    data = json.loads(result.model_dump_json())
    if result.reproduced:
        return Completed(message=f"reproduced: replay run {result.replay_run_id}{unchecked}", data=data)
    bad = ", ".join(dict.fromkeys(v.task_name for v in result.tasks if v.verdict not in ("reproduced", "unverified")))
    bad = bad or ", ".join(dict.fromkeys(v.task_name for v in result.tasks if v.verdict == "unverified"))
    return Failed(message=f"{result.verdict}: {bad or 'see the verdict table'}", data=data)


def _probe(run_id: str, store: Optional[str], **options: Any) -> Any:
    from prefect.states import Completed, Failed

    from .errors import ReproflowError
    from .replay import probe

    logger = get_run_logger()
    seen: dict[str, Any] = {}
    try:
        probed = probe(run_id, store, on_plan=lambda prepared: seen.setdefault("plan", prepared.plan), **options)
    except ReproflowError as exc:
        return _failed(str(exc), logger)
    for t in probed.tasks:
        logger.info("%s: %s %s", t.task_name, t.verdict, "; ".join(t.causes))
    summary = f"reproflow: determinism probe of {probed.run_id}: {probed.verdict}"
    _publish(probed.run_id, store, plan=seen.get("plan"), table=probe_rows(probed.tasks), table_key="reproflow-probe",
             summary=summary, new_runs=list(probed.run_ids))
    data = json.loads(probed.model_dump_json())
    if probed.exit_code == 0:
        return Completed(message=f"deterministic and reproduced: runs {', '.join(probed.run_ids)}", data=data)
    bad = ", ".join(dict.fromkeys(t.task_name for t in probed.tasks if t.verdict not in ("deterministic", "unverified")))
    bad = bad or ", ".join(dict.fromkeys(t.task_name for t in probed.tasks if t.verdict == "unverified"))
    return Failed(message=f"{probed.verdict}: {bad or 'see the probe table'}", data=data)


@flow(name="reproflow-probe", log_prints=False)
def probe_flow(
    run_id: str,
    store: Optional[str] = None,
    rebuild: bool = True,
    allow_changed_inputs: bool = False,
    task: Optional[str] = None,
    from_task: Optional[str] = None,
) -> Any:
    """Run a recorded run twice in one environment and name the tasks nondeterministic by
    themselves (the determinism probe). Completed only when every task is deterministic and
    both runs match the original.

    Args:
        run_id: the run to probe (a unique prefix is enough).
        store: the store URL (default ``$REPROFLOW_STORE`` of the worker, else ``./.reproflow``).
        rebuild: run in the recorded environment rebuilt with uv (False: the worker's own).
        allow_changed_inputs: go on when an input changed.
        task: probe only this task's runs.
        from_task: probe this task and everything downstream of it.
    """
    return _probe(run_id, store, rebuild=rebuild, allow_changed_inputs=allow_changed_inputs, task=task,
                  from_task=from_task, require_original=True)


__all__ = ["probe_flow", "replay_flow"]
