"""Any command as one run: ``reproflow record -- CMD`` and ``reproflow job -- CMD``.

``record`` opens a shared run (engine ``command``, the command's argv in ``engine_info``), runs
the command with ``$REPROFLOW_RUN_ID`` and ``$REPROFLOW_STORE`` in its environment, so every
recorded task in it and its children joins the run (plain ``@repro_task`` calls,
``reproflow.record()`` blocks, ``reproflow job`` wrappers, Snakemake jobs), and closes the run
with the command's exit status. ``job`` records one command as one task of the run, hashing
the paths it names as inputs before and as outputs after (shell rules, Makefile recipes).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

from ..recorder._join import child_env, close_shared_run, joined_run_id, open_shared_run, record_task
from ..values._scrub import scrub_argv
from ..errors import CommandError, CommandNotFound
from ..records import EngineInfoValue, RunStatus
from ..store import Store


def _check_command(cmd: Sequence[str]) -> None:
    if not cmd:
        raise CommandNotFound.missing()
    if shutil.which(cmd[0]) is None:
        raise CommandNotFound.for_command(cmd[0])


def _run(cmd: Sequence[str], env: dict[str, str]) -> int:
    """Run ``cmd`` in the foreground and return its exit status (128 + N when killed by signal
    N, as a shell says). Ctrl-C reaches the command from the terminal; this process waits for
    it instead of dying first, and passes on a SIGTERM it gets."""
    proc = subprocess.Popen(list(cmd), env=env)
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        code = proc.wait()
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    return 128 - code if code < 0 else code


def _status(code: int) -> RunStatus:
    if code == 0:
        return "COMPLETED"
    if code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        return "CANCELLED"
    return "FAILED"


def record_command(cmd: Sequence[str], *, store: Store, name: str | None = None) -> tuple[str, int]:
    """Run ``cmd`` as one recorded run that its recorded tasks join. Returns (run id, exit status).

    Inside another recorded command (``$REPROFLOW_RUN_ID`` set), the command joins that run
    instead, and leaves closing it to its owner.

    Raises:
        CommandNotFound: ``cmd`` is empty or its program is not on PATH (no run is recorded).
    """
    _check_command(cmd)
    outer = joined_run_id()
    if outer is not None:  # inside another recorded command: its run, which it will close
        open_shared_run(outer, name=name or os.path.basename(cmd[0]), engine="command", store=store, lease=False)
        return outer, _run(cmd, child_env(outer, store))
    info: dict[str, EngineInfoValue] = {"argv": scrub_argv(list(cmd))}
    run_id = open_shared_run(name=name or os.path.basename(cmd[0]), engine="command", store=store,
                             engine_info=info)
    env = child_env(run_id, store)
    code = 1
    try:
        code = _run(cmd, env)
    finally:
        close_shared_run(run_id, _status(code), code, store=store)
    return run_id, code


def run_job(
    cmd: Sequence[str],
    *,
    name: str,
    inputs: Sequence[str] | dict[str, list[str]] = (),
    outputs: Sequence[str] | dict[str, list[str]] = (),
    engine: str = "command",
    engine_info: dict[str, EngineInfoValue] | None = None,
    store: Store | None = None,
) -> int:
    """Run ``cmd`` as one recorded task (of ``$REPROFLOW_RUN_ID``'s run, else a run of its own).
    Returns the command's exit status.

    Raises:
        CommandNotFound: ``cmd`` is empty or its program is not on PATH (nothing is recorded).
    """
    _check_command(cmd)
    info: dict[str, Any] = {"argv": scrub_argv(list(cmd)), **(engine_info or {})}
    with record_task(name, inputs=inputs if isinstance(inputs, dict) else list(inputs),
                     outputs=outputs if isinstance(outputs, dict) else list(outputs), engine=engine, engine_info=info,
                     store=store) as attempt:
        attempt.exit_code = _run(cmd, dict(os.environ))
    return attempt.exit_code


def split_info(pairs: Sequence[str]) -> dict[str, EngineInfoValue]:
    """``["rule=clean", "sample=A"]`` -> ``{"rule": "clean", "sample": "A"}`` (no ``=``: the pair
    is refused with the fix)."""
    out: dict[str, EngineInfoValue] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"--info {pair!r} is not KEY=VALUE; pass e.g. --info sample=A")
        out[key] = value
    return out


__all__ = ["record_command", "run_job", "split_info"]
