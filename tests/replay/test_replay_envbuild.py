"""Rebuilding a recorded environment with real uv: pins from the index, a local package from its
stored snapshot, a marker written only after success, and reuse of the cached environment."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
from replay_records import environment, local_dist

from reproflow.records import Distribution
from reproflow.replay._envbuild import MARKER, build_environment, cached_env, env_key, plan_environment
from reproflow.replay._python import choose_interpreter
from reproflow.replay._uv import find_uv, index_config
from reproflow.store import Store

pytestmark = pytest.mark.slow

PYPROJECT = b"""[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "mylocal"
version = "0.3.0"

[tool.hatch.build.targets.wheel]
packages = ["src/mylocal"]
"""


def test_build_then_reuse(store: Store, tmp_path: Path) -> None:
    """The venv gets the exact pin and the local package (from the store, not from any path on
    disk); the marker appears; a second build with the same hash reuses it at once."""
    tomli_w_version = importlib.metadata.version("tomli_w")
    local = local_dist(store, "mylocal", "0.3.0", {
        "pyproject.toml": PYPROJECT,
        "src/mylocal/__init__.py": b"ANSWER = 42\n",
    })
    env = environment(Distribution(name="tomli_w", version=tomli_w_version), local)
    choice = choose_interpreter(platform.python_version(), candidates=[sys.executable])
    cache = tmp_path / "envs"
    kwargs = dict(choice=choice, store=store, uv_bin=find_uv(),
                  index=index_config(), cache_root=cache, work_dir=tmp_path / "work")
    assert [p.kind for p in plan_environment(env).pins] == ["local", "index"]
    steps: list[str] = []
    built = build_environment(env, progress=lambda d, c, t: steps.append(d), **kwargs)  # type: ignore[arg-type]
    assert not built.reused and built.n_pins == 2
    assert (built.path / MARKER).exists()
    assert json.loads((built.path / MARKER).read_text())["python_version"] == platform.python_version()
    assert steps[0] == "create venv" and steps[-1] == "environment ready"
    out = subprocess.run(
        [built.python, "-c", "import mylocal, tomli_w, importlib.metadata as m; print(mylocal.ANSWER, m.version('tomli_w'))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert out == ["42", tomli_w_version]

    again = build_environment(env, **kwargs)  # type: ignore[arg-type]
    assert again.reused and again.python == built.python
    assert cached_env(cache, env_key(plan_environment(env), choice.interpreter.version)) is not None


def test_built_environment_has_bytecode(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rebuilt environment is compiled at build time, its pins and the local package alike:
    where PYTHONDONTWRITEBYTECODE is set no replay ever writes bytecode, and every replay's
    `import prefect` compiled Prefect & co. from source again."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    local = local_dist(store, "mylocal", "0.3.0", {"pyproject.toml": PYPROJECT, "src/mylocal/__init__.py": b"X = 1\n"})
    env = environment(Distribution(name="tomli_w", version=importlib.metadata.version("tomli_w")), local)
    choice = choose_interpreter(platform.python_version(), candidates=[sys.executable])
    built = build_environment(env, choice=choice, store=store, uv_bin=find_uv(),
                              index=index_config(), cache_root=tmp_path / "envs", work_dir=tmp_path / "work")
    site = subprocess.run([built.python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    for package in ("tomli_w", "mylocal"):
        compiled = list((Path(site) / package / "__pycache__").glob("__init__.*.pyc"))
        assert compiled, f"no bytecode for {package} in {site}"


def test_folder_without_marker_is_rebuilt(store: Store, tmp_path: Path) -> None:
    """A leftover folder from an interrupted build (no marker) is not trusted: it is rebuilt."""
    env = environment(Distribution(name="tomli_w", version=importlib.metadata.version("tomli_w")))
    choice = choose_interpreter(platform.python_version(), candidates=[sys.executable])
    cache = tmp_path / "envs"
    key = env_key(plan_environment(env), choice.interpreter.version)
    (cache / key / "venv" / "bin").mkdir(parents=True)
    (cache / key / "junk").write_text("from a crash")
    assert cached_env(cache, key) is None
    built = build_environment(env, choice=choice, store=store, uv_bin=find_uv(),
                              index=index_config(), cache_root=cache, work_dir=tmp_path / "w")
    assert not built.reused and not (cache / key / "junk").exists() and (cache / key / MARKER).exists()


def test_marker_is_the_same_for_every_build(store: Store, tmp_path: Path) -> None:
    """Two builds of the same recorded environment (two cache folders, built apart in time) write
    byte-identical markers: no build time or duration leaks into the cache folder; the marker
    lists the pins it was built from."""
    env = environment(Distribution(name="tomli_w", version=importlib.metadata.version("tomli_w")))
    choice = choose_interpreter(platform.python_version(), candidates=[sys.executable])
    markers = []
    for n in (1, 2):
        built = build_environment(env, choice=choice, store=store, uv_bin=find_uv(),
                                  index=index_config(), cache_root=tmp_path / f"envs{n}", work_dir=tmp_path / f"w{n}")
        markers.append((built.path / MARKER).read_bytes())
        time.sleep(0.01)
    assert markers[0] == markers[1]
    meta = json.loads(markers[0])
    assert meta["pins"] == [f"tomli_w=={importlib.metadata.version('tomli_w')}"]
    assert "built_at" not in meta and "seconds" not in meta
