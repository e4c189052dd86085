"""`reproflow status [RUN_ID]`: which tasks are stale now, and why, without running anything."""

from __future__ import annotations

from typing import Optional

import typer

from ._common import JsonOption, StoreOption, console, print_json


def status_cmd(
    run_id: str = typer.Argument("latest", help="Run id, unique prefix, or 'latest' (the default)."),
    store: Optional[str] = StoreOption,
    as_json: bool = JsonOption,
) -> None:
    """Which tasks of a run are stale now (input, code, package, parameter default, upstream).

    Exit code 0 when nothing is stale, 1 when something is.
    """
    from ..analysis._api import open_store
    from ..analysis._status import stale_tasks

    st = open_store(store)
    rows = stale_tasks(st, run_id)
    stale = [r for r in rows if r.stale]
    if as_json:
        print_json({"run_id": st.resolve_run_id(run_id), "stale": len(stale),
                    "tasks": [r.to_json() for r in rows]})
    else:
        from rich.table import Table

        table = Table(title=f"reproflow status: {len(stale)} of {len(rows)} task(s) stale")
        for col in ("task", "recorded", "now", "why"):
            table.add_column(col)
        for r in rows:
            now = "stale" if r.stale else ("fresh" if r.cached else "not cached")
            why = "\n".join(r.reasons) if r.reasons else ("" if r.cached else "no reproflow.CONTENT key recorded")
            table.add_row(r.task_name, r.state, now, why)
        console.print(table)
    if stale:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("status")(status_cmd)
