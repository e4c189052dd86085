"""reproflow.CONTENT on the real Prefect engine: only what changed re-runs, and status says why."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys
import textwrap
import uuid
from typing import Any

import pytest

from reproflow.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")

HELPERS = '''
def fmt(text):
    return "[" + text.strip() + "]"
'''

FLOW = '''
from pathlib import Path
from prefect import flow
from reproflow import CONTENT, repro_task
import {helpers} as helpers

@repro_task(inputs=["raw"], outputs=["clean"], cache_policy=CONTENT)
def load_a(raw: Path, clean: Path) -> str:
    clean.write_text(raw.read_text().upper())
    return str(clean)

@repro_task(inputs=["raw"], cache=True)  # the shorthand for cache_policy=CONTENT
def load_b(raw: Path, suffix: str = "!") -> str:
    return raw.read_text().strip() + suffix

@repro_task(inputs=["clean"], cache_policy=CONTENT)
def combine(clean: Path, b: str) -> str:
    return helpers.fmt(clean.read_text()) + b

@repro_task(cache=CONTENT)
def report(text: str) -> int:
    return len(text)

@flow
def pipeline(folder: Path) -> int:
    a = load_a(folder / "a.txt", folder / "a_clean.txt")
    b = load_b(folder / "b.txt")
    return report(combine(Path(a), b))
'''


def _load(folder: pathlib.Path, tag: str) -> Any:
    """Import the flow module fresh (a new process would): its helpers module too."""
    helpers = f"rf_incr_helpers_{tag}"
    for name in [m for m in sys.modules if m.startswith(("rf_incr_flow_", "rf_incr_helpers_"))]:
        del sys.modules[name]
    (folder / f"{helpers}.py").write_text((folder / "helpers_src.py").read_text())
    (folder / "flow.py").write_text(FLOW.format(helpers=helpers))
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(f"rf_incr_flow_{uuid.uuid4().hex}", folder / "flow.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def _run(folder: pathlib.Path, store: Store, tag: str) -> tuple[str, dict[str, Any]]:
    module = _load(folder, tag)
    state = module.pipeline(folder, return_state=True)
    run_id = str(state.state_details.flow_run_id)
    run = store.load_run(run_id)
    return run_id, {t.task_name: t for t in run.final_tasks()}


@pytest.fixture
def project(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha\n")
    (folder / "b.txt").write_text("beta\n")
    (folder / "helpers_src.py").write_text(HELPERS)
    return folder


def _states(tasks: dict[str, Any]) -> dict[str, str]:
    return {name: t.state for name, t in tasks.items()}


@pytest.fixture
def fresh_capture() -> Any:
    """The process's cached capture is dropped afterwards (a test changes the environment)."""
    yield
    import reproflow.capture as capture

    capture.clear_cache()


def test_content_cache_reruns_exactly_what_changed(project: pathlib.Path, store: Store,
                                                  monkeypatch: pytest.MonkeyPatch, fresh_capture: None) -> None:
    """Four tasks under CONTENT: a second run reuses all four (CACHED records naming the first run);
    new bytes under the same path re-run exactly the tasks downstream of it; a helper function
    change re-runs the task that calls it; a package upgrade re-runs every task. Before each
    re-run, `status` names the reason."""
    first, tasks = _run(project, store, "v1")
    assert set(_states(tasks).values()) == {"COMPLETED"}
    assert all(t.cache is not None for t in tasks.values())

    second, tasks = _run(project, store, "v1")
    assert set(_states(tasks).values()) == {"CACHED"}
    assert {t.cache.reused_run_id for t in tasks.values()} == {first}
    assert status_reasons(store, second) == {}
    assert _cli_status(store, second)[0] == 0
    from reproflow.engines.prefect._artifacts import summary_markdown

    summary = summary_markdown(store, store.load_run(second))
    assert f"**Reused** (reproflow.CONTENT cache): 4 of 4 task runs; 4 from `{first}`" in summary

    # same path, new bytes
    (project / "a.txt").write_text("ALPHA and more\n")
    reasons = status_reasons(store, second)
    assert set(reasons) == {"load_a", "combine", "report"}
    assert any("input changed" in r and "a.txt" in r for r in reasons["load_a"])
    assert any("upstream" in r for r in reasons["combine"])
    code, data = _cli_status(store, second)
    assert code == 1 and data["stale"] == 3
    assert {t["task_name"]: t["stale"] for t in data["tasks"]} == {
        "load_a": True, "load_b": False, "combine": True, "report": True}
    third, tasks = _run(project, store, "v1")
    assert _states(tasks) == {"load_a": "COMPLETED", "load_b": "CACHED", "combine": "COMPLETED", "report": "COMPLETED"}

    # a helper function the task calls (same output)
    changed = HELPERS.replace('return "["', 'unused = 1\n    return "["')
    (project / "helpers_src.py").write_text(changed)
    (project / "rf_incr_helpers_v1.py").write_text(changed)
    reasons = status_reasons(store, third)
    assert any("code changed" in r and "fmt" in r for r in reasons["combine"])
    assert reasons["report"] == ["upstream task stale: combine"]  # until combine re-runs, its output is unknown
    assert set(reasons) == {"combine", "report"}
    fourth, tasks = _run(project, store, "v1")
    assert _states(tasks) == {"load_a": "CACHED", "load_b": "CACHED", "combine": "COMPLETED", "report": "CACHED"}

    # a parameter default changed
    (project / "flow.py").write_text(FLOW.format(helpers="rf_incr_helpers_v1").replace('suffix: str = "!"', 'suffix: str = "?"'))
    reasons = status_reasons(store, fourth)
    assert any("parameter default changed: suffix" in r for r in reasons["load_b"])

    # a package upgraded in the environment: every task
    _upgrade_a_package(monkeypatch)
    reasons = status_reasons(store, fourth)
    assert set(reasons) == {"load_a", "load_b", "combine", "report"}
    assert any("package changed: prefect" in r for r in reasons["report"])
    _, tasks = _run(project, store, "v1")
    assert set(_states(tasks).values()) == {"COMPLETED"}


def _cli_status(store: Store, run_id: str) -> tuple[int, dict[str, Any]]:
    """`reproflow status RUN_ID --json` through the CLI: its exit code and its JSON."""
    import contextlib
    import io

    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_cli(app, ["status", run_id, "--store", store.url, "--json"])
    return code, json.loads(out.getvalue())


def status_reasons(store: Store, run_id: str) -> dict[str, list[str]]:
    from reproflow.analysis._status import stale_tasks

    return {row.task_name: row.reasons for row in stale_tasks(store, run_id) if row.stale}


def _upgrade_a_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment as the capture layer reads it, with Prefect one version newer."""
    import reproflow.capture as capture

    real = capture.capture_environment

    def upgraded(*args: Any, **kwargs: Any) -> Any:
        env = real(*args, **kwargs)
        for dist in env.distributions:
            if dist.name.lower() == "prefect":
                dist.version = dist.version + ".post1"
        return env

    monkeypatch.setattr(capture, "capture_environment", upgraded)
    capture.clear_cache()
    monkeypatch.setattr("reproflow.analysis._status.capture_environment", upgraded, raising=False)


def test_prefect_inputs_policy_serves_stale_result_content_does_not(tmp_path: pathlib.Path, store: Store) -> None:
    """Side by side on the same file: Prefect's INPUTS key is the path string, so new bytes under
    the same path get the old result; CONTENT re-runs."""
    from prefect import flow
    from prefect.cache_policies import INPUTS

    from reproflow import CONTENT, repro_task

    src = tmp_path / f"data-{uuid.uuid4().hex}.txt"
    src.write_text("one\n")

    @repro_task(cache_policy=INPUTS)
    def read_inputs(path: pathlib.Path) -> str:
        return path.read_text()

    @repro_task(cache_policy=CONTENT)
    def read_content(path: pathlib.Path) -> str:
        return path.read_text()

    @flow
    def both(path: pathlib.Path) -> list[str]:
        return [read_inputs(path), read_content(path)]

    assert both(src) == ["one\n", "one\n"]
    src.write_text("two\n")
    assert both(src) == ["one\n", "two\n"]


def test_key_parts_are_delimited() -> None:
    """Two different part sets that concatenate to the same text still get different keys."""
    from reproflow.recorder._content import compose

    assert compose({"parameters": {"a": "bc"}}) != compose({"parameters": {"ab": "c"}})
    assert compose({"inputs": {"x": "1"}, "code": {}}) != compose({"inputs": {}, "code": {"x": "1"}})
    assert json.dumps(textwrap.dedent("x")) == '"x"'


def test_cache_shorthand_sets_the_prefect_cache_policy() -> None:
    """``cache=True`` is ``cache_policy=reproflow.CONTENT``; any policy passes through; both at once
    is one clear error."""
    from prefect.cache_policies import INPUTS

    from reproflow import CONTENT, repro_task
    from reproflow.errors import DeclarationError

    def f(x: int) -> int:
        return x

    assert repro_task(cache=True)(f).cache_policy is CONTENT
    assert repro_task(cache=INPUTS)(f).cache_policy is INPUTS
    with pytest.raises(DeclarationError, match="one of them"):
        repro_task(cache=True, cache_policy=INPUTS)(f)
