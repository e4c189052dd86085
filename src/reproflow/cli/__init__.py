"""`reproflow ...`: a thin typer app. Each command parses, calls one library function, renders.

A :class:`~reproflow.errors.ReproflowError` becomes one red line on stderr and its documented
exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from ._common import run_cli

app = typer.Typer(
    name="reproflow",
    help="Reproducible-by-construction pipelines: record, replay, diff, export, check.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"reproflow {version('reproflow')}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print the installed reproflow version and exit."),
) -> None:
    """Reproducible-by-construction pipelines: record, replay, diff, export, check."""


def _register() -> None:
    # Each area keeps its commands in its own module with a `register(app)` function.
    from . import _check, _export, _pack, _record, _replay, _runs, _status, _store

    for module in (_runs, _replay, _export, _check, _store, _status, _record, _pack):
        module.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    sys.exit(run_cli(app))


__all__ = ["app", "main"]
