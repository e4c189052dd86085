"""reproflow.CONTENT on the real Prefect engine: only what changed re-runs, and status says why."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import pathlib
import sys
import textwrap
import threading
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


def test_content_cache_reruns_exactly_what_changed(project: pathlib.Path, store: Store) -> None:
    """Four tasks under CONTENT: a second run reuses all four (CACHED records naming the first run);
    new bytes under the same path re-run exactly the tasks downstream of it; a helper function
    change re-runs the task that calls it; a changed parameter default is named. Before each
    re-run, `status` names the reason. (A package upgrade: the test after this one, in a real
    environment.)"""
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


# --------------------------------------------------------------------- a real package upgrade

PROBE_BACKEND = '''
"""A PEP 517 backend that needs nothing installed: the wheel holds rf_upgrade_probe.py."""
import base64, hashlib, pathlib, re, zipfile

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    version = re.search(r'version = "(.+)"', pathlib.Path("pyproject.toml").read_text()).group(1)
    info = f"rf_upgrade_probe-{version}.dist-info"
    files = {
        "rf_upgrade_probe.py": pathlib.Path("rf_upgrade_probe.py").read_bytes(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\\nName: rf-upgrade-probe\\nVersion: {version}\\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: probe\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    lines = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
             for p, d in files.items()]
    files[f"{info}/RECORD"] = ("\\n".join(lines + [f"{info}/RECORD,,"]) + "\\n").encode()
    name = f"rf_upgrade_probe-{version}-py3-none-any.whl"
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / name, "w") as whl:
        for path, data in files.items():
            whl.writestr(path, data)
    return name
'''

UPGRADE_FLOW = '''
from pathlib import Path
from prefect import flow
from reproflow import CONTENT, repro_task

@repro_task(inputs=["raw"], outputs=["clean"], cache_policy=CONTENT)
def load_a(raw: Path, clean: Path) -> str:
    clean.write_text(raw.read_text().upper())
    return str(clean)

@repro_task(inputs=["raw"], cache=True)
def load_b(raw: Path) -> str:
    return raw.read_text().strip() + "!"

@repro_task(inputs=["clean"], cache_policy=CONTENT)
def combine(clean: Path, b: str) -> str:
    return clean.read_text().strip() + b

@repro_task(cache=CONTENT)
def report(text: str) -> int:
    return len(text)

@flow
def pipeline() -> int:
    a = load_a(Path("a.txt"), Path("a_clean.txt"))
    b = load_b(Path("b.txt"))
    return report(combine(Path(a), b))

if __name__ == "__main__":
    state = pipeline(return_state=True)
    print(state.state_details.flow_run_id)
'''


def _probe_source(folder: pathlib.Path, version: str, body: str) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = []
        build-backend = "probe_backend"
        backend-path = ["."]

        [project]
        name = "rf-upgrade-probe"
        version = "{version}"
        """))
    (folder / "probe_backend.py").write_text(PROBE_BACKEND)
    (folder / "rf_upgrade_probe.py").write_text(body)
    return folder


@pytest.fixture
def upgrade_env(tmp_path: pathlib.Path) -> dict[str, Any]:
    """A real virtual environment (uv) holding only rf-upgrade-probe 1.0, installed with uv from
    a local find-links folder (as from an index) of wheels built by `uv build`; reproflow,
    Prefect and the rest come from this test environment's site-packages through a `.pth` file
    (no second Prefect install). Offline: nothing is downloaded."""
    import subprocess
    import sysconfig

    from reproflow.replay._uv import find_uv

    uv = find_uv()
    uv_env = {"UV_CACHE_DIR": str(tmp_path / "uv-cache"), "UV_OFFLINE": "1", "UV_NO_CONFIG": "1"}
    env = {**os.environ, **uv_env}
    wheels = tmp_path / "wheels"
    for version, body in (("1.0", "VALUE = 1\n"), ("1.1", "VALUE = 2\n")):
        src = _probe_source(tmp_path / f"probe-{version}", version, body)
        subprocess.run([uv, "build", "-q", "--wheel", "--out-dir", str(wheels), str(src)],
                       env=env, check=True, capture_output=True, timeout=300)
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], env=env, check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    parents = sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})
    (pathlib.Path(site) / "_rf_test_parent.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({p!r})" for p in parents) + "\n")
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha\n")
    (folder / "b.txt").write_text("beta\n")
    (folder / "flow.py").write_text(UPGRADE_FLOW)
    out = {"uv": uv, "uv_env": uv_env, "python": str(python), "wheels": str(wheels), "folder": folder,
           "src_1_1": tmp_path / "probe-1.1"}
    _uv_pip(out, "install", "--no-index", "--find-links", str(wheels), "rf-upgrade-probe==1.0")
    return out


def _uv_pip(ctx: dict[str, Any], *args: str) -> None:
    import subprocess

    done = subprocess.run([ctx["uv"], "pip", *args, "--python", ctx["python"]], env={**os.environ, **ctx["uv_env"]},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def _in_env(ctx: dict[str, Any], *args: str) -> Any:
    import subprocess

    env = {**os.environ, "COLUMNS": "250"}  # the status table unwrapped; the store from REPROFLOW_STORE
    return subprocess.run([ctx["python"], *args], cwd=ctx["folder"], env=env, capture_output=True, text=True,
                          timeout=600)


def _flow_run(ctx: dict[str, Any], store: Store) -> tuple[str, dict[str, Any]]:
    done = _in_env(ctx, "flow.py")
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.strip().splitlines()[-1]
    return run_id, {t.task_name: t for t in store.load_run(run_id).final_tasks()}


def _env_status(ctx: dict[str, Any], *args: str) -> tuple[int, Any]:
    """`reproflow status` run by the environment's own Python, in the flow's folder."""
    done = _in_env(ctx, "-m", "reproflow", "status", *args)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout) if "--json" in args else done.stdout


@pytest.mark.slow
def test_a_real_package_upgrade_reruns_every_task(upgrade_env: dict[str, Any], store: Store) -> None:
    """In a real venv, the 4-task flow runs as `python flow.py`. Re-run with nothing changed:
    all four CACHED (the control), each naming the task run it reused, and the run's summary
    artifact in Prefect says so. `uv pip install` upgrades rf-upgrade-probe 1.0 -> 1.1 (a
    package no task imports): `reproflow status` exits 1 naming that upgrade for every task,
    and the next run re-executes all four. The same version installed again from another origin
    (its source folder), and then again with other files: each is named by status and
    invalidates every task; once re-run, status is fresh again (exit 0) and a run is CACHED."""
    ctx = upgrade_env
    first, tasks = _flow_run(ctx, store)
    assert set(_states(tasks).values()) == {"COMPLETED"}
    second, tasks = _flow_run(ctx, store)
    assert set(_states(tasks).values()) == {"CACHED"}
    assert {t.cache.reused_run_id for t in tasks.values()} == {first}
    firsts = {t.task_name: t.task_run_id for t in store.load_run(first).final_tasks()}
    assert {n: t.cache.reused_task_run_id for n, t in tasks.items()} == firsts
    code, data = _env_status(ctx, "--json")
    assert (code, data["run_id"], data["stale"]) == (0, second, 0)
    # the Prefect UI: the run's provenance artifact says what was reused, and from where
    import httpx

    resp = httpx.post(f"{os.environ['PREFECT_API_URL']}/artifacts/filter", timeout=30,
                      json={"artifacts": {"flow_run_id": {"any_": [second]}, "key": {"any_": ["reproflow-provenance"]}}})
    resp.raise_for_status()
    assert f"**Reused** (reproflow.CONTENT cache): 4 of 4 task runs; 4 from `{first}`" in resp.json()[0]["data"]

    _uv_pip(ctx, "install", "--no-index", "--find-links", ctx["wheels"], "rf-upgrade-probe==1.1")
    code, table = _env_status(ctx)
    assert code == 1 and "4 of 4 task(s) stale" in table
    assert table.count("package changed: rf-upgrade-probe 1.0 -> 1.1") == 4, table
    code, data = _env_status(ctx, "--json")
    assert code == 1 and data["stale"] == 4
    for row in data["tasks"]:
        assert "package changed: rf-upgrade-probe 1.0 -> 1.1" in row["reasons"], row
    third, tasks = _flow_run(ctx, store)
    assert set(_states(tasks).values()) == {"COMPLETED"}
    assert _env_status(ctx, "--json")[0] == 0

    # the same version from another origin: its source folder (a non-editable local install)
    _uv_pip(ctx, "install", "--reinstall", str(ctx["src_1_1"]))
    code, data = _env_status(ctx, "--json")
    url = ctx["src_1_1"].as_uri()
    assert code == 1 and data["stale"] == 4
    for row in data["tasks"]:
        assert f"package changed: rf-upgrade-probe 1.1 (installed from an index, now from {url})" in row["reasons"], row
    _, tasks = _flow_run(ctx, store)
    assert set(_states(tasks).values()) == {"COMPLETED"}
    assert _env_status(ctx, "--json")[0] == 0  # what the run recorded is what status sees now

    # the same version and origin, other files (the folder edited, installed again)
    (ctx["src_1_1"] / "rf_upgrade_probe.py").write_text("VALUE = 3\n")
    _uv_pip(ctx, "install", "--reinstall", str(ctx["src_1_1"]))
    code, data = _env_status(ctx, "--json")
    assert code == 1 and data["stale"] == 4
    for row in data["tasks"]:
        assert f"package changed: rf-upgrade-probe 1.1 (installed again with other files, from {url})" in row["reasons"], row


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



def test_a_file_read_without_being_declared_is_in_the_key(tmp_path: pathlib.Path, store: Store) -> None:
    """A task opens a file by a name written in its body (no parameter, no declaration): the
    recorder finds the read, and the next key includes that file's content. Unchanged, the task
    is served from the cache; new bytes, `status` names the file and the task re-runs with the
    new value (it used to be served the old result)."""
    from prefect import flow

    from reproflow import CONTENT, repro_task

    factor = tmp_path / "factor.txt"
    factor.write_text("2\n")
    where = str(factor)

    @repro_task(cache_policy=CONTENT)
    def scale(x: int, tag: str) -> int:
        with open(where) as fh:
            return x * int(fh.read())

    @flow
    def scaled(tag: str) -> int:
        return scale(10, tag)

    def run() -> tuple[int, Any]:
        state = scaled(uuid_tag, return_state=True)
        task = store.load_run(str(state.state_details.flow_run_id)).final_tasks()[0]
        return state.result(), task

    uuid_tag = uuid.uuid4().hex  # this test's own keys in the session's Prefect result storage
    value, task = run()
    assert (value, task.state) == (20, "COMPLETED")
    assert [r.uri for r in task.inputs if r.undeclared] == [where]
    value, task = run()
    assert (value, task.state) == (20, "CACHED")
    assert status_reasons(store, task.run_id) == {}

    factor.write_text("3\n")
    assert status_reasons(store, task.run_id) == {
        "scale": [f"input changed: {where} (new content; read without being declared)"]}
    value, task = run()
    assert (value, task.state) == (30, "COMPLETED")
    value, task = run()
    assert (value, task.state) == (30, "CACHED")
    assert status_reasons(store, task.run_id) == {}


@dataclasses.dataclass
class _Offset:
    k: int

    def __call__(self, x: int, tag: str) -> int:
        return x + self.k


def _times(factor: int, x: int, tag: str) -> int:
    return factor * x


def test_a_partial_s_fixed_arguments_and_a_callable_object_s_state_are_in_the_key(store: Store) -> None:
    """Tasks made from ``functools.partial(_times, 2)`` and ``_Offset(1)`` (recorder._callee):
    the same call with another fixed argument or another object is not served the first one's
    result (their keys held only the call's arguments, and a partial's code none at all). An
    object with no stable hash is not cached at all: it runs every time."""
    import functools

    from prefect import flow

    from reproflow import CONTENT, repro_task

    def run(factor: int, k: int, tag: str) -> tuple[list[int], list[str]]:
        times = repro_task(functools.partial(_times, factor), name="times", cache_policy=CONTENT)
        offset = repro_task(_Offset(k), name="offset", cache_policy=CONTENT)

        @flow
        def both() -> list[int]:
            return [times(10, tag), offset(10, tag)]

        state = both(return_state=True)
        tasks = store.load_run(str(state.state_details.flow_run_id)).final_tasks()
        return state.result(), [t.state for t in sorted(tasks, key=lambda t: t.task_name)]

    tag = uuid.uuid4().hex  # this test's own keys in the session's Prefect result storage
    assert run(2, 1, tag) == ([20, 11], ["COMPLETED", "COMPLETED"])
    assert run(2, 1, tag) == ([20, 11], ["CACHED", "CACHED"])
    assert run(3, 5, tag) == ([30, 15], ["COMPLETED", "COMPLETED"])
    assert run(3, 5, tag) == ([30, 15], ["CACHED", "CACHED"])

    class Opaque:  # no stable hash: its state (a lock) cannot be keyed
        def __init__(self) -> None:
            self.lock = threading.Lock()

        def __call__(self, x: int, tag: str) -> int:
            return x

    opaque = repro_task(Opaque(), name="opaque", cache_policy=CONTENT)

    @flow
    def alone() -> int:
        return opaque(10, tag)

    for _ in range(2):
        state = alone(return_state=True)
        assert [t.state for t in store.load_run(str(state.state_details.flow_run_id)).final_tasks()] == ["COMPLETED"]


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
