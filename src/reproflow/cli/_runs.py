"""`reproflow runs list`, `reproflow runs show RUN_ID` and `reproflow runs publish RUN_ID`."""

from __future__ import annotations

from typing import Any, Optional

from typing import TYPE_CHECKING

import typer

from ._common import JsonOption, StoreOption, console, console_err, print_json

if TYPE_CHECKING:  # imported where used: `reproflow --version` and other commands do not load them
    from rich.tree import Tree

    from ..records import Environment, Run

runs_app = typer.Typer(help="List and inspect recorded runs.", no_args_is_help=True)


def unique_prefix_len(ids: list[str], minimum: int = 8) -> int:
    """The shortest prefix length (at least ``minimum``) that tells every id apart, like git."""
    n = minimum
    longest = max((len(i) for i in ids), default=minimum)
    while n < longest and len({i[:n] for i in ids}) < len(set(ids)):
        n += 1
    return n


def _when(dt: Any) -> str:
    return dt.astimezone().strftime("%Y-%m-%d %H:%M") if dt else ""


_STATUS_STYLE = {"COMPLETED": "green", "FAILED": "red", "CRASHED": "red", "RUNNING": "yellow", "CANCELLED": "magenta"}


#: Rows in the `runs list` table unless --limit says otherwise (drawing 1,000 rows takes ~1 s).
TABLE_LIMIT = 50


@runs_app.command("list")
def list_cmd(
    store: Optional[str] = StoreOption,
    as_json: bool = JsonOption,
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Show at most N runs (0: all). "
                                        "Default: the newest 50 in the table, all with --json."),
) -> None:
    """Recorded runs, newest first: flow, status, start time, git state."""
    from rich.table import Table

    from ..analysis._api import list_runs

    problems: list[str] = []
    runs = list_runs(store, problems=problems)
    for problem in problems:  # one bad run never hides the others
        console_err.print(f"[yellow]warning:[/] {problem}", soft_wrap=True)
    total = len(runs)
    if limit is None:
        limit = 0 if as_json else TABLE_LIMIT
    if limit > 0:
        runs = runs[:limit]
    if as_json:
        print_json([r.model_dump(mode="json") for r in runs])
        return
    if not runs:
        console.print("no runs recorded yet")
        return
    width = unique_prefix_len([r.run_id for r in runs])
    title = f"{len(runs)} run(s)" if total == len(runs) else f"newest {len(runs)} of {total} runs (--limit 0 for all)"
    table = Table(title=title, caption="run ids shortened to a unique prefix; any unique prefix works")
    table.add_column("run id", no_wrap=True)
    table.add_column("flow", no_wrap=True, min_width=min(40, max(len(r.flow_name) for r in runs)))
    table.add_column("status", no_wrap=True)
    table.add_column("started")  # wraps between date and time in a narrow terminal
    table.add_column("tasks", justify="right", min_width=5)
    table.add_column("git", overflow="fold")
    for r in runs:
        style = _STATUS_STYLE.get(r.status, "")
        status = f"[{style}]{r.status}[/]" if style else r.status
        if r.replay_of:
            status += f"\n[dim]replay of {r.replay_of[:8]}[/]"
        git = "no git" if r.dirty is None else (r.commit or "")[:7] + (" [yellow]dirty[/]" if r.dirty else "")
        table.add_row(
            r.run_id[:width],
            r.flow_name,
            status,
            _when(r.started_at),
            "" if r.n_tasks is None else str(r.n_tasks),
            git,
        )
    console.print(table)


def _short(d: Optional[str], n: int = 12) -> str:
    return d.split(":", 1)[-1][:n] if d else ""


def typed_repr(data: Any) -> str:
    """A recorded (typed JSON) value as a Python user writes it: ``Path('out')``, ``(1, 2)``,
    ``{'a', 'b'}``. Display only: nothing is imported (an enum shows as ``Name(value)``)."""
    from ..values._typed import from_typed_json, object_fields

    if isinstance(data, list):
        return "[" + ", ".join(typed_repr(v) for v in data) + "]"
    if not isinstance(data, dict):
        return repr(data)
    tag = data.get("__rf__")
    v = data.get("v")
    if tag is None:
        return "{" + ", ".join(f"{k!r}: {typed_repr(x)}" for k, x in data.items()) + "}"
    if tag == "path":
        return f"Path({v!r})"
    if tag == "tuple":
        items = [typed_repr(x) for x in v]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if tag in ("set", "frozenset"):
        inner = "{" + ", ".join(typed_repr(x) for x in v) + "}" if v else ""
        return (inner or "set()") if tag == "set" else f"frozenset({inner})"
    if tag == "dict":
        return "{" + ", ".join(f"{typed_repr(k)}: {typed_repr(x)}" for k, x in data["items"]) + "}"
    if tag == "float":
        return f"float({v!r})"
    if tag == "enum":
        return f"{str(data.get('type', '?')).rpartition(':')[2]}({typed_repr(v)})"
    if tag == "opaque":
        return str(data.get("repr") or f"<{data.get('type', '?')}>")
    if tag == "object":  # a dataclass, attrs class, pydantic model, named tuple or an object by its state: Class(field=...)
        name = str(data.get("type") or data.get("class") or "?").rpartition(":")[2]
        if data.get("kind") == "state":  # its attributes (slots too), or __getstate__'s own value
            fields = object_fields(data)
            v = fields if fields is not None else {"state": v}
        if isinstance(v, list):
            return f"{name}(" + ", ".join(typed_repr(x) for x in v) + ")"
        fields = {**(v if isinstance(v, dict) else {}), **data.get("extra", {})}
        text = f"{name}(" + ", ".join(f"{k}={typed_repr(x)}" for k, x in fields.items()) + ")"
        return text if len(text) <= 200 else text[:197] + "..."
    value = from_typed_json(data)
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _relative(uri: str, cwd: Optional[str]) -> str:
    """A local path under the run's working directory, relative to it (as the flow named it)."""
    if cwd and uri.startswith(cwd.rstrip("/") + "/"):
        return uri[len(cwd.rstrip("/")) + 1:]
    return uri


def run_json(run: Run, env: Optional[Environment]) -> dict[str, Any]:
    from ..recorder._dag import edges

    data = run.model_dump(mode="json")
    data["status"] = run.status
    data["edges"] = [e.__dict__ for e in edges(run)]
    data["environment"] = env.model_dump(mode="json") if env else None
    return data


@runs_app.command("show")
def show_cmd(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of at least 4 characters)."),
    store: Optional[str] = StoreOption,
    as_json: bool = JsonOption,
    packages: bool = typer.Option(False, "--packages", help="List every installed distribution."),
    libraries: bool = typer.Option(False, "--libraries", help="List every shared library the run loaded."),
) -> None:
    """One run: its tasks with DAG edges and data hashes, environment, hardware, system libraries and git."""
    from rich.table import Table
    from rich.text import Text
    from rich.tree import Tree

    from ..analysis._api import load_run, open_store
    from ..recorder._dag import task_label, upstream_labels
    from ..records import Environment

    s = open_store(store)
    run = load_run(run_id, s)
    env = s.get_model_blob(run.context.environment_blob, Environment) if run.context else None
    if as_json:
        print_json(run_json(run, env))
        return
    rec, ctx = run.record, run.context
    style = _STATUS_STYLE.get(run.status, "")
    console.print(f"[bold]{rec.flow_name}[/]  run [cyan]{rec.run_id}[/]  [{style}]{run.status}[/]")
    console.print(f"started {_when(rec.started_at)}" + (f", ended {_when(run.end.ended_at)}" if run.end else "")
                  + f"  engine {rec.engine}  entrypoint {rec.entrypoint or '?'}")
    if run.status_reason:
        done = len({t.task_run_id for t in run.tasks})
        console.print(f"[red]crashed:[/] {run.status_reason}; {done} task run(s) recorded before it died "
                      "(replay --task NAME replays one)", soft_wrap=True)
    if rec.replay_of:
        console.print(f"replay of [cyan]{rec.replay_of}[/]")
    if rec.parameters:
        console.print("parameters:")
        for name, value in rec.parameters.items():
            console.print(f"  {name} = {typed_repr(value)}", markup=False)

    finals = run.final_tasks()
    labels = {t.task_run_id: task_label(t) for t in finals}
    width = max((len(v) for v in labels.values()), default=4)
    table = Table(title="tasks")
    table.add_column("task", no_wrap=True, min_width=width)
    table.add_column("state", no_wrap=True)
    table.add_column("try", justify="right", no_wrap=True)
    table.add_column("secs", justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for t in finals:
        st = _STATUS_STYLE.get(t.state, "cyan")
        table.add_row(labels[t.task_run_id], f"[{st}]{t.state}[/]", str(t.attempt), f"{t.duration_s:.3f}",
                      _short(t.result_hash, 10))
    console.print(table)
    ups = upstream_labels(run)
    if ups:
        console.print("[bold]upstream[/] (task ← param←upstream task)")
        for t in finals:
            for item in ups.get(t.task_run_id, []):
                console.print(f"  {labels[t.task_run_id]} ← {item}", markup=False)
    data = Table(title="data")
    data.add_column("task", no_wrap=True, min_width=width)
    data.add_column("", no_wrap=True)
    data.add_column("param", no_wrap=True)
    data.add_column("sha256", no_wrap=True)
    data.add_column("size", justify="right", no_wrap=True)
    data.add_column("uri", overflow="fold")
    for t in finals:
        for arrow, refs in (("in", t.inputs), ("out", t.outputs)):
            for r in refs:
                param = "(undeclared)" if r.undeclared else (r.param or "")
                data.add_row(labels[t.task_run_id], arrow, param, _short(r.sha256, 12),
                             "" if r.size is None else str(r.size), _relative(r.uri, rec.cwd))
    if data.row_count:
        console.print(data)
    failed = [t for t in run.final_tasks() if t.error]
    for t in failed:
        console.print(f"[red]{t.task_name} failed:[/] {t.error.type}: {t.error.message}")  # type: ignore[union-attr]

    from ..capture.system import run_libraries

    libs = run_libraries(s, run)
    if ctx is not None:
        tree = Tree("[bold]process context[/]")
        py = tree.add(f"Python {ctx.python_version}")
        if env is not None:
            py.add(f"{env.python.implementation} at {env.python.executable}")
            py.add(f"{env.platform.system} {env.platform.release} {env.platform.machine}; {env.platform.distro or ''}; {env.platform.libc or ''}")
            py.add(f"{len(env.distributions)} distributions")
            redacted = sorted(k for k, v in env.env_vars.items() if v.redacted)
            if redacted:
                py.add(f"redacted env vars: {', '.join(redacted)}")
        hw = ctx.hardware
        h = tree.add("hardware")
        h.add(f"CPU {hw.cpu.model or '?'}, {hw.cpu.physical_cores or '?'} cores / {hw.cpu.logical_cores or '?'} threads")
        if hw.memory_total_bytes:
            h.add(f"memory {hw.memory_total_bytes / 2**30:.1f} GiB")
        if hw.gpus:
            for g in hw.gpus:
                h.add(f"GPU {g.index} {g.name}, driver {hw.gpu_driver}, CUDA {hw.cuda_driver_version}")
        else:
            h.add(f"no GPU ({hw.gpu_absent_reason or 'none detected'})")
        for tp in hw.threadpools:
            h.add(f"{tp.user_api}: {tp.internal_api} {tp.version or ''} ({tp.num_threads} threads)")
        _library_summary(tree, libs)
        g = tree.add("git")
        if ctx.git.available:
            g.add(f"{ctx.git.commit} on {ctx.git.branch or 'detached HEAD'}" + (" [yellow](dirty)[/]" if ctx.git.dirty else " (clean)"))
            if ctx.git.remote_url:
                g.add(f"remote {ctx.git.remote_url}")
            if ctx.git.diff_stat:
                g.add(ctx.git.diff_stat.strip().splitlines()[-1])
            if ctx.git.untracked:
                g.add(f"untracked: {', '.join(ctx.git.untracked[:10])}")
        else:
            g.add(f"not recorded: {ctx.git.absent_reason}")
        src = ctx.source
        tree.add(f"source snapshot: {src.kind}, {src.files} files" + (f", blob {_short(src.blob)}" if src.blob else ""))
        console.print(tree)
    if libraries and libs is not None:
        lt = Table(title="system libraries")
        for col in ("library", "version", "origin", "package", "package version", "role", "sha256"):
            lt.add_column(col, overflow="fold")
        for lib in libs.libraries:
            lt.add_row(Text(lib.soname or lib.path), Text(lib.version or ""), lib.origin, Text(lib.package or ""),
                       Text(lib.package_version or ""), ", ".join(lib.roles), _short(lib.sha256, 12))
        console.print(lt)
    if packages and env is not None:
        pt = Table(title="distributions")
        pt.add_column("name")
        pt.add_column("version")
        pt.add_column("origin")
        for d in sorted(env.distributions, key=lambda d: d.name.lower()):
            origin = ""
            if d.direct_url:
                origin = ("editable " if d.direct_url.editable else "") + d.direct_url.url
            pt.add_row(d.name, d.version, origin)
        console.print(pt)


@runs_app.command("publish")
def publish_cmd(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of at least 4 characters)."),
    store: Optional[str] = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """(Re)publish a run's Prefect artifacts (summary, task table, link) on its flow run.

    Uses the Prefect API in PREFECT_API_URL: for runs recorded with REPROFLOW_ARTIFACTS=off or
    while the API was down. Publishing again updates the same artifacts (no duplicates).
    """
    from ..analysis._api import load_run, open_store
    from ..engines.prefect._artifacts import publish_run_artifacts
    from ..errors import ExportError

    s = open_store(store)
    run = load_run(run_id, s)
    if run.record.engine != "prefect" or run.run_id.startswith("adhoc-"):
        raise ExportError(f"run {run.run_id} was recorded outside Prefect (engine {run.record.engine!r}): "
                          "there is no flow run to attach artifacts to; use `reproflow runs show` or `reproflow report`")
    from ..analysis._report import summary_lines

    ids = publish_run_artifacts(s, run.run_id, report=summary_lines)
    if as_json:
        print_json({"run_id": run.run_id, "artifact_ids": ids})
        return
    console.print(f"published {len(ids)} artifacts on flow run [cyan]{run.run_id}[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")


__all__ = ["register", "run_json"]


def _library_summary(tree: Tree, libs: Any) -> None:
    """One node: how many shared libraries, from where, and the BLAS/LAPACK/OpenMP/CUDA ones."""
    from rich.text import Text

    if libs is None:
        return
    node = tree.add("system libraries")
    if libs.absent_reason:
        node.add(Text(f"not recorded: {libs.absent_reason}"))
        return
    from collections import Counter

    from ..capture.system import library_key

    counts = Counter(lib.origin for lib in libs.libraries)
    node.add(f"{len(libs.libraries)} mapped: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
             + " (--libraries lists them)")  # fmt: skip
    for lib in libs.libraries:
        if lib.roles:
            owner = f" ({lib.package} {lib.package_version})" if lib.package else " (unknown origin)"
            version = f" {lib.version}" if lib.version else ""
            node.add(Text(f"{'/'.join(lib.roles)}: {library_key(lib)}{version}{owner}"))
