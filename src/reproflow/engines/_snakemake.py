"""Snakemake 9: every job of one invocation recorded into one run (``reproflow.snakemake``).

The invocation's run comes from ``reproflow record -- snakemake ...`` (``$REPROFLOW_RUN_ID``), or
from the Snakefile's hooks::

    import reproflow.snakemake as rf
    onstart: rf.onstart()
    onsuccess: rf.onsuccess()
    onerror: rf.onerror()

``onstart`` opens the run in Snakemake's main process and puts its id in the environment, which
every job inherits (``run:`` rules run in that process, ``script:`` and ``shell:`` jobs in its
children). Jobs are recorded by:

* ``script:`` and ``run:`` rules: ``with rf.record_job(): ...`` around the body (in a script,
  ``rf.record_job(snakemake)`` says the same explicitly);
* ``shell:`` rules: ``shell: rf.shell("sort {input} > {output}")``, which runs the command through
  ``reproflow job`` with the job's declared inputs and outputs.

Each job is one task named for its rule; its declared inputs are hashed before it runs, its
outputs after, and ``engine_info`` keeps the rule, the wildcards and the declared paths. Edges come
from file lineage: a job whose input has the SHA-256 of an earlier job's output consumed it.
Nothing here imports Snakemake.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from collections.abc import Iterator
from typing import Any

from ..recorder._join import (
    RUN_ID_ENV,
    TaskAttempt,
    close_shared_run,
    joined_run_id,
    open_shared_run,
    record_task,
)
from ..records import EngineInfoValue
from ..store import STORE_ENV

_opened_here: dict[str, str] = {}  #: run id -> store url, runs this process's onstart() opened


def onstart(*, name: str | None = None, store: str | os.PathLike[str] | None = None) -> str:
    """Open this invocation's run (in the Snakefile's ``onstart:``) and pass it to every job.

    Under ``reproflow record -- snakemake ...`` the run already exists and is joined.

    Args:
        name: the run's name (default: the working directory's name).
        store: the store URL (default ``$REPROFLOW_STORE`` or ``./.reproflow``).

    Returns:
        The run id.
    """
    from ..recorder._runs import get_store

    the_store = get_store(store)
    run_id = joined_run_id()
    if run_id is None:
        run_id = open_shared_run(name=name or os.path.basename(os.getcwd()) or "snakemake", engine="snakemake",
                                 store=the_store, engine_info={"argv": list(sys.argv)})
        _opened_here[run_id] = the_store.url
    os.environ[RUN_ID_ENV] = run_id
    os.environ[STORE_ENV] = the_store.url
    return run_id


def _close(status: str) -> None:
    run_id = joined_run_id()
    url = _opened_here.pop(run_id, None) if run_id else None
    if run_id is None or url is None:
        return  # not opened by this invocation's onstart(): whoever opened it closes it
    close_shared_run(run_id, status, 0 if status == "COMPLETED" else 1, store=url)  # type: ignore[arg-type]


def onsuccess() -> None:
    """Close the run ``onstart()`` opened, COMPLETED (in the Snakefile's ``onsuccess:``)."""
    _close("COMPLETED")


def onerror() -> None:
    """Close the run ``onstart()`` opened, FAILED (in the Snakefile's ``onerror:``)."""
    _close("FAILED")


def _paths(files: Any, default: str) -> list[tuple[str, str]]:
    """(name, path) for each path of a Snakemake input/output list: a path's declared name
    (``input: raw="x.csv"``), else ``default``."""
    names: dict[int, str] = {}
    for name, (start, end) in dict(getattr(files, "_names", {}) or {}).items():
        for i in range(start, start + 1 if end is None else end):
            names.setdefault(i, str(name))
    return [(names.get(i, default), os.fspath(p)) for i, p in enumerate(files or [])]


def _flat(value: Any) -> EngineInfoValue:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for v in value]
    return str(value)


def job_info(rule: str, wildcards: dict[str, Any], inputs: list[str], outputs: list[str], kind: str) -> dict[str, EngineInfoValue]:
    """The ``engine_info`` of a Snakemake job's task record."""
    return {"rule": rule, "kind": kind, "wildcards": {str(k): _flat(v) for k, v in wildcards.items()},  # type: ignore[dict-item]
            "input": list(inputs), "output": list(outputs)}


def _job_from_caller(depth: int) -> tuple[Any, str]:
    """The job a ``record_job()`` without arguments is in: the script's ``snakemake`` object,
    or the ``run:`` block's own names (rule, input, output, wildcards, params)."""
    frame = sys._getframe(depth)
    job = frame.f_globals.get("snakemake")
    if job is not None and hasattr(job, "rule") and hasattr(job, "input"):
        return job, "script"
    names = frame.f_locals
    if all(k in names for k in ("rule", "input", "output", "wildcards")):
        class _RunJob:  # the run: block's names, as a script's snakemake object holds them
            rule, input, output, wildcards = names["rule"], names["input"], names["output"], names["wildcards"]
            params = names.get("params")

        return _RunJob(), "run"
    raise TypeError("reproflow.snakemake.record_job() found no Snakemake job here: call it inside a run: block, "
                    "in a script: rule's script, or pass the job (record_job(snakemake))")


@contextlib.contextmanager
def record_job(job: Any = None, *, store: str | os.PathLike[str] | None = None) -> Iterator[TaskAttempt]:
    """Record the body of a ``script:`` or ``run:`` job as one task of the invocation's run.

    Args:
        job: the script's ``snakemake`` object (default: found where it is called: the script's
            ``snakemake``, or the ``run:`` block's ``rule``, ``input``, ``output``, ``wildcards``).
        store: the store URL (default ``$REPROFLOW_STORE`` or ``./.reproflow``).

    Yields:
        The :class:`~reproflow.recorder._join.TaskAttempt`.
    """
    kind = "script"
    if job is None:
        job, kind = _job_from_caller(3)  # _job_from_caller, this generator, contextlib's __enter__
    rule = str(job.rule)
    wildcards = dict(getattr(job, "wildcards", {}).items()) if getattr(job, "wildcards", None) is not None else {}
    params_obj = getattr(job, "params", None)
    params = {str(k): v for k, v in params_obj.items()} if params_obj is not None and hasattr(params_obj, "items") else {}
    ins, outs = _paths(job.input, "input"), _paths(job.output, "output")
    info = job_info(rule, wildcards, [p for _, p in ins], [p for _, p in outs], kind)
    grouped_in: dict[str, list[str]] = {}
    for name, path in ins:
        grouped_in.setdefault(name, []).append(path)
    grouped_out: dict[str, list[str]] = {}
    for name, path in outs:
        grouped_out.setdefault(name, []).append(path)
    with record_task(rule, inputs=grouped_in, outputs=grouped_out, parameters={**wildcards, **params},
                     engine="snakemake", engine_info=info, store=store) as attempt:
        yield attempt


def shell(command: str) -> str:
    """A ``shell:`` rule's command, run through ``reproflow job`` so the job is recorded.

    Snakemake fills in ``{input}``, ``{output}``, ``{wildcards}`` and the rest as usual, in the
    command and in the wrapper's arguments (paths must not hold quote characters).
    """
    wrapper = (f"{shlex.quote(sys.executable)} -m reproflow job --engine snakemake --name {{rule}} "
               '--inputs "{input:q}" --outputs "{output:q}" --wildcards "{wildcards:q}"')
    return f"{wrapper} -- bash -euo pipefail -c {shlex.quote(command)}"


__all__ = ["job_info", "onerror", "onstart", "onsuccess", "record_job", "shell"]
