"""Shared CLI plumbing: error rendering, --store/--json options, JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer
from rich.console import Console

from .errors import ReproflowError

console = Console(highlight=False)
console_err = Console(stderr=True, highlight=False)

StoreOption = typer.Option(
    None,
    "--store",
    "-s",
    help="Store URL (local folder or fsspec URL). Default: $REPROFLOW_STORE, else ./.reproflow",
    show_default=False,
)
JsonOption = typer.Option(False, "--json", help="Print JSON only, for scripts.")


def print_json(data: Any) -> None:
    """Write JSON to stdout and nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(exc: ReproflowError) -> None:
    """Render a ReproflowError as one red line and exit with its code."""
    message = " ".join(str(exc).split())
    console_err.print(f"[bold red]error:[/] {message}", soft_wrap=True, markup=True, highlight=False)
    raise typer.Exit(exc.exit_code)


def run_cli(app: typer.Typer, args: Optional[list[str]] = None) -> int:
    """Run the app: ReproflowError → one line + exit code; other errors keep their traceback."""
    try:
        # In non-standalone mode click *returns* the code of a `typer.Exit(n)` instead of raising.
        result = app(args=args, standalone_mode=False)
    except ReproflowError as exc:
        message = " ".join(str(exc).split())
        console_err.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 1
    except KeyboardInterrupt:
        console_err.print("[red]interrupted[/]")
        return 130
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


__all__ = ["JsonOption", "StoreOption", "console", "console_err", "fail", "print_json", "run_cli"]
