"""`reproflow replay RUN_ID`: rebuild, re-execute, compare. Exit 0 only if every task reproduced."""

from __future__ import annotations

from typing import Optional

import typer

from ._cli_common import JsonOption, StoreOption, console, console_err, print_json


def register(app: typer.Typer) -> None:
    """Add the ``replay`` command to the reproflow CLI."""

    @app.command("replay")
    def replay_cmd(
        run_id: str = typer.Argument(..., help="The run to replay (a unique prefix is enough)."),
        store: Optional[str] = StoreOption,
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and stop."),
        in_place: bool = typer.Option(False, "--in-place", help="Use the current environment (no rebuild); report its drift."),
        python: Optional[str] = typer.Option(None, "--python", help="Interpreter to build the environment with.", show_default=False),
        task: Optional[str] = typer.Option(None, "--task", help="Replay only this task's runs, from their recorded inputs.", show_default=False),
        from_task: Optional[str] = typer.Option(None, "--from", help="Replay this task and everything downstream.", show_default=False),
        allow_changed_inputs: bool = typer.Option(False, "--allow-changed-inputs", help="Go on when an input changed (marked in the verdict; exit 1)."),
        keep: bool = typer.Option(False, "--keep", help="Keep the work folder (restored code, runner log)."),
        work_dir: Optional[str] = typer.Option(None, "--work-dir", help="Work folder to use (kept).", show_default=False),
        no_env_cache: bool = typer.Option(False, "--no-env-cache", help="Build a throwaway environment in the work folder."),
        as_json: bool = JsonOption,
    ) -> None:
        """Replay a recorded run in a rebuilt environment and compare its outputs task by task."""
        from .replay import replay
        from .replay._render import plan_renderable, progress_bars, render_result

        show = not as_json

        def on_plan(prepared) -> None:  # type: ignore[no-untyped-def]
            if dry_run and show:  # the plan is what a dry run prints
                console.print(plan_renderable(prepared.plan))
            elif show and not prepared.fatal:  # a replay that cannot run says so in one line
                console_err.print(plan_renderable(prepared.plan))

        with progress_bars(console_err, enabled=show and not dry_run) as report:
            result = replay(
                run_id,
                store,
                dry_run=dry_run,
                in_place=in_place,
                python=python,
                task=task,
                from_task=from_task,
                allow_changed_inputs=allow_changed_inputs,
                keep=keep,
                work_dir=work_dir,
                env_cache=not no_env_cache,
                progress=report,
                on_plan=on_plan,
            )
        if as_json:
            print_json(result.model_dump(mode="json"))
        elif not dry_run:
            render_result(console, result)
        if dry_run and result.plan.problems:
            raise typer.Exit(1)
        raise typer.Exit(result.exit_code)


__all__ = ["register"]
