"""End to end: a replay runs in the restored code and never writes into the user's checkout.

A flow in a temporary git repository reads a tracked file (``data/in.csv``, by a relative path)
and an ignored, untracked one (``data/raw.bin``, by an absolute path inside the repository), and
writes ``out/result.txt`` relative to its working folder and ``results/abs.txt`` by an absolute
path inside the repository. It is recorded twice by ``python flow.py`` (once with
``REPROFLOW_STORE_INPUTS=1``), then replayed ``--in-place`` through the CLI against a real Prefect
server on loopback: the user's tree must stay byte-for-byte as it was, and with the repository
moved away (another machine) the replay must still reproduce from the store alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reproflow.store import Store

pytestmark = pytest.mark.slow

FLOW = textwrap.dedent(
    """
    import json
    from pathlib import Path

    from prefect import flow

    from reproflow import repro_task


    @repro_task
    def load(data: Path, raw: Path) -> dict:
        return {"lines": data.read_text().splitlines(), "raw": raw.read_bytes().hex()}


    @repro_task
    def write_rel(summary: dict) -> Path:
        out = Path("out") / "result.txt"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(summary, sort_keys=True))
        return out


    @repro_task(outputs=["dest"])
    def write_abs(summary: dict, dest: Path) -> int:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(str(len(summary["lines"])))
        return len(summary["lines"])


    @flow
    def pipeline(data: Path, raw: Path, dest: Path) -> None:
        summary = load(data, raw)
        write_rel(summary)
        write_abs(summary, dest)


    if __name__ == "__main__":
        root = Path(__file__).resolve().parent
        pipeline(Path("data/in.csv"), root / "data" / "raw.bin", root / "results" / "abs.txt")
    """
)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout


def _record(repo: Path, store: Path, api: str, **extra: str) -> str:
    env = {**os.environ, "REPROFLOW_STORE": str(store), "PREFECT_API_URL": api, "PREFECT_LOGGING_LEVEL": "WARNING",
           **extra}
    before = set(Store(store).run_ids()) if store.exists() else set()
    proc = subprocess.run([sys.executable, "flow.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (new,) = set(Store(store).run_ids()) - before
    return new


@pytest.fixture(scope="module")
def recorded(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The repository, recorded once plainly and once with stored inputs; out/ and results/
    removed again, so a replay that wrote into the repository would show."""
    base = tmp_path_factory.mktemp("replay-relocate")
    repo, store = base / "repo", base / "store"
    (repo / "data").mkdir(parents=True)
    (repo / "flow.py").write_text(FLOW)
    (repo / "data" / "in.csv").write_text("a,b\n1,2\n3,4\n")
    (repo / ".gitignore").write_text("data/raw.bin\nout/\nresults/\n__pycache__/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pipeline")
    (repo / "data" / "raw.bin").write_bytes(bytes(range(256)))  # untracked, ignored: not in the snapshot
    plain = _record(repo, store, prefect_api)
    stored = _record(repo, store, prefect_api, REPROFLOW_STORE_INPUTS="1")
    for name in ("out", "results"):
        for p in sorted((repo / name).rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        (repo / name).rmdir()
    yield {"repo": repo, "store": store, "plain": plain, "stored": stored, "base": base}


def _tree(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry under root: kind, mtime (ns) and content hash for files."""
    out: dict[str, tuple[str, int, str]] = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        if p.is_file():
            out[str(p.relative_to(root))] = ("file", st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        else:
            out[str(p.relative_to(root))] = ("dir", st.st_mtime_ns, "")
    return out


def _replay(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
            cwd: Path) -> tuple[int, Any, str]:
    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    code = run_cli(app, ["replay", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if "--json" in args and out.strip() else None), err


def test_in_place_replay_leaves_the_users_tree_untouched(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """--in-place, with the original folder still there: reproduced (exit 0); the relative and
    the absolute output were written in the restored code; the tracked input was read from the
    restored code and the ignored one copied from the repository; the repository (.git
    included) is byte-for-byte and mtime-for-mtime unchanged, with no out/ or results/."""
    repo = recorded["repo"]
    before = _tree(repo)
    code, result, err = _replay([recorded["plain"], "--store", str(recorded["store"]), "--in-place", "--json"],
                                capsys, monkeypatch, cwd=repo)
    assert code == 0, err + json.dumps(result, indent=1)[-3000:]
    assert result["verdict"] == "reproduced"
    assert [t["task_name"] for t in result["tasks"]] == ["load", "write_rel", "write_abs"]
    assert all(t["verdict"] == "reproduced" for t in result["tasks"])
    assert all(o["match"] for t in result["tasks"] for o in t["outputs"])
    assert sum(len(t["outputs"]) for t in result["tasks"]) >= 2
    assert _tree(repo) == before
    assert not (repo / "out").exists() and not (repo / "results").exists()
    checks = {Path(i["uri"]).name: i for i in result["inputs"]}
    assert checks["in.csv"]["status"] == "ok" and not checks["in.csv"]["location"].startswith(str(repo))
    assert checks["raw.bin"]["status"] == "restored" and str(repo / "data" / "raw.bin") in checks["raw.bin"]["note"]
    assert result["plan"]["source_root"] == str(repo) and result["plan"]["cwd"] == "."
    assert not result["cwd"].startswith(str(repo) + os.sep)
    new = Store(recorded["store"]).load_run(result["replay_run_id"])
    written = [r.uri for t in new.tasks for r in t.outputs]
    assert written and not any(u.startswith(str(repo) + os.sep) for u in written), written


def test_store_alone_replays_after_the_repository_moved(recorded: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With the repository moved away (a second machine): the run recorded with stored inputs
    reproduces, its ignored input restored from the stored copy; the run recorded without them
    refuses before running, in one line naming the file and how to store inputs (exit 6)."""
    repo = recorded["repo"]
    moved = recorded["base"] / "moved-away"
    st = Store(recorded["store"])
    runs_before = set(st.run_ids())
    repo.rename(moved)
    try:
        code, result, err = _replay([recorded["stored"], "--store", str(recorded["store"]), "--in-place", "--json"],
                                    capsys, monkeypatch, cwd=recorded["base"])
        assert code == 0, err + json.dumps(result, indent=1)[-3000:]
        assert result["verdict"] == "reproduced"
        checks = {Path(i["uri"]).name: i for i in result["inputs"]}
        assert checks["raw.bin"]["status"] == "restored" and "stored" in checks["raw.bin"]["note"]
        assert checks["in.csv"]["status"] == "ok"
        assert not repo.exists()  # nothing recreated at the recorded path

        code, _, err = _replay([recorded["plain"], "--store", str(recorded["store"]), "--in-place"],
                               capsys, monkeypatch, cwd=recorded["base"])
        line = " ".join(err.split())
        assert code == 6, err
        assert str(repo / "data" / "raw.bin") in line and "store_inputs=True" in line
        assert "REPROFLOW_STORE_INPUTS=1" in line
        assert not repo.exists()
        assert len(set(st.run_ids()) - runs_before) == 1  # the refused replay wrote nothing
    finally:
        moved.rename(repo)
