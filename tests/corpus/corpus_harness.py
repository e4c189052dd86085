"""The pipeline corpus: pipelines of the shapes people write, each recorded as a fresh git
repository by ``python flow.py`` and replayed from another folder with nothing but ``--store``.

A shape is a folder under ``shapes/``: ``flow.py`` (run as a script), any data files beside it, and
``expect.json``::

    {
      "about": "what the shape is and what broke",
      "verdict": "reproduced",            # the replay's overall verdict, or "refused"
      "exit": 0,                          # the replay's exit code
      "tasks": {"write_report": "reproduced", "fit": "unverified"},   # per task name (every map index)
      "refusal": "text the refusal names", # with "refused": a piece of the one-line error
      "replay_args": ["--allow-changed-inputs"],
      "backends": ["local", "s3"],        # stores to record into, one case each (default: both)
      "runs": 1,                          # how many times to run flow.py before replaying the last run
      "flow_runs": 1,                     # top-level runs one flow.py makes (the last started is replayed)
      "after_record": "python: Path('data/in.csv').write_text('changed')",  # optional, see below
      "env": {"REPROFLOW_STORE_INPUTS": "1"},  # extra environment for recording (python flow.py)
      "replay_states": {"weight": "COMPLETED"},  # the state each replayed task (every map index) ended in
      "argv": ["-m", "pipeline.main", "7"],    # run `python ARGV...` instead of `python flow.py`
      "record_exit": 1,                   # python flow.py's exit code (default 0: a flow that fails exits 1)
      "flow_state": "FAILED",             # how the recorded run and the replay's flow run both ended
      "causes": {"jitter": "nondeterminism"},  # a piece of one of the likely causes named for the task
      "s3_data": "s3data"                 # a folder of the shape uploaded to a new bucket of the moto
    }                                     # server: its URL is $DATA_BUCKET when recording (any store)

``replay_args`` are passed to ``reproflow replay`` as they are (``["--task", "split"]`` replays one
task). Files the shape's ``.gitignore`` ignores are copied into the repository but not committed
(data that exists on disk before the run and is not part of the recorded source).

Every shape is a case on a local store folder and a case on S3 (a moto server on loopback): a
shape leaves out ``backends``. Listing one backend (``["local"]``) is for a shape that cannot run on
the other, with the reason in ``about``; a store that gives another verdict is a bug in reproflow.

``after_record`` is one line of Python run in the repository after recording, in the recording's
environment (``$DATA_BUCKET`` included): a user editing a file, to check that replay notices, or
removing what an earlier run left, so the replay starts without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHAPES = Path(__file__).resolve().parent / "shapes"
#: The stores every shape is recorded into and replayed from, unless its expect.json lists others.
BACKENDS = ("local", "s3")


def shape_names() -> list[str]:
    return sorted(p.name for p in SHAPES.iterdir() if (p / "expect.json").is_file())


@dataclass
class Shape:
    name: str
    expect: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, name: str) -> "Shape":
        return cls(name, json.loads((SHAPES / name / "expect.json").read_text()))

    @property
    def backends(self) -> list[str]:
        return list(self.expect.get("backends", BACKENDS))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout


def make_repo(shape: Shape, dest: Path) -> Path:
    """The shape's files as a fresh git repository with one commit."""
    skip = ["expect.json", "__pycache__"] + ([shape.expect["s3_data"]] if "s3_data" in shape.expect else [])
    shutil.copytree(SHAPES / shape.name, dest, ignore=shutil.ignore_patterns(*skip))
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", f"{shape.name} pipeline")
    return dest


def record(repo: Path, store_url: str, env: dict[str, str] | None = None, *, list_runs: Any,
           argv: list[str] | None = None, exit_code: int = 0, flow_runs: int = 1) -> tuple[str, str]:
    """Run ``python flow.py`` (or ``python ARGV...``) in ``repo`` with the store in
    ``REPROFLOW_STORE``; return the new run id (of ``flow_runs`` new ones, the last started) and
    the script's output. ``list_runs`` gives the store's run ids (before and after);
    ``exit_code`` is the one the script must end with."""
    before = set(list_runs())
    proc = subprocess.run([sys.executable, *(argv or ["flow.py"])], cwd=repo, env={**os.environ, **(env or {}),
                          "REPROFLOW_STORE": store_url}, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == exit_code, (f"python {' '.join(argv or ['flow.py'])} exited {proc.returncode}, "
                                          f"not {exit_code}:\n{output[-4000:]}")
    new = set(list_runs()) - before
    assert len(new) == flow_runs, f"expected {flow_runs} new top-level run(s), got {sorted(new)}:\n{output[-2000:]}"
    if flow_runs == 1:
        return new.pop(), output
    from reproflow.store import Store

    store = Store(store_url)
    return max(new, key=lambda run_id: store.load_run_record(run_id).started_at), output


def replay(run_id: str, store_url: str, cwd: Path, args: list[str], *, capsys: Any,
           monkeypatch: Any) -> tuple[int, Any, str, str]:
    """``reproflow replay RUN_ID --store URL --json`` through the CLI, in ``cwd``; returns the exit
    code, the parsed JSON (None when nothing came on stdout), stdout and stderr."""
    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    code = run_cli(app, ["replay", run_id, "--store", store_url, "--json", *args])
    out, err = capsys.readouterr()
    try:
        data = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        data = None
    return code, data, out, err


def task_verdicts(result: dict[str, Any]) -> dict[str, set[str]]:
    """Task name -> the set of verdicts its runs got."""
    out: dict[str, set[str]] = {}
    for t in result.get("tasks", []):
        out.setdefault(t["task_name"], set()).add(t["verdict"])
    return out


def check(shape: Shape, code: int, result: Any, out: str, err: str) -> None:
    """Assert the replay's outcome is the one the shape expects (never a false "reproduced")."""
    exp = shape.expect
    summary = ""
    if isinstance(result, dict):  # the verdicts first: the JSON's tail is mostly output hashes
        rows = [f"{t.get('task_name')}[{t.get('map_index')}]: {t.get('verdict')} {t.get('reason') or t.get('cause') or ''}"
                for t in result.get("tasks", [])]
        summary = f"verdict {result.get('verdict')}: " + "; ".join(rows) + "\n"
    where = f"[{shape.name}] exit {code}\n{summary}stdout: {out[-3000:]}\nstderr: {err[-3000:]}"
    assert "Traceback (most recent call last)" not in err, where
    assert code == exp.get("exit", 0), where
    if exp["verdict"] == "refused":
        assert result is None or result.get("verdict") != "reproduced", where
        text = (err + out).lower()
        assert exp["refusal"].lower() in text, where
        return
    assert result is not None, where
    assert result["verdict"] == exp["verdict"], where
    got = task_verdicts(result)
    for name, verdict in exp.get("tasks", {}).items():
        assert got.get(name) == {verdict}, f"task {name}: {got.get(name)} != {verdict}\n{where}"
    for name, state in exp.get("replay_states", {}).items():
        states = {t.get("replay_state") for t in result.get("tasks", []) if t["task_name"] == name}
        assert states == {state}, f"task {name} ended {states} in the replay, not {state}\n{where}"
    for name, piece in exp.get("causes", {}).items():
        causes = [c for t in result.get("tasks", []) if t["task_name"] == name for c in t.get("causes", [])]
        assert any(piece in c for c in causes), f"task {name}: no cause names {piece!r}: {causes}\n{where}"
    if "flow_state" in exp:
        ended = (result.get("recorded_state"), result.get("flow_state"))
        assert ended == (exp["flow_state"], exp["flow_state"]), f"recorded, replayed ended {ended}\n{where}"
    if exp["verdict"] == "reproduced":
        bad = {n: v for n, v in got.items() if v - {"reproduced", "unverified"}}
        assert not bad, f"{bad}\n{where}"
        # a plan's problems stop a replay: one that ran and reproduced listed none (a make-style
        # run's input was said to be 'written by the run itself', in a plan that then ran)
        problems = (result.get("plan") or {}).get("problems")
        assert not problems, f"the plan of a reproduced replay lists problems: {problems}\n{where}"


def cases(part: int, parts: int) -> list[tuple[str, str]]:
    """Every (shape, backend) case, dealt round-robin into ``parts`` modules (test_corpus*.py):
    xdist runs a module on one worker (``--dist loadfile``), so the corpus is split to run on
    all of them."""
    every = [(name, backend) for name in shape_names() for backend in Shape.load(name).backends]
    return every[part::parts]


def _store(backend: str, tmp_path: Path, request: Any) -> str:
    if backend == "local":
        return str(tmp_path / "store")
    srv = request.getfixturevalue("s3")["server"]
    return f"s3://{srv.new_bucket()}/runs"


def _data_bucket(folder: Path, request: Any) -> str:
    """A new bucket of the moto server holding ``folder``'s files under their relative names."""
    srv = request.getfixturevalue("s3")["server"]
    bucket = srv.new_bucket()
    client = srv.client()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.put_object(Bucket=bucket, Key=path.relative_to(folder).as_posix(), Body=path.read_bytes())
    return f"s3://{bucket}"


def _run_ids(url: str) -> Any:
    from reproflow.store import Store

    def ids() -> list[str]:
        try:
            return list(Store(url).run_ids())
        except Exception:  # an empty, not yet created store
            return []
    return ids


def run_case(name: str, backend: str, tmp_path: Path, request: Any, capsys: Any, monkeypatch: Any) -> None:
    """Record the shape, replay it from an empty folder with only --store, check the verdict."""
    shape = Shape.load(name)
    url = _store(backend, tmp_path, request)
    repo = make_repo(shape, tmp_path / "repo")
    env = dict(shape.expect.get("env", {}))
    if "s3_data" in shape.expect:
        env["DATA_BUCKET"] = _data_bucket(SHAPES / shape.name / shape.expect["s3_data"], request)
    run_id = ""
    for _ in range(int(shape.expect.get("runs", 1))):
        run_id, _out = record(repo, url, env, list_runs=_run_ids(url),
                              argv=shape.expect.get("argv"), exit_code=int(shape.expect.get("record_exit", 0)),
                              flow_runs=int(shape.expect.get("flow_runs", 1)))
    if shape.expect.get("after_record"):
        subprocess.run([sys.executable, "-c", "from pathlib import Path; " + shape.expect["after_record"]],
                       cwd=repo, env={**os.environ, **env}, check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, result, out, err = replay(run_id, url, elsewhere, list(shape.expect.get("replay_args", [])),
                                    capsys=capsys, monkeypatch=monkeypatch)
    check(shape, code, result, out, err)


def corpus_test(part: int, parts: int = 6) -> Any:
    """The corpus test of one module (test_corpus.py, _1 to _5): the cases of ``part``, each
    recording and replaying real flows (the first of a session may build the shared replay
    environment, file-locked, on a loaded machine: up to 900 s)."""
    import pytest

    these = cases(part, parts)

    @pytest.mark.slow
    @pytest.mark.timeout(900)
    @pytest.mark.parametrize(("name", "backend"), these, ids=[f"{n}-{b}" for n, b in these])
    def test_shape_replays_to_an_honest_verdict(name: str, backend: str, corpus_env: dict[str, Any], tmp_path: Path,
                                                request: Any, capsys: Any, monkeypatch: Any) -> None:
        """Record the shape, replay it from an empty folder with only --store, check the verdict."""
        run_case(name, backend, tmp_path, request, capsys, monkeypatch)

    return test_shape_replays_to_an_honest_verdict
