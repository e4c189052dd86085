"""The command a replay builds to re-run one recorded Snakemake job (replay/_plan.py
``snakemake_command``): the replay environment's Python, the rule alone, its outputs forced; and
every recorded field that reaches the command line is validated (records are untrusted)."""

from __future__ import annotations

from typing import Any

import pytest

from reproflow import errors
from reproflow.replay._plan import REPLAY_PYTHON, snakemake_command
from reproflow.records import Run, RunRecord, TaskRecord

T0 = 1_700_000_000.0


def _run(info: dict[str, Any], argv: list[str] | None = None) -> tuple[Run, TaskRecord]:
    task = TaskRecord(run_id="r", task_run_id="t", task_name="stat", task_key="stat", state="COMPLETED", started_at=T0,
                      ended_at=T0, duration_s=0, parameters_hash="p", engine="snakemake", engine_info=info)
    record = RunRecord(run_id="r", flow_name="f", context="0" * 64, started_at=T0, engine="snakemake",
                       engine_info={"argv": argv or ["/somewhere/bin/snakemake", "-c1"]})
    return Run(record=record, tasks=[task]), task


def test_a_job_re_runs_its_rule_alone_with_the_replay_python() -> None:
    run, task = _run({"rule": "stat", "kind": "run", "output": ["results/stats/mean.json"]},
                     ["/abs/bin/snakemake", "-c1", "--snakefile", "workflow/Snakefile"])
    assert snakemake_command(run, task) == [
        REPLAY_PYTHON, "-m", "snakemake", "--cores", "1", "--force", "--allowed-rules", "stat",
        "--snakefile", "workflow/Snakefile", "--", "results/stats/mean.json"]


def test_a_task_not_recorded_by_snakemake_gets_none() -> None:
    run, task = _run({"argv": ["make"]})
    assert snakemake_command(run, task) is None


@pytest.mark.parametrize("info", [
    {"rule": "stat; rm -rf ~", "output": ["out.txt"]},
    {"rule": "stat", "output": ["/etc/passwd"]},
    {"rule": "stat", "output": ["../outside.txt"]},
    {"rule": "stat", "output": ["--delete-all-output"]},
    {"rule": "stat", "output": []},
    {"rule": "stat", "output": [3]},
])
def test_a_hostile_record_is_refused_by_name(info: dict[str, Any]) -> None:
    run, task = _run(info)
    with pytest.raises(errors.TaskReplayRefused, match="task 'stat'"):
        snakemake_command(run, task)


def test_a_snakefile_outside_the_working_folder_is_refused() -> None:
    run, task = _run({"rule": "stat", "output": ["out.txt"]}, ["snakemake", "--snakefile=/tmp/evil/Snakefile"])
    with pytest.raises(errors.TaskReplayRefused, match="the Snakefile"):
        snakemake_command(run, task)
