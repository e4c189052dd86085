"""Prefect UI artifacts for a recorded flow run: a Markdown summary, a task table and a link.

Artifacts stay small (the server drops creation events above about 1.5 MB): the summary and the
table are capped, and the link points at the full record in the store.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ._dag import upstream_map
from .records import Environment, Run
from .store import Store

MAX_TABLE_ROWS = 500
MAX_MARKDOWN = 200_000


def _short(digest: str | None, n: int = 12) -> str:
    if not digest:
        return ""
    return digest.split(":", 1)[-1][:n]


def _size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def run_location(store: Store, run_id: str) -> str:
    """A URL for the run's folder in the store (``file://`` for local stores)."""
    path = store.run_dir(run_id)
    if store._local:
        return "file://" + path
    protocol = store.fs.protocol[0] if isinstance(store.fs.protocol, (tuple, list)) else store.fs.protocol
    return f"{protocol}://{path}"


def summary_markdown(store: Store, run: Run, env: Environment | None = None) -> str:
    """The run's provenance as Markdown: environment, hardware, git, data in and out."""
    ctx = run.context
    rec = run.record
    lines = [f"# reproflow provenance: {rec.flow_name}", ""]
    lines += [
        f"- **Run**: `{rec.run_id}`" + (f" (replay of `{rec.replay_of}`)" if rec.replay_of else ""),
        f"- **Status**: {run.status}",
        f"- **Store**: `{store.display_url}`",
        f"- **Entrypoint**: `{rec.entrypoint or '?'}`",
        f"- **Task runs**: {len(run.final_tasks())} ({len(run.tasks)} attempts)",
        "",
    ]
    if ctx is not None:
        lines += ["## Environment", ""]
        lines.append(f"- Python {ctx.python_version}")
        if env is not None:
            lines.append(f"- {env.platform.system} {env.platform.release} ({env.platform.machine}), {env.platform.distro or ''} {env.platform.libc or ''}".rstrip())
            lines.append(f"- {len(env.distributions)} distributions installed")
            redacted = sorted(k for k, v in env.env_vars.items() if v.redacted)
            if redacted:
                lines.append(f"- {len(redacted)} environment variables redacted: {', '.join(redacted[:20])}")
        lines += ["", "## Hardware", ""]
        hw = ctx.hardware
        lines.append(f"- CPU: {hw.cpu.model or '?'} ({hw.cpu.logical_cores or '?'} logical cores)")
        lines.append(f"- Memory: {_size(hw.memory_total_bytes)}")
        if hw.gpus:
            for g in hw.gpus:
                lines.append(f"- GPU {g.index}: {g.name} ({_size(g.memory_total_bytes)}), driver {hw.gpu_driver}, CUDA {hw.cuda_driver_version}")
        else:
            lines.append(f"- GPU: none ({hw.gpu_absent_reason or 'not detected'})")
        lines += ["", "## Git", ""]
        git = ctx.git
        if git.available:
            lines.append(f"- Commit `{git.commit}` on `{git.branch or 'detached'}`" + (" (**dirty**)" if git.dirty else " (clean)"))
            if git.remote_url:
                lines.append(f"- Remote: `{git.remote_url}`")
            if git.tags:
                lines.append(f"- Tags: {', '.join(git.tags)}")
            if git.untracked:
                lines.append(f"- {len(git.untracked)} untracked files")
        else:
            lines.append(f"- not recorded: {git.absent_reason}")
    data_in: dict[str, Any] = {}
    data_out: dict[str, Any] = {}
    for t in run.final_tasks():
        for ref in t.inputs:
            data_in.setdefault(ref.uri, ref)
        for ref in t.outputs:
            data_out[ref.uri] = ref
    for title, refs in (("Data in", data_in), ("Data out", data_out)):
        lines += ["", f"## {title}", ""]
        if not refs:
            lines.append("- none")
            continue
        lines += ["| URI | SHA-256 | Size |", "|---|---|---|"]
        for ref in list(refs.values())[:MAX_TABLE_ROWS]:
            lines.append(f"| `{ref.uri}` | `{_short(ref.sha256, 16)}` | {_size(ref.size)} |")
    findings = [f for t in run.final_tasks() for f in t.findings]
    if findings:
        lines += ["", "## Reproducibility findings", ""]
        seen = set()
        for f in findings:
            key = (f.code, f.path, f.line)
            if key in seen:
                continue
            seen.add(key)
            lines.append(f"- `{f.code}` {f.message} ({f.path}:{f.line})")
    text = "\n".join(lines) + "\n"
    return text if len(text) <= MAX_MARKDOWN else text[: MAX_MARKDOWN - 40] + "\n\n(truncated; see the store)\n"


def task_table(run: Run) -> list[dict[str, Any]]:
    """One row per task run (last attempt), JSON-safe, for a Prefect table artifact."""
    up = upstream_map(run)
    rows = []
    for t in run.final_tasks()[:MAX_TABLE_ROWS]:
        rows.append(
            {
                "task": t.task_name,
                "task_run_id": t.task_run_id,
                "state": t.state,
                "attempts": t.attempt,
                "duration_s": round(t.duration_s, 4),
                "upstream": ", ".join(sorted({s[:8] for srcs in up.get(t.task_run_id, {}).values() for s in srcs})),
                "inputs": ", ".join(f"{r.param}={_short(r.sha256)}" for r in t.inputs),
                "outputs": ", ".join(f"{r.param}={_short(r.sha256)}" for r in t.outputs),
                "result_hash": _short(t.result_hash),
                "params_hash": _short(t.parameters_hash),
            }
        )
    return rows


def publish_run_artifacts(store: Store, run_id: str, *, client: Any = None, report: bool = False) -> list[str]:
    """Create the three artifacts on the Prefect flow run ``run_id`` (the provenance summary, with
    ``report`` the reproducibility score in it, the task table and the link), from one load of
    the run. Returns their ids."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    run = store.load_run(run_id)
    env = None
    if run.context is not None:
        try:
            env = store.get_model_blob(run.context.environment_blob, Environment)
        except Exception:  # noqa: BLE001 - a summary without the environment still helps
            env = None
    flow_run_id = uuid.UUID(run_id)
    artifacts = [
        ArtifactCreate(
            type="markdown",
            key="reproflow-provenance",
            description="reproflow: environment, hardware, git and data of this run",
            flow_run_id=flow_run_id,
            data=summary_markdown(store, run, env),
        ),
        ArtifactCreate(
            type="table",
            key="reproflow-tasks",
            description="reproflow: provenance of each task run",
            flow_run_id=flow_run_id,
            data=json.dumps(task_table(run)),
        ),
        ArtifactCreate(
            type="link",
            key="reproflow-record",
            description="reproflow: where the full record is stored",
            flow_run_id=flow_run_id,
            data=f"[reproflow record of run {run_id}]({run_location(store, run_id)})",
        ),
    ]
    if report and env is not None:
        # The scored checklist goes into the summary (one API call less per flow run: each costs
        # 50-200 ms on a server still busy with the run's events); `reproflow report --publish`
        # attaches the full report as an artifact of its own.
        from ._report import report_for

        scored = report_for(run, env, store=store)
        lines = ["", f"## Reproducibility: {scored.score}/100", ""]
        lines += [f"- -{c.points_lost} {c.title}: {c.reason}" for c in scored.deductions] or ["- nothing lost"]
        lines += ["", "Full report: `reproflow report " + run_id + "`"]
        artifacts[0].data = str(artifacts[0].data) + "\n".join(lines) + "\n"
    if client is not None:
        return [str(client.create_artifact(artifact=art).id) for art in artifacts]
    with get_client(sync_client=True) as own:
        return [str(own.create_artifact(artifact=art).id) for art in artifacts]


__all__ = ["publish_run_artifacts", "run_location", "summary_markdown", "task_table"]
