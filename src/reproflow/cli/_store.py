"""`reproflow sync` (upload spooled records) and `reproflow gc` (remove unreferenced blobs)."""

from __future__ import annotations

from typing import Optional

import typer

from ._common import JsonOption, StoreOption, console, print_json
from ..errors import StoreUnreachable


def sync_cmd(
    store: Optional[str] = typer.Option(
        None,
        "--store",
        "-s",
        help="Sync only this store's spool. Default: every store with spooled records.",
        show_default=False,
    ),
    as_json: bool = JsonOption,
) -> None:
    """Upload records spooled while a store was unreachable (never duplicates; safe to re-run)."""
    from ..store._spool import sync

    reports = sync(store)
    pending = [r for r in reports if r.remaining]
    if as_json:
        print_json([r.as_dict() for r in reports])
    elif not reports or all(not (r.uploaded or r.already_present or r.remaining) for r in reports):
        console.print("nothing to sync: no spooled records")
    else:
        from rich.table import Table

        table = Table(title="reproflow sync")
        for col in ("store", "uploaded", "already there", "still spooled"):
            table.add_column(col)
        for r in reports:
            table.add_row(r.url, str(len(r.uploaded)), str(len(r.already_present)), str(len(r.remaining)))
        console.print(table)
    if pending:
        first = pending[0]
        raise StoreUnreachable(
            f"{sum(len(r.remaining) for r in pending)} record(s) are still spooled in "
            f"{first.spool_dir}: {first.error}",
            url=first.url,
        )


def gc_cmd(
    store: Optional[str] = StoreOption,
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only report what would be removed."),
    grace: float = typer.Option(
        3600.0, "--grace", min=0.0, help="Keep unreferenced blobs younger than SECONDS (runs in flight)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Remove blobs that no record references (never one a run still references)."""
    from ..analysis._api import open_store
    from ..store._gc import gc

    report = gc(open_store(store), dry_run=dry_run, grace_s=grace)
    if as_json:
        print_json(report.as_dict())
        return
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"{report.blobs} blob(s), {report.referenced} referenced; {verb} {len(report.removed)} "
        f"({_size(report.bytes_freed)}); kept {len(report.young)} younger than {grace:g} s"
        + (f"; {verb} {len(report.temp_removed)} stale temporary file(s)" if report.temp_removed else "")
    )
    if report.missing:
        console.print(
            f"[yellow]warning:[/] {len(report.missing)} referenced blob(s) are missing from the store, "
            f"e.g. sha256:{report.missing[0]} (was it copied without objects/?)"
        )


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def register(app: typer.Typer) -> None:
    app.command("sync")(sync_cmd)
    app.command("gc")(gc_cmd)


__all__ = ["register"]
