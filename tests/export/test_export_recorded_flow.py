"""Exports, diff and report of runs really recorded by @repro_task on the Prefect engine."""

from __future__ import annotations

import json
import pathlib
import random
import tomli as tomllib  # TOML 1.0 subset; stdlib tomllib only on 3.11+
from typing import Annotated

import pytest
from prefect import flow
from test_export_rocrate import assert_wrroc_musts

from reproflow import Input, Output, repro_task
from reproflow.analysis._diff import diff_runs
from reproflow.analysis._report import build_report
from reproflow.export import export_run
from reproflow.store import Store

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


@repro_task
def count_rows(path: Annotated[pathlib.Path, Input]) -> int:
    return len(path.read_text().splitlines())


@repro_task
def write_summary(rows: int, target: Annotated[pathlib.Path, Output]) -> pathlib.Path:
    target.write_text(f"rows={rows}\n")
    return target


@flow
def summarize(src: pathlib.Path, out: pathlib.Path, label: str = "a") -> pathlib.Path:
    rows = count_rows(src)
    return write_summary(rows, out / "summary.txt")


@repro_task
def roll() -> float:
    return random.random()


@flow
def gamble() -> float:
    return roll()


def _run(src: pathlib.Path, out: pathlib.Path, label: str) -> str:
    state = summarize(src, out, label, return_state=True)
    return str(state.state_details.flow_run_id)


def test_recorded_run_exports(store: Store, tmp_path: pathlib.Path) -> None:
    """A real run exports to requirements (with this environment's pins), a Provenance Run Crate
    meeting the profile MUSTs with the run's files and hashes, PROV, CRESP and a Dockerfile whose
    command is the recorded flow."""
    src = tmp_path / "rows.csv"
    src.write_text("a\nb\nc\n")
    run_id = _run(src, tmp_path, "a")
    req = str(export_run(store, run_id, "requirements"))
    import importlib.metadata as md

    assert f"prefect=={md.version('prefect')}" in req.splitlines()
    meta = json.loads(str(export_run(store, run_id, "ro-crate")))
    assert_wrroc_musts(meta)
    graph = {e["@id"]: e for e in meta["@graph"]}
    assert graph[src.as_uri()]["sha256"] and graph[(tmp_path / "summary.txt").as_uri()]["sha256"]
    tools = {e["name"] for e in meta["@graph"] if e.get("@type") == "SoftwareApplication" and e["@id"].startswith("#tool-")}
    assert tools == {"count_rows", "write_summary"}
    prov = json.loads(str(export_run(store, run_id, "prov")))
    assert len([k for k in prov["activity"] if k.startswith("run:task/")]) == 2
    cresp = tomllib.loads(str(export_run(store, run_id, "cresp")))
    assert cresp["data"][0]["source"] == str(src)
    docker = str(export_run(store, run_id, "dockerfile"))
    cmd = json.loads(next(ln for ln in docker.splitlines() if ln.startswith("CMD "))[4:])
    assert cmd[3].endswith("test_export_recorded_flow.py") and cmd[4] == "summarize"
    assert json.loads(cmd[5]) == {"src": str(src), "out": str(tmp_path), "label": "a"}
    report = build_report(store, run_id)
    assert 0 <= report.score <= 100 and report.run_id == run_id


def test_diff_of_two_recorded_runs(store: Store, tmp_path: pathlib.Path) -> None:
    """Two real runs differing by one flow parameter and one input byte (same row count):
    the diff names exactly those two; nothing recorded per run (ids, times, pids) shows up."""
    src = tmp_path / "rows.csv"
    src.write_text("a\nb\nc\n")
    a = _run(src, tmp_path, "a")
    src.write_text("a\nb\nd\n")
    b = _run(src, tmp_path, "b")
    diff = diff_runs(store, a, b)
    lines = diff.differences(include_derived=True)
    assert lines[0] == "flow parameter label: 'a' -> 'b'"
    assert len(lines) == 2 and lines[1].startswith(f"task count_rows input {src}"), lines


def test_report_of_a_recorded_run_lists_its_findings(store: Store) -> None:
    """A task drawing from an unseeded global generator: the static check's finding, stored in
    the task record, costs the report its points with the named reason and is listed by task."""
    state = gamble(return_state=True)
    report = build_report(store, str(state.state_details.flow_run_id))
    assert report.reasons()["unseeded-randomness"].startswith("unseeded randomness found: 1 finding(s) of RPF101")
    rows = [(f.code, f.tasks) for f in report.findings]
    assert rows == [("RPF101", ["roll"])]
    assert __file__.endswith(report.findings[0].location.rsplit(":", 1)[0])  # relative to the git root
    assert "| RPF101 | unseeded-python-random | error |" in report.to_markdown()
