"""`build_report` and `reproflow report`: the score falls, with the named reason, per planted problem."""

from __future__ import annotations

import json
import pathlib
import posixpath
import sys
from typing import Any

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent / "export"))

from rf_factory import dist, make_environment  # noqa: E402
from rf_factory import make_run as _make_run  # noqa: E402

from reproflow.cli._common import run_cli
from reproflow.analysis._report import (
    ARTIFACT_KEY,
    HTML_FILENAME,
    REPORT_FILENAME,
    build_report,
    publish_report_artifact,
)
from reproflow.cli import app
from reproflow.errors import RunNotFound
from reproflow.records import DirectUrl, EnvVar, Finding, GitState, GPUInfo, Hardware, SourceSnapshot
from reproflow.store import Store


def _stored_source(store: Store) -> SourceSnapshot:
    """A source snapshot that is in the store (a tar.gz of the flow file), as a real run has."""
    import gzip
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = b"def demo_flow(): ...\n"
        info = tarfile.TarInfo("flows/demo.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    blob = store.put_blob(gzip.compress(raw.getvalue(), mtime=0))
    return SourceSnapshot(kind="git", root="/src/project", blob=blob, files=1, bytes=len(raw.getvalue()))


def make_run(store: Store, **kw: Any) -> str:
    """rf_factory's run, with its source snapshot really in the store (else a replay is refused)."""
    kw.setdefault("source", _stored_source(store))
    return _make_run(store, **kw)


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
    # name: (make_run overrides, check code, points lost, words in the reason); "no source" also
    # costs replay-refused (test_no_source_is_also_a_refused_replay)
    "no git": ({"git": GitState(available=False, absent_reason="not a git repository")}, "no-git", 15, "no git repository"),
    "dirty tree": ({"git": GitState(available=True, commit="a" * 40, dirty=True, diff_stat="1 file changed")},
                   "dirty-tree", 15, "dirty working tree"),
    "dirty tree, diff stored": ({"git": GitState(available=True, commit="a" * 40, dirty=True, diff_blob="d" * 64)},
                                "dirty-tree", 10, "the diff was stored"),
    "no source": ({"source": SourceSnapshot(kind="none", absent_reason="disabled")}, "no-source", 10, "no snapshot"),
    "unpinned local package": ({"packages": [dist("mylib", "0.1", direct_url=DirectUrl(url="file:///src/mylib", editable=True))]},
                               "unpinned-local", 10, "unpinned local package"),
    "unseeded randomness": ({"task_findings": [Finding(code="RPF101", message="random.random() without a seed", path="f.py",
                                                       line=3, severity="error"),
                                               Finding(code="RPF101", message="again", path="f.py", line=9, severity="error")],
                             "run_findings": [Finding(code="RPF102", message="np.random.rand", severity="warning"),
                                              Finding(code="RPF999", message="style", severity="info")]},
                            "unseeded-randomness", 15, "unseeded randomness found: 3 finding(s) of RPF101 unseeded-python-random, "
                            "RPF102 unseeded-numpy-random"),
    "other static findings": ({"task_findings": [Finding(code="RPF301", message="/home/me/data.csv", severity="warning")]},
                              "findings", 5, "RPF301 machine-specific-path"),
    "secrets redacted": ({"environment": make_environment(env_vars={
                              "AWS_SECRET_ACCESS_KEY": EnvVar(redacted=True, reason="name", fingerprint="hmac-sha256:ab")})},
                         "secrets-redacted", 5, "1 secret(s) redacted: their values are not in the record"),
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
    refused = ["replay-refused"] if problem == "no source" else []
    assert [c.code for c in report.deductions] == [code, *refused]
    assert report.score == 100 - points - 30 * len(refused)
    assert words in report.reasons()[code]


def test_no_source_is_also_a_refused_replay(store: Store, clean: dict[str, Any]) -> None:
    """Without a stored snapshot, only the recording machine's repository has the commit: a
    replay from the store alone is refused, and the reason says why."""
    rid = make_run(store, inputs={"path": clean["input"]}, input_stored=True,
                   source=SourceSnapshot(kind="none", absent_reason="disabled"))  # fmt: skip
    reason = build_report(store, rid).reasons()["replay-refused"]
    assert reason.startswith("a replay from the store alone (another machine) would be refused: no source snapshot "
                             f"stored: commit {'a' * 12} can only be restored where its repository is")  # fmt: skip


def test_inputs_not_hashed_and_not_stored(store: Store, tmp_path: pathlib.Path) -> None:
    """An input without a hash and one without a stored copy each cost points, with reasons; a
    file the run wrote and read again needs no stored copy (a replay rebuilds it)."""
    from reproflow.records import DataRef, TaskRecord
    from rf_factory import T0

    rid = "run-inputs"
    task = TaskRecord(run_id=rid, task_run_id="t1", task_name="load", task_key="k", state="COMPLETED", started_at=T0,
                      ended_at=T0, duration_s=0, parameters_hash="p", result_hash="sha256:r",
                      inputs=[DataRef(uri="/gone.csv", kind="missing"),
                              DataRef(uri="/there.csv", sha256="e" * 64, size=1)],
                      outputs=[DataRef(uri="/clean.csv", sha256="f" * 64, size=1)])  # fmt: skip
    reader = task.model_copy(update={"task_run_id": "t2", "task_name": "stats", "outputs": [],
                                     "inputs": [DataRef(uri="/clean.csv", sha256="f" * 64, size=1)]})  # fmt: skip
    make_run(store, run_id=rid, tasks=[task, reader])
    report = build_report(store, rid)
    assert report.reasons() == {
        "inputs-not-hashed": "1 input(s) not hashed: their content cannot be verified",
        "inputs-not-stored": "1 input(s) not stored: a replay needs the originals",
        "replay-refused": "a replay from the store alone (another machine) would be refused: input /there.csv is "
                          "on the recording machine only: no copy was stored",
    }
    assert report.score == 55


def test_inputs_in_the_source_snapshot_count_as_stored(store: Store) -> None:
    """An input under the source root whose content is in the stored snapshot is restored with the
    code by a replay: not "not stored". The same path with other content still is."""
    import hashlib
    import io
    import tarfile

    from reproflow.records import DataRef, SourceSnapshot, TaskRecord
    from rf_factory import T0

    data = b"site,t\na,1\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("data/in.csv")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    blob = store.put_blob(buf.getvalue())
    sha = hashlib.sha256(data).hexdigest()
    source = SourceSnapshot(kind="git", root="/repo", blob=blob, files=1)

    def run_with(rid: str, digest: str) -> list[str]:
        task = TaskRecord(run_id=rid, task_run_id="t1", task_name="load", task_key="k", state="COMPLETED", started_at=T0,
                          ended_at=T0, duration_s=0, parameters_hash="p",
                          inputs=[DataRef(uri="/repo/data/in.csv", sha256=digest, size=len(data))])  # fmt: skip
        make_run(store, run_id=rid, tasks=[task], source=source)
        return [c.code for c in build_report(store, rid).deductions]

    assert "inputs-not-stored" not in run_with("run-snap-same", sha)
    assert "inputs-not-stored" in run_with("run-snap-changed", "0" * 64)


def test_score_floors_at_zero_and_caps_hold(store: Store) -> None:
    """Every problem at once: each check stops at its cap (3 local packages cost 20, 4 randomness
    rules 20, 2 other rules 20) and the score never goes below 0."""
    env = make_environment(
        packages=[dist(f"lib{i}", "1", direct_url=DirectUrl(url=f"file:///l{i}", editable=True)) for i in range(3)],
        env_vars={"AWS_SECRET_ACCESS_KEY": EnvVar(redacted=True, reason="name", fingerprint="hmac-sha256:ab")},
    )
    findings = [Finding(code=f"RPF10{i}", message="m", severity="error") for i in range(1, 5)]
    findings += [Finding(code=c, message="m", severity="error") for c in ("RPF201", "RPF401")]
    rid = make_run(store, environment=env, git=GitState(available=False), source=SourceSnapshot(),
                   failed_task=True, status="CRASHED", hardware=Hardware(gpus=[GPUInfo(index=0, name="X")]),
                   run_findings=findings)  # fmt: skip
    report = build_report(store, rid)
    lost = {c.code: c.points_lost for c in report.deductions}
    assert lost == {"no-git": 15, "no-source": 10, "unpinned-local": 20, "unseeded-randomness": 20, "findings": 20,
                    "gpu-nondeterminism": 5, "secrets-redacted": 5, "failed": 15, "replay-refused": 30}  # fmt: skip
    assert report.score == 0


def test_report_lists_every_stored_finding(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    """Findings stored in task records (and the run record) are listed one row per distinct
    finding, with the rule's name and the tasks that reported it, in Markdown, HTML and JSON."""
    from reproflow.records import TaskRecord
    from rf_factory import T0

    hit = Finding(code="RPF101", message="random.random() without a seed", path="flows/f.py", line=7, severity="error")
    style = Finding(code="RPF601", message="iterating over a set", path="flows/f.py", line=12, severity="warning")
    rid = "run-findings"
    tasks = [TaskRecord(run_id=rid, task_run_id=f"t{i}", task_name="sample", task_key="k", state="COMPLETED",
                        started_at=T0, ended_at=T0, duration_s=0, parameters_hash="p", map_index=i,
                        findings=[hit] + ([style] if i == 1 else []))
             for i in range(2)]  # fmt: skip
    make_run(store, run_id=rid, tasks=tasks, run_findings=[Finding(code="RPF999", message="note", severity="info")])
    report = build_report(store, rid)
    rows = [(f.code, f.rule, f.severity, f.location, f.tasks) for f in report.findings]
    assert rows == [
        ("RPF101", "unseeded-python-random", "error", "flows/f.py:7", ["sample[0]", "sample[1]"]),
        ("RPF601", "unordered-iteration", "warning", "flows/f.py:12", ["sample[1]"]),
        ("RPF999", "", "info", "", ["run"]),
    ]
    assert report.reasons()["unseeded-randomness"] == "unseeded randomness found: 1 finding(s) of RPF101 unseeded-python-random"
    assert report.reasons()["findings"] == "reproducibility hazards found: 1 finding(s) of RPF601 unordered-iteration"
    md = report.to_markdown()
    assert "## Static-analysis findings" in md
    assert "| RPF101 | unseeded-python-random | error | flows/f.py:7 | sample[0], sample[1] | random.random() without a seed |" in md
    assert "<td>RPF601</td><td>unordered-iteration</td>" in report.to_html()
    assert run_cli(app, ["report", rid, "--json", "--no-save", "--store", store.url]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [f["code"] for f in data["findings"]] == ["RPF101", "RPF601", "RPF999"]
    assert not store.fs.exists(posixpath.join(store.run_dir(rid), REPORT_FILENAME))


def test_publish_refuses_a_plain_python_run(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    """A run recorded outside Prefect has no flow run to attach an artifact to: --publish is one
    error line naming the engine, not a Prefect API error."""
    rid = make_run(store, engine="plain")
    assert run_cli(app, ["report", rid, "--publish", "--store", store.url]) != 0
    err = capsys.readouterr().err
    assert "recorded outside Prefect (engine 'plain')" in " ".join(err.split()) and err.count("\n") == 1


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
    saved_html = store.read_bytes(posixpath.join(store.run_dir(rid), HTML_FILENAME)).decode()
    assert saved_html.startswith("<!DOCTYPE html>") and "<strong>85/100</strong>" in saved_html
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


WORDS = '''import json
import sys
import threading
from pathlib import Path

from prefect import flow

from reproflow import repro_task


@repro_task(inputs=["src"])
def count(src: Path) -> int:
    return len(src.read_text().split())


@repro_task
def handle(n: int) -> object:
    return threading.Lock()


@flow
def words(src: Path, lock: object = None, blind: bool = False) -> int:
    if blind:
        handle(1)
    return count(src)


if __name__ == "__main__":
    args = json.loads(sys.argv[1])
    words(Path(args["src"]), lock=threading.Lock() if args.get("lock") else None, blind=args.get("blind", False))
'''


@pytest.mark.slow
def test_a_run_whose_replay_would_be_refused_scores_lower_with_the_reason(
    prefect_api_env: dict[str, str], tmp_path: pathlib.Path
) -> None:
    """Real runs of a committed flow (`python flow.py` in a git repository) reading a file outside
    the repository. Not stored, that input exists on the recording machine only: a replay from
    the store is refused, which costs 30 points and names the input (the old report gave 95).
    Stored (REPROFLOW_STORE_INPUTS=1), the same run loses nothing for it. An opaque flow
    parameter is refused too, by name; a task returning an object with no stable hash and
    writing no file cannot be checked by a replay and costs 5 points, named."""
    import os
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "flow.py").write_text(WORDS)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "words"]):
        subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo, check=True,
                       capture_output=True)  # fmt: skip
    outside = tmp_path / "words.txt"
    outside.write_text("a b c\n")
    store = Store(tmp_path / "store")

    def record(args: dict[str, Any], **env: str) -> str:
        before = set(store.run_ids()) if pathlib.Path(store.url).exists() else set()
        proc = subprocess.run([sys.executable, "flow.py", json.dumps({"src": str(outside), **args})], cwd=repo,
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, **prefect_api_env, "REPROFLOW_STORE": store.url,
                                   "REPROFLOW_ARTIFACTS": "off", **env})  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        (new,) = set(store.run_ids()) - before
        return new

    unstored = build_report(store, record({}))
    assert [c.code for c in unstored.deductions] == ["inputs-not-stored", "replay-refused"]
    assert unstored.score == 65
    assert unstored.reasons()["replay-refused"] == (
        "a replay from the store alone (another machine) would be refused: "
        f"input {outside} is on the recording machine only: no copy was stored")
    stored = build_report(store, record({}, REPROFLOW_STORE_INPUTS="1"))
    assert stored.deductions == [] and stored.score == 100
    opaque = build_report(store, record({"lock": True, "blind": True}, REPROFLOW_STORE_INPUTS="1"))
    assert [c.code for c in opaque.deductions] == ["replay-refused", "unverifiable"]
    assert "parameter 'lock' of flow 'words' was recorded as an opaque _thread.lock" in opaque.reasons()["replay-refused"]
    assert opaque.reasons()["unverifiable"].endswith("no output file was recorded: handle")
    assert opaque.score == 65
    md = opaque.to_markdown()
    assert "| ❌ | Replayable from the store | -30 |" in md and "| ❌ | Results a replay can check | -5 |" in md
