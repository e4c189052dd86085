"""`reproflow record -- CMD` (any command as one run) and `reproflow job -- CMD` (one recorded task)."""

from __future__ import annotations

import shlex
from typing import Optional

import typer

from ._common import StoreOption, console_err
from ..errors import CommandError

_PASS_THROUGH = {"allow_interspersed_args": False}


def record_cmd(
    cmd: Optional[list[str]] = typer.Argument(None, help="The command to run, after --.", show_default=False),
    store: Optional[str] = StoreOption,
    name: Optional[str] = typer.Option(None, "--name", "-n", help="The run's name (default: the program's name)."),
) -> None:
    """Run a command as one recorded run: every task recorded in it (and its child processes) joins.

    The command gets REPROFLOW_RUN_ID and REPROFLOW_STORE in its environment; plain @repro_task
    calls, reproflow.record() blocks, `reproflow job` wrappers and Snakemake jobs record into the
    run, and edges come from data lineage. Exits with the command's exit status.
    """
    from ..analysis._api import open_store
    from ..engines._command import record_command

    st = open_store(store, must_exist=False)
    run_id, code = record_command(cmd or [], store=st, name=name)
    console_err.print(f"reproflow: recorded run {run_id} (exit status {code}); see `reproflow runs show {run_id}`",
                      highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def job_cmd(
    cmd: Optional[list[str]] = typer.Argument(None, help="The command to run, after --.", show_default=False),
    name: str = typer.Option(..., "--name", "-n", help="The task's name (a rule's or target's name)."),
    inputs: Optional[list[str]] = typer.Option(None, "--input", "-i", help="A path the command reads (repeat it)."),
    outputs: Optional[list[str]] = typer.Option(None, "--output", "-o", help="A path the command writes (repeat it)."),
    info: Optional[list[str]] = typer.Option(None, "--info", help="KEY=VALUE about the task, kept in the record (repeat it)."),
    in_words: Optional[str] = typer.Option(None, "--inputs", help="Input paths as one shell-quoted list (Snakemake's \"{input:q}\")."),
    out_words: Optional[str] = typer.Option(None, "--outputs", help="Output paths as one shell-quoted list (\"{output:q}\")."),
    wildcards: Optional[str] = typer.Option(None, "--wildcards", help="KEY=VALUE pairs as one shell-quoted list (\"{wildcards:q}\")."),
    engine: str = typer.Option("command", "--engine", help="The engine that runs the job: command or snakemake."),
    store: Optional[str] = StoreOption,
) -> None:
    """Run a command as one recorded task: inputs hashed before, outputs after.

    Inside `reproflow record -- ...` (or any process with REPROFLOW_RUN_ID) the task joins that
    run; else it is a run of its own. Exits with the command's exit status.
    """
    from ..analysis._api import open_store
    from ..engines._command import run_job, split_info

    st = open_store(store, must_exist=False) if store else None
    if engine not in ("command", "snakemake"):
        raise CommandError(f"--engine {engine!r} is not known; pass --engine command or --engine snakemake")
    all_in = [*(inputs or []), *shlex.split(in_words or "")]
    all_out = [*(outputs or []), *shlex.split(out_words or "")]
    pairs = split_info(shlex.split(wildcards or ""))
    extra = split_info(info or [])
    if engine == "snakemake":
        from ..engines._snakemake import job_info

        extra = {**job_info(name, pairs, all_in, all_out, "shell"), **extra}
        code = run_job(cmd or [], name=name, inputs={"input": all_in}, outputs={"output": all_out}, engine=engine,
                       engine_info=extra, store=st)
    else:
        if pairs:
            extra["wildcards"] = pairs  # type: ignore[assignment]
        code = run_job(cmd or [], name=name, inputs=all_in, outputs=all_out, engine=engine, engine_info=extra, store=st)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("record", context_settings=_PASS_THROUGH)(record_cmd)
    app.command("job", context_settings=_PASS_THROUGH)(job_cmd)
