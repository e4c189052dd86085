"""`reproflow ...`: a thin typer app. Each command parses, calls one library function, renders.

A :class:`~reproflow.errors.ReproflowError` becomes one red line on stderr and its documented
exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from ._cli_common import run_cli

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
    from . import _cli_runs

    _cli_runs.register(app)
    for name in ("_cli_replay", "_cli_export", "_cli_check", "_cli_store", "_cli_status", "_cli_record", "_cli_pack"):
        try:
            module = __import__(f"reproflow.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"reproflow.{name}":
                raise
            continue
        module.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    sys.exit(run_cli(app))


__all__ = ["app", "main"]
