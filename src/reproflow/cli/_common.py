"""Shared CLI plumbing: error rendering, --store/--json options, JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer
from rich.console import Console

from ..errors import ReproflowError

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
    """Write JSON to stdout and nothing else. A file name that is not UTF-8 (lone surrogates,
    as Python decodes it) is written with JSON's escapes for them, as records hold it: the JSON
    reads back as the same name."""
    text = json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n"
    sys.stdout.write(text.encode("utf-8", "backslashreplace").decode())
    sys.stdout.flush()


def _lenient_output() -> None:
    """Text the CLI prints that holds a file name that is not UTF-8 shows its odd characters as
    escapes (``\\udce9``) instead of failing to print."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "strict") == "strict":
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError, TypeError):
                pass


def fail(exc: ReproflowError) -> None:
    """Render a ReproflowError as one red line and exit with its code."""
    message = " ".join(str(exc).split())
    console_err.print(f"[bold red]error:[/] {message}", soft_wrap=True, markup=True, highlight=False)
    raise typer.Exit(exc.exit_code)


#: Storage libraries that log a full traceback for every failed retry before raising: the CLI
#: reports the final error itself, as one line (an unreachable gs:// store printed 49 lines).
_NOISY_LOGGERS = ("gcsfs", "s3fs", "aiobotocore", "aiohttp", "fsspec")


def _quiet_storage_logs() -> None:
    import logging

    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _click_class(name: str) -> type[BaseException]:
    """Click's exception class ``name`` as this typer raises it.

    typer >= 0.29 vendors click as ``typer._click``, so ``click.exceptions.UsageError`` is not
    the class it raises; ``typer.BadParameter`` is a usage error in every version, and its MRO
    names the classes actually in use.
    """
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


def usage_error(exc: BaseException, prog_name: str = "reproflow") -> int:
    """Render a click usage error as the usage line plus one ``error:`` line; return its exit code.

    ``reproflow`` or ``reproflow runs`` with no arguments (``no_args_is_help``) prints that
    command's help instead.
    """
    ctx = getattr(exc, "ctx", None)
    code = int(getattr(exc, "exit_code", 2))
    if type(exc).__name__ == "NoArgsIsHelpError":
        # Its message is the help text; with rich help, building it already printed it.
        text = str(exc.format_message())  # type: ignore[attr-defined]
        if text.strip():
            sys.stderr.write(text + "\n")
        return code
    message = " ".join(str(exc.format_message()).split())  # type: ignore[attr-defined]
    if message and message[-1] not in ".!?":
        message += "."
    hint = ""
    if ctx is not None:
        sys.stderr.write(ctx.get_usage() + "\n")
        hint = f" Try '{ctx.command_path} --help'."
    sys.stderr.write(f"error: {message}{hint}\n")
    return code


def run_cli(app: typer.Typer, args: Optional[list[str]] = None, prog_name: str = "reproflow") -> int:
    """Run the app: ReproflowError → one line + exit code; usage errors → usage + one line, exit 2;
    other errors keep their traceback."""
    _quiet_storage_logs()
    _lenient_output()
    click_exception = _click_class("ClickException")
    try:
        # In non-standalone mode click *returns* the code of a `typer.Exit(n)` instead of raising.
        result = app(args=args, prog_name=prog_name, standalone_mode=False)
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
    except typer.Abort:
        console_err.print("aborted")
        return 1
    except click_exception as exc:  # usage errors arrive here in non-standalone mode
        if isinstance(exc, _click_class("UsageError")):
            return usage_error(exc, prog_name)
        exc.show()  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 1))
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


__all__ = ["JsonOption", "StoreOption", "console", "console_err", "fail", "print_json", "run_cli"]
