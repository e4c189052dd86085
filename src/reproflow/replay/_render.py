"""Rich rendering of a replay plan, its progress and its verdict."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ._models import ProbeResult, ReplayPlan, ReplayResult

_VERDICT_STYLE = {
    "reproduced": "bold green",
    "unverified": "bold yellow",
    "differs": "bold red",
    "failed": "bold red",
    "missing": "bold yellow",
    "extra": "yellow",
    "deterministic": "bold green",
    "nondeterministic": "bold red",
    "inherited": "yellow",
    "environment": "bold yellow",
}


def _short(digest: str | None, n: int = 12) -> str:
    if not digest:
        return "-"
    return digest.replace("sha256:", "")[:n]


def plan_renderable(plan: ReplayPlan) -> Panel:
    """The plan: what will be rebuilt and run, and what is missing or risky."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("run", f"{plan.run_id}  [dim]{plan.flow_name} · {plan.status} · {plan.engine}[/]")
    grid.add_row("entrypoint", plan.entrypoint or plan.module or "-")
    if plan.partial:
        grid.add_row("partial", plan.partial)
    if plan.replay_engine == "tasks":
        grid.add_row("runs as", "task by task in DAG order, no orchestrator (--engine tasks)")
    py = f"{plan.python_implementation} {plan.python_recorded}"
    if plan.python_path:
        py += f" → {plan.python_path}" + ("" if plan.python_exact else " [yellow](not exact)[/]")
    grid.add_row("python", py)
    if plan.mode == "in-place":
        grid.add_row("environment", "in place: the current interpreter and packages (drift reported after)")
    else:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(plan.pins_by_kind.items()))
        cache = "[green]cached[/] " + (plan.env_cache or "") if plan.env_cached else (f"build into {plan.env_cache}" if plan.env_cache else "build in the work folder")
        grid.add_row("environment", f"{plan.n_pins} pins ({kinds}); {cache}")
        if plan.index:
            grid.add_row("index", plan.index)
    if plan.local_sources:
        grid.add_row("local sources", ", ".join(plan.local_sources))
    if plan.vcs_pins:
        grid.add_row("vcs", ", ".join(plan.vcs_pins))
    code = plan.code
    if plan.commit:
        code += f"  [dim](commit {plan.commit[:12]}{', dirty' if plan.dirty else ''})[/]"
    grid.add_row("code", code)
    if plan.diff_stat:
        grid.add_row("diff", plan.diff_stat.strip().splitlines()[-1] if plan.diff_stat.strip() else "-")
    if plan.checkout:
        grid.add_row("checkout", f"[yellow]{plan.checkout}[/]")
    grid.add_row("platform", plan.platform or "-")
    grid.add_row("hardware", plan.hardware or "-")
    if plan.seed is not None or plan.pythonhashseed is not None:
        grid.add_row("seeds", f"seed={plan.seed} PYTHONHASHSEED={plan.pythonhashseed}")
    selected = [t for t in plan.tasks if t.selected]
    grid.add_row("tasks", f"{len(selected)} task run(s)" + (f" of {len(plan.tasks)}" if len(selected) != len(plan.tasks) else ""))
    if plan.source_root:
        where = "the restored root" if plan.cwd in (None, ".") else f"{plan.cwd} in the restored code"
        grid.add_row("runs in", f"{where} [dim](paths under {plan.source_root} are relocated there)[/]")
    for item in plan.inputs:
        stored = " [dim](copy stored)[/]" if item.stored_copy else ""
        origin = f" [dim]← {item.origin}[/]" if item.in_source is not None and item.origin else ""
        grid.add_row("input", f"{item.uri}  sha256:{_short(item.sha256)}{stored}{origin}")
    for line in plan.secrets:
        grid.add_row("secret", Text(line))
    if plan.secret_files:
        grid.add_row("left out", Text("secret files not recorded (supply them yourself): " + ", ".join(plan.secret_files)))
    parts: list[Any] = [grid]
    if plan.problems:
        parts.append(Text("\nmissing (the replay cannot run):", style="bold red"))
        parts += [Text(f"  ✗ {p}", style="red") for p in plan.problems]
    if plan.risks:
        parts.append(Text("\nrisky (results may differ):", style="bold yellow"))
        parts += [Text(f"  ! {r}", style="yellow") for r in plan.risks]
    return Panel(Group(*parts), title="replay plan", title_align="left", border_style="cyan")


def verdict_table(result: ReplayResult) -> Table:
    """One row per task run: verdict, outputs, result hash, likely causes."""
    table = Table(title=f"replay of {result.run_id}" + (f" → {result.replay_run_id}" if result.replay_run_id else ""),
                  title_justify="left", show_lines=False)
    table.add_column("task")
    table.add_column("verdict")
    table.add_column("outputs", justify="right")
    table.add_column("result hash")
    table.add_column("likely cause", overflow="fold")
    for v in result.tasks:
        name = (f"{v.subflow}/" if v.subflow else "") + v.task_name + (f"[{v.map_index}]" if v.map_index is not None else "")
        outs = f"{sum(o.match for o in v.outputs)}/{len(v.outputs)}" if v.outputs else "-"
        if v.verdict == "unverified" and v.result_unhashable:
            rh = "[yellow]no stable hash[/]"
        elif v.result_match is None:
            rh = "[dim]n/a[/]"
        elif v.result_match:
            rh = f"[green]{_short(v.original_result_hash, 10)}[/]"
        else:
            rh = f"[red]{_short(v.original_result_hash, 10)} ≠ {_short(v.replay_result_hash, 10)}[/]"
        # a file that is both a parameter's output and the returned path is one line, not two
        lines = dict.fromkeys(f"{o.uri}: {_short(o.expected)} ≠ {_short(o.actual)}" for o in v.outputs if not o.match)
        causes = "; ".join([*lines, *v.causes])
        table.add_row(name, f"[{_VERDICT_STYLE.get(v.verdict, '')}]{v.verdict}[/]", outs, rh, causes or "")
    return table


def summary_line(result: ReplayResult) -> str:
    n = len(result.tasks)
    ok = sum(v.verdict == "reproduced" for v in result.tasks)
    unverified = [v.task_name for v in result.tasks if v.verdict == "unverified"]
    # a return value with no stable hash (the usual case), or a folder output an older reproflow recorded whole
    hashless = all(v.result_unhashable for v in result.tasks if v.verdict == "unverified")
    why, hint = (("no stable hash of the return value", "; see reproflow.register_hasher") if hashless
                 else ("see the likely causes", ""))
    unchecked = (f", {len(unverified)} unverified ({why}, nothing compared it: "
                 f"{', '.join(dict.fromkeys(unverified))}{hint})") if unverified else ""
    message = f": {result.flow_message}" if result.flow_message else ""
    if result.verdict == "reproduced":
        failed = (f"; the run failed as recorded, and again in the replay{message}"
                  if result.recorded_state and result.recorded_state != "COMPLETED" else "")
        return (f"[bold green]reproduced[/]: {ok}/{n} task runs match{unchecked}{failed} "
                f"(replay run {result.replay_run_id})")
    if result.verdict == "unverified":
        what = "returned values with no stable hash" if hashless else "could not be compared (see the likely causes)"
        return (f"[bold yellow]unverified[/]: nothing differs, but nothing could be compared either: {n} task run(s) "
                f"{what} ({', '.join(dict.fromkeys(unverified))}){hint}")
    if result.verdict == "reproduced-with-changed-inputs":
        return (f"[bold yellow]not a reproduction[/]: {ok}/{n} task runs match{unchecked}, but inputs changed "
                "(--allow-changed-inputs)")
    bad = [v.task_name for v in result.tasks if v.verdict not in ("reproduced", "unverified")]
    differs = f"; differs: {', '.join(dict.fromkeys(bad))}" if bad else ""
    if result.flow_end_differs:
        return (f"[bold red]not reproduced[/]: the recorded run {result.recorded_state}, the replay {result.flow_state}"
                f"{message}; {ok}/{n} task runs match{unchecked}{differs}")
    return f"[bold red]not reproduced[/]: {ok}/{n} task runs match{unchecked}{differs}"


def render_result(console: Console, result: ReplayResult) -> None:
    """Verdict table, drift, inputs allowed to change, where the work folder is, summary."""
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    if result.tasks:
        console.print(verdict_table(result))
    changed = [i for i in result.inputs if i.status in ("changed", "missing")]
    for i in changed:
        console.print(f"[yellow]input {i.status}:[/] {i.uri} recorded sha256:{i.expected} found {i.actual or 'nothing'}")
    restored = [i for i in result.inputs if i.status == "restored"]
    for i in restored:  # from the copy stored at record time, from its original path, or recreated empty
        console.print(f"[dim]input restored:[/] {i.uri}" + (f" [dim]({i.note})[/]" if i.note else ""))
    if result.drift:
        console.print("[bold]environment drift[/] (recorded → replay): " + "; ".join(result.drift[:12])
                      + (f" (+{len(result.drift) - 12} more)" if len(result.drift) > 12 else ""))
    if result.environment is not None:
        e = result.environment
        how = "reused" if e.reused else (f"built in {e.build_seconds:.1f} s" if e.mode == "rebuild" else "in place")
        console.print(f"[dim]environment: {how}, Python {e.python_version}, {e.path or e.python}[/]")
    if result.work_dir:
        console.print(f"[dim]work folder kept: {result.work_dir}[/]")
    console.print(summary_line(result))


def _same(flag: bool | None) -> str:
    return "[dim]-[/]" if flag is None else ("[green]same[/]" if flag else "[red]differs[/]")


def probe_table(result: ProbeResult) -> Table:
    """One row per task run: probe verdict, run 1 vs run 2, each run vs the original, causes."""
    runs = " & ".join(r[:8] for r in result.run_ids)
    table = Table(title=f"determinism probe of {result.run_id}" + (f" → {runs}" if runs else ""),
                  title_justify="left")
    table.add_column("task")
    table.add_column("verdict")
    table.add_column("1 vs 2")
    table.add_column("vs original")
    table.add_column("results (orig 1 2)", no_wrap=True)
    table.add_column("why", overflow="fold", ratio=1)
    for t in result.tasks:
        name = (f"{t.subflow}/" if t.subflow else "") + t.task_name + (f"[{t.map_index}]" if t.map_index is not None else "")
        vs = " / ".join("[green]same[/]" if v == "reproduced" else f"[red]{v or '-'}[/]" for v in t.vs_original) or "-"
        hashes = " ".join(_short(h, 6) for h in t.result_hashes) or "-"
        between = _same(t.between_runs)
        why = "; ".join(t.causes)
        if t.differing_outputs:
            why = "outputs differ between the runs: " + ", ".join(t.differing_outputs) + (f"; {why}" if why else "")
        table.add_row(name, f"[{_VERDICT_STYLE.get(t.verdict, '')}]{t.verdict}[/]", between, vs, hashes, why)
    return table


def probe_summary(result: ProbeResult) -> str:
    def names(*verdicts: str) -> str:
        return ", ".join(dict.fromkeys(t.task_name for t in result.tasks if t.verdict in verdicts))

    n = len(result.tasks)
    unverified = names("unverified")
    unchecked = (f"; [yellow]unverified (no stable hash of the return value, nothing compared it): {unverified}[/]"
                 if unverified else "")
    if result.verdict == "unverified":
        return (f"[bold yellow]unverified[/]: nothing differs, but nothing could be compared either: {unverified} "
                "returned values with no stable hash; see reproflow.register_hasher")
    if result.deterministic:
        n_ok = n - result.counts.get("unverified", 0)
        line = (f"[bold green]deterministic[/]: all {n_ok} compared task runs agree between two runs in the same "
                "environment")
        env = names("environment")
        if env:
            line += f"; [yellow]differ from the original because the environment or data changed: {env}[/]"
        elif result.reproduced:
            line += " and with the original"
        return line + unchecked
    parts = [f"[bold red]nondeterministic[/]: {names('nondeterministic') or 'none by itself'}"]
    inh = names("inherited")
    if inh:
        parts.append(f"inherited from upstream: {inh}")
    other = names("failed", "missing")
    if other:
        parts.append(f"failed or missing: {other}")
    env = names("environment")
    if env:
        parts.append(f"differ from the original only (environment changed): {env}")
    return "; ".join(parts) + unchecked


def render_probe(console: Console, result: ProbeResult) -> None:
    """Probe table, drift, work folder, summary."""
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    if result.tasks:
        console.print(probe_table(result))
    for i in result.inputs:
        if i.status in ("changed", "missing"):
            console.print(f"[yellow]input {i.status}:[/] {i.uri} recorded sha256:{i.expected} found {i.actual or 'nothing'}")
    if result.drift:
        console.print("[bold]environment drift[/] (recorded → probe): " + "; ".join(result.drift[:12])
                      + (f" (+{len(result.drift) - 12} more)" if len(result.drift) > 12 else ""))
    if result.environment is not None:
        e = result.environment
        how = "reused" if e.reused else (f"built in {e.build_seconds:.1f} s" if e.mode == "rebuild" else "in place")
        console.print(f"[dim]environment: {how}, Python {e.python_version}, {e.path or e.python}[/]")
    if result.work_dir:
        console.print(f"[dim]work folder kept: {result.work_dir}[/]")
    console.print(probe_summary(result))


@contextmanager
def progress_bars(console: Console, enabled: bool = True) -> Iterator[Any]:
    """A progress callback drawing one bar for the environment build and one for the tasks."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bars: dict[str, Any] = {}
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[phase]}[/]"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as prog:

        def report(phase: str, description: str, completed: int, total: int) -> None:
            label = {"env": "environment", "tasks": "tasks", "tasks 1": "run 1", "tasks 2": "run 2"}.get(phase, phase)
            if phase not in bars:
                bars[phase] = prog.add_task(description, total=max(total, 1), phase=label)
            prog.update(bars[phase], description=description, completed=completed, total=max(total, 1))

        yield report


__all__ = [
    "plan_renderable",
    "probe_summary",
    "probe_table",
    "progress_bars",
    "render_probe",
    "render_result",
    "summary_line",
    "verdict_table",
]
