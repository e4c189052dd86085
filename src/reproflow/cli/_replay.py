"""`reproflow replay RUN_ID`: rebuild, re-execute, compare. Exit 0 only if every task reproduced.

`reproflow probe RUN_ID` (and `replay --twice`): run it twice in one environment and name the
tasks that are nondeterministic by themselves. Exit 0 only if every task is deterministic.
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from ._common import JsonOption, StoreOption, console, console_err, print_json


EngineOption: Any = typer.Option(
    None, "--engine", show_default=False,
    help="How to run it: 'tasks' calls the recorded tasks one by one in DAG order with no orchestrator (the "
         "default for Airflow, Snakemake and command runs); 'prefect' runs the recorded Prefect flow again "
         "(the default for Prefect runs).",
)

# Options that `replay` and `probe` share, defined once.
DryRunOption: Any = typer.Option(False, "--dry-run", help="Print the plan and stop.")
PythonOption: Any = typer.Option(None, "--python", show_default=False,
                                 help="Interpreter to build the environment with (when one is rebuilt).")
TaskOption: Any = typer.Option(None, "--task", show_default=False,
                               help="Only this task's runs, from their recorded inputs.")
FromOption: Any = typer.Option(None, "--from", show_default=False, help="This task and everything downstream.")
AllowChangedOption: Any = typer.Option(False, "--allow-changed-inputs",
                                       help="Go on when an input changed (marked in the verdict; exit 1).")
KeepOption: Any = typer.Option(False, "--keep", help="Keep the work folder (restored code, runner logs).")
WorkDirOption: Any = typer.Option(None, "--work-dir", help="Work folder to use (kept).", show_default=False)
NoEnvCacheOption: Any = typer.Option(False, "--no-env-cache", help="Build a throwaway environment in the work folder.")
ParamOption: Any = typer.Option(
    None, "--param", show_default=False,
    help="NAME=VALUE: a parameter redacted as a secret when recorded (repeat; else $REPROFLOW_PARAM_NAME).")


def _on_plan(dry_run: bool, show: bool) -> Any:
    from ..replay._render import plan_renderable

    def on_plan(prepared) -> None:  # type: ignore[no-untyped-def]
        if dry_run and show:  # the plan is what a dry run prints
            console.print(plan_renderable(prepared.plan))
        elif show and not prepared.fatal:  # a replay that cannot run says so in one line
            console_err.print(plan_renderable(prepared.plan))

    return on_plan


def _probe(run_id: str, store: Optional[str], *, as_json: bool, dry_run: bool, **options: Any) -> None:
    from ..replay import probe
    from ..replay._render import progress_bars, render_probe

    show = not as_json
    with progress_bars(console_err, enabled=show and not dry_run) as report:
        result = probe(run_id, store, dry_run=dry_run, progress=report, on_plan=_on_plan(dry_run, show), **options)
    if as_json:
        print_json(result.model_dump(mode="json"))
    elif not dry_run:
        render_probe(console, result)
    if dry_run and result.plan.problems:
        raise typer.Exit(1)
    raise typer.Exit(result.exit_code)


def _pack_file(arg: str, store: Optional[str]) -> Optional[str]:
    """``arg`` when it names a file (a pack), not a run id; a pack and --store together are refused."""
    import os

    if not os.path.isfile(arg):
        return None
    if store:
        raise typer.BadParameter(f"{arg} is a pack file, which holds its own store; leave out --store, or "
                                 f"`reproflow unpack {arg} --store {store}` and replay the run id", param_hint="--store")
    return arg


def register(app: typer.Typer) -> None:
    """Add the ``replay`` and ``probe`` commands to the reproflow CLI."""

    @app.command("replay")
    def replay_cmd(
        run_id: str = typer.Argument(..., help="The run to replay (a unique prefix is enough), or a pack file from `reproflow pack`."),
        store: Optional[str] = StoreOption,
        dry_run: bool = DryRunOption,
        in_place: bool = typer.Option(False, "--in-place", help="Use the current environment (no rebuild); report its drift."),
        twice: bool = typer.Option(False, "--twice", help="Run it twice in the same environment and name the tasks that are nondeterministic by themselves (the determinism probe)."),
        python: Optional[str] = PythonOption,
        task: Optional[str] = TaskOption,
        from_task: Optional[str] = FromOption,
        allow_changed_inputs: bool = AllowChangedOption,
        keep: bool = KeepOption,
        work_dir: Optional[str] = WorkDirOption,
        no_env_cache: bool = NoEnvCacheOption,
        param: Optional[list[str]] = ParamOption,
        engine: Optional[str] = EngineOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Replay a recorded run in a rebuilt environment and compare its outputs task by task."""
        if not (dry_run or twice or python or task or from_task or no_env_cache) and engine in (None, "prefect"):
            # First of all, before the record models and the store are imported: start the runner
            # the previous replay of this run used (a guess; used only if the plan agrees, and
            # handed the spec only once every check has passed).
            from ..replay._warm import speculate

            if not _pack_file(run_id, store):
                speculate(run_id, store, in_place=in_place)
        from ..replay._secrets import parse_params

        options: dict[str, Any] = dict(python=python, task=task, from_task=from_task,
                                       allow_changed_inputs=allow_changed_inputs, keep=keep, work_dir=work_dir,
                                       env_cache=not no_env_cache, params=parse_params(param), engine=engine)
        pack_file = _pack_file(run_id, store)
        if pack_file and twice:
            raise typer.BadParameter("--twice does not take a pack file; `reproflow unpack FILE --store URL` first",
                                     param_hint="--twice")
        if twice:
            _probe(run_id, store, as_json=as_json, dry_run=dry_run, rebuild=not in_place, require_original=True,
                   **options)
            return
        from ..replay import replay
        from ..replay._render import progress_bars, render_result

        show = not as_json
        with progress_bars(console_err, enabled=show and not dry_run) as report:
            if pack_file:
                from ..pack import replay_pack

                result = replay_pack(pack_file, dry_run=dry_run, in_place=in_place, progress=report,
                                     on_plan=_on_plan(dry_run, show), **options)
            else:
                result = replay(run_id, store, dry_run=dry_run, in_place=in_place, progress=report,
                                on_plan=_on_plan(dry_run, show), **options)
        if as_json:
            print_json(result.model_dump(mode="json"))
        elif not dry_run:
            render_result(console, result)
        if dry_run and result.plan.problems:
            raise typer.Exit(1)
        raise typer.Exit(result.exit_code)

    @app.command("probe")
    def probe_cmd(
        run_id: str = typer.Argument(..., help="The run to probe (a unique prefix is enough)."),
        store: Optional[str] = StoreOption,
        rebuild: bool = typer.Option(False, "--rebuild", help="Run in the recorded environment rebuilt with uv, not the current one."),
        dry_run: bool = DryRunOption,
        python: Optional[str] = PythonOption,
        task: Optional[str] = TaskOption,
        from_task: Optional[str] = FromOption,
        allow_changed_inputs: bool = AllowChangedOption,
        keep: bool = KeepOption,
        work_dir: Optional[str] = WorkDirOption,
        no_env_cache: bool = NoEnvCacheOption,
        param: Optional[list[str]] = ParamOption,
        engine: Optional[str] = EngineOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Run a recorded run twice in one environment; name the tasks that are nondeterministic by themselves.

        Exit 0 only if every task gave the same outputs in both runs. Tasks that agree with
        themselves but not with the original are reported as changed by the environment.
        """
        from ..replay._secrets import parse_params

        _probe(run_id, store, as_json=as_json, dry_run=dry_run, rebuild=rebuild, python=python, task=task,
               from_task=from_task, allow_changed_inputs=allow_changed_inputs, keep=keep, work_dir=work_dir,
               env_cache=not no_env_cache, params=parse_params(param), engine=engine)


__all__ = ["register"]
