"""`reproflow check`: static reproducibility checks over Python files.

Exit codes: 0 no findings, 1 findings, 2 bad path or settings (a
:class:`~reproflow.errors.CheckError`). The determinism probe (`reproflow probe RUN_ID`) will be
registered here too, beside `check`, once replay can run a task twice.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ._common import console_err


class OutputFormat(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"


def _split_codes(values: Optional[list[str]]) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out.extend(v.strip() for v in value.replace(" ", ",").split(",") if v.strip())
    return out


def _list_rules() -> str:
    from ..checks import all_rules

    rows = [f"{r.code}  {r.severity:<7}  {r.name:<34} {r.summary}" for r in all_rules().values()]
    return "\n".join(rows) + "\n"


def check(
    paths: Optional[list[Path]] = typer.Argument(
        None, help="Python files or folders to check (default: the current folder).", show_default=False
    ),
    select: Optional[list[str]] = typer.Option(
        None, "--select", help="Only these rule codes or prefixes (comma-separated or repeated), e.g. RPF1,RPF201."
    ),
    ignore: Optional[list[str]] = typer.Option(None, "--ignore", help="Never report these codes or prefixes."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="Output format."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the report to this file, not stdout."),
    exit_zero: bool = typer.Option(False, "--exit-zero", help="Exit 0 even when there are findings."),
    list_rules: bool = typer.Option(False, "--list-rules", help="List every rule and exit."),
) -> None:
    """Find code that makes runs unrepeatable: unseeded randomness, clocks in outputs, machine paths,
    hidden environment inputs, unpinned downloads, unordered iteration, nondeterministic GPU ops."""
    from ..checks import check_paths, render_json, render_sarif, render_text

    if list_rules:
        sys.stdout.write(_list_rules())
        return
    findings = check_paths(paths or [Path(".")], select=_split_codes(select), ignore=_split_codes(ignore))
    render = {"text": render_text, "json": render_json, "sarif": render_sarif}[output_format.value]
    report = render(findings)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(report, encoding="utf-8")
        console_err.print(f"{len(findings)} finding(s) written to {output}", highlight=False, soft_wrap=True)
    else:
        sys.stdout.write(report)
        sys.stdout.flush()
    if findings and not exit_zero:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `check` to the reproflow CLI."""
    app.command("check")(check)


__all__ = ["OutputFormat", "check", "register"]
