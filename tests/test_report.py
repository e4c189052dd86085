"""`build_report` and `reproflow report`: the score falls, with the named reason, per planted problem."""

from __future__ import annotations

import json
import pathlib
import posixpath
import sys
from typing import Any

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent / "export"))

from rf_factory import dist, make_environment, make_run  # noqa: E402

from reproflow._cli_common import run_cli  # noqa: E402
from reproflow._report import ARTIFACT_KEY, REPORT_FILENAME, build_report, publish_report_artifact  # noqa: E402
from reproflow.cli import app  # noqa: E402
from reproflow.errors import RunNotFound  # noqa: E402
from reproflow.records import DirectUrl, EnvVar, Finding, GitState, GPUInfo, Hardware, SourceSnapshot  # noqa: E402
from reproflow.store import Store  # noqa: E402


@pytest.fixture
def clean(store: Store, tmp_path: pathlib.Path) -> dict[str, Any]:
    """A run with nothing wrong: git, clean tree, source stored, inputs hashed and stored."""
    (tmp_path / "in.csv").write_text("1\n")
    rid = make_run(store, inputs={"path": tmp_path / "in.csv"}, input_stored=True)
    return {"run_id": rid, "input": tmp_path / "in.csv"}


def test_clean_run_scores_100(store: Store, clean: dict[str, Any]) -> None:
    """No planted problem: 100/100 and every check passes or is informational."""
    report = build_report(store, clean["run_id"])
    assert report.score == 100 and report.deductions == []


PROBLEMS: dict[str, tuple[dict[str, Any], str, int, str]] = {
    # name: (make_run overrides, check code, points lost, words in the reason)
    "no git": ({"git": GitState(available=False, absent_reason="not a git repository")}, "no-git", 15, "no git repository"),
    "dirty tree": ({"git": GitState(available=True, commit="a" * 40, dirty=True, diff_stat="1 file changed")},
                   "dirty-tree", 15, "dirty working tree"),
    "dirty tree, diff stored": ({"git": GitState(available=True, commit="a" * 40, dirty=True, diff_blob="d" * 64)},
                                "dirty-tree", 10, "the diff was stored"),
    "no source": ({"source": SourceSnapshot(kind="none", absent_reason="disabled")}, "no-source", 10, "no snapshot"),
    "unpinned local package": ({"packages": [dist("mylib", "0.1", direct_url=DirectUrl(url="file:///src/mylib", editable=True))]},
                               "unpinned-local", 10, "unpinned local package"),
    "unseeded randomness": ({"task_findings": [Finding(code="RPF001", message="np.random without a seed", path="f.py", line=3),
                                               Finding(code="RPF001", message="again", severity="warning")],
                             "run_findings": [Finding(code="RPF002", message="random.random", severity="error"),
                                              Finding(code="RPF009", message="style", severity="info")]},
                            "findings", 15, "RPF001, RPF002"),
    "gpu": ({"hardware": Hardware(gpus=[GPUInfo(index=0, name="NVIDIA A100")], gpu_driver="550")},
            "gpu-nondeterminism", 5, "GPU nondeterminism risk"),
    "failed task": ({"failed_task": True, "status": "FAILED"}, "failed", 15, "failed task"),
}  # fmt: skip


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_each_planted_problem_costs_points_with_its_reason(store: Store, clean: dict[str, Any], problem: str) -> None:
    """Planting one problem lowers the score by that check's points and names the reason."""
    overrides, code, points, words = PROBLEMS[problem]
    rid = make_run(store, inputs={"path": clean["input"]}, input_stored=True, **overrides)
    report = build_report(store, rid)
    assert [c.code for c in report.deductions] == [code]
    assert report.score == 100 - points
    assert words in report.reasons()[code]


def test_inputs_not_hashed_and_not_stored(store: Store, tmp_path: pathlib.Path) -> None:
    """An input without a hash and one without a stored copy each cost points, with reasons."""
    from reproflow.records import DataRef, TaskRecord
    from rf_factory import T0

    rid = "run-inputs"
    task = TaskRecord(run_id=rid, task_run_id="t1", task_name="load", task_key="k", state="COMPLETED", started_at=T0,
                      ended_at=T0, duration_s=0, parameters_hash="p",
                      inputs=[DataRef(uri="/gone.csv", kind="missing"),
                              DataRef(uri="/there.csv", sha256="e" * 64, size=1)])  # fmt: skip
    make_run(store, run_id=rid, tasks=[task])
    report = build_report(store, rid)
    assert report.reasons() == {
        "inputs-not-hashed": "1 input(s) not hashed: their content cannot be verified",
        "inputs-not-stored": "1 input(s) not stored: a replay needs the originals",
    }
    assert report.score == 85


def test_secrets_are_informational_and_score_floors_at_zero(store: Store) -> None:
    """Redacted secrets are reported without a deduction; many problems never go below 0."""
    env = make_environment(
        packages=[dist(f"lib{i}", "1", direct_url=DirectUrl(url=f"file:///l{i}", editable=True)) for i in range(3)],
        env_vars={"AWS_SECRET_ACCESS_KEY": EnvVar(redacted=True, reason="name", fingerprint="hmac-sha256:ab")},
    )
    rid = make_run(store, environment=env, git=GitState(available=False), source=SourceSnapshot(),
                   failed_task=True, status="CRASHED", hardware=Hardware(gpus=[GPUInfo(index=0, name="X")]),
                   run_findings=[Finding(code=f"RPF00{i}", message="m", severity="error") for i in range(4)])  # fmt: skip
    report = build_report(store, rid)
    secrets = next(c for c in report.checks if c.code == "secrets-redacted")
    assert secrets.status == "info" and secrets.points_lost == 0 and "1 secret(s) redacted" in secrets.reason
    assert report.score == max(0, 100 - (15 + 10 + 20 + 30 + 5 + 15))


def test_markdown_html_and_store_copy(store: Store, clean: dict[str, Any], tmp_path: pathlib.Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """`reproflow report` writes REPRODUCIBILITY.md into the run's folder, -o writes md or html,
    --json prints only JSON; a bad run id or format is one error line."""
    rid = make_run(store, failed_task=True)
    out = tmp_path / "r.html"
    assert run_cli(app, ["report", rid, "--json", "--format", "html", "-o", str(out), "--store", store.url]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["score"] == 85 and data["checks"]
    saved = store.read_bytes(posixpath.join(store.run_dir(rid), REPORT_FILENAME)).decode()
    assert "scores **85/100**" in saved and "| ❌ | Run succeeded | -15 |" in saved
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "85/100" in html
    assert run_cli(app, ["report", rid, "--store", store.url]) == 0
    assert "85/100" in capsys.readouterr().out
    assert run_cli(app, ["report", "0000cafe", "--store", store.url]) == RunNotFound.exit_code
    assert run_cli(app, ["report", rid, "--format", "pdf", "--store", store.url]) == 2
    assert capsys.readouterr().err.count("\n") == 2


@pytest.mark.slow
def test_publish_report_as_prefect_artifact(prefect_harness: None, store: Store) -> None:
    """The report becomes a markdown artifact (key matching ^[a-z0-9-]*$) on a real flow run,
    read back through Prefect's API."""
    import re
    from types import SimpleNamespace

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.context import get_run_context

    @flow
    def tiny() -> str:
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]

    flow_run_id = tiny()
    report = build_report(store, make_run(store, run_id=flow_run_id))
    assert re.fullmatch(r"[a-z0-9-]*", ARTIFACT_KEY)
    artifact_id = publish_report_artifact(report, flow_run_id)
    with get_client(sync_client=True) as client:  # its read_artifacts sends nulls this server refuses
        body = {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 50, "offset": 0}
        found = client.request("POST", "/artifacts/filter", json=body).json()
    found = [SimpleNamespace(**a) for a in found]
    mine = [a for a in found if a.id == str(artifact_id)]
    assert mine and str(mine[0].flow_run_id) == flow_run_id
    assert mine[0].type == "markdown" and "scores **100/100**" in str(mine[0].data)
