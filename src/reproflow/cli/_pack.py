"""`reproflow pack RUN_ID -o FILE` and `reproflow unpack FILE --store URL`."""

from __future__ import annotations

from typing import Optional

import typer

from ._common import JsonOption, StoreOption, console, console_err, print_json


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def register(app: typer.Typer) -> None:
    """Add the ``pack`` and ``unpack`` commands to the reproflow CLI."""

    @app.command("pack")
    def pack_cmd(
        run_id: str = typer.Argument(..., help="The run to pack (a unique prefix or 'latest')."),
        out: str = typer.Option(..., "--out", "-o", help="The pack file to write (a plain tar)."),
        store: Optional[str] = StoreOption,
        no_wheels: bool = typer.Option(False, "--no-wheels", help="Leave the distribution files out (a smaller pack for a team that shares an index)."),
        as_json: bool = JsonOption,
    ) -> None:
        """Write one file holding a run's records, blobs, source, stored inputs, RO-Crate and wheels.

        `reproflow replay FILE` replays it on another machine with no package index.
        """
        from ..pack import pack

        def progress(msg: str) -> None:
            if not as_json:
                console_err.print(f"[dim]{msg}[/]")

        report = pack(run_id, out, store, with_dists=not no_wheels, progress=progress)
        if as_json:
            print_json(report.as_dict())
            return
        from rich.table import Table

        console.print(f"wrote {report.path}: {_size(report.size)} in {report.seconds:.1f} s", soft_wrap=True)
        console.print(f"sha256 {report.sha256}")
        kinds = Table(title="what made it big", title_justify="left")
        kinds.add_column("kind")
        kinds.add_column("size", justify="right")
        kinds.add_column("files", justify="right")
        for kind, size in report.by_kind.items():
            kinds.add_row(kind, _size(size), str(report.counts.get(kind, 0)))
        console.print(kinds)
        largest = Table(title=f"largest {len(report.largest)} members", title_justify="left")
        largest.add_column("size", justify="right")
        largest.add_column("what")
        for _name, size, what in report.largest:
            largest.add_row(_size(size), what)
        console.print(largest)
        for note in report.notes:
            console.print(f"[yellow]note:[/] {note}", soft_wrap=True)

    @app.command("unpack")
    def unpack_cmd(
        file: str = typer.Argument(..., help="A pack file written by `reproflow pack`."),
        store: Optional[str] = StoreOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Check a pack and import its run (records and blobs) into a store."""
        from ..pack import unpack

        report = unpack(file, store)
        if as_json:
            print_json(report.as_dict())
            return
        console.print(f"imported run {report.run_id} into {report.store}: {report.records} records, "
                      f"{report.blobs} blobs ({report.already} already there)", soft_wrap=True)
        if report.dists_left:
            console.print(f"{report.dists_left} distribution files stay in the pack: `reproflow replay {file}` "
                          "uses them offline; a replay from the store uses the index", soft_wrap=True)


__all__ = ["register"]
