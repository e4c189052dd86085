"""Dockerfile and Apptainer exports: base image, pins, code at commit, command; parsed and linted."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
from typing import Any

import pytest
from rf_factory import tool
from rf_factory import dist, make_environment, make_run

from reproflow.export import export_run
from reproflow.records import DirectUrl, GitState, GPUInfo, Hardware
from reproflow.store import Store


def _parse_docker(text: str) -> list[dict[str, Any]]:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(fileobj=__import__("io").BytesIO(text.encode()))
    return list(parser.structure)


def _hadolint(path: pathlib.Path) -> list[dict[str, Any]]:
    proc = subprocess.run([tool("hadolint"), "--no-color", "-f", "json", str(path)], capture_output=True, text=True)
    return json.loads(proc.stdout or "[]")  # type: ignore[no-any-return]


def _instr(structure: list[dict[str, Any]], name: str) -> list[str]:
    return [i["value"] for i in structure if i["instruction"] == name]


def test_dockerfile_matches_the_record_and_lints_clean(recorded: dict[str, Any], tmp_path: pathlib.Path) -> None:
    """FROM python:<recorded X.Y.Z>-slim-bookworm, uv installs the exact pins, code is ADDed at the
    commit, CMD calls the flow with its parameters; dockerfile-parse reads it and hadolint finds
    nothing at all (no error, no warning)."""
    import platform

    path = tmp_path / "Dockerfile"
    text = export_run(recorded["store"], recorded["run_id"], "dockerfile", out=path)
    assert isinstance(text, str) and path.read_text() == text
    structure = _parse_docker(text)
    assert _instr(structure, "FROM") == [f"python:{platform.python_version()}-slim-bookworm"]
    run = " ".join(_instr(structure, "RUN"))
    assert "uv pip install --no-cache --no-deps" in run
    for pin in ("six==", "idna==", "packaging=="):
        assert pin in run
    assert _instr(structure, "ADD") == ["--keep-git-dir=false https://github.com/example/project.git#" + "a" * 40 + " /app"]
    cmd = json.loads(_instr(structure, "CMD")[0])
    assert cmd[:2] == ["python", "-c"] and cmd[3:5] == ["flows/demo.py", "demo_flow"]
    assert json.loads(cmd[5]) == {"n": 3, "label": "x"}
    assert _hadolint(path) == []


def test_launcher_calls_the_flow_with_recorded_parameters(recorded: dict[str, Any], tmp_path: pathlib.Path) -> None:
    """The image's command really runs: it loads the flow file and calls the function with the
    recorded parameters (checked here with a stand-in flow file and the same argv)."""
    import sys

    text = export_run(recorded["store"], recorded["run_id"], "dockerfile")
    assert isinstance(text, str)
    cmd = json.loads(_instr(_parse_docker(text), "CMD")[0])
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "demo.py").write_text("def demo_flow(n, label):\n    print(f'ran n={n} label={label}')\n")
    out = subprocess.run([sys.executable, *cmd[1:]], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ran n=3 label=x"


@pytest.mark.parametrize(("entrypoint", "module", "main_module"), [
    ("pipeline/main.py:demo_flow", "pipeline.main:demo_flow", "pipeline.main"),  # python -m pipeline.main
    ("src/pipeline/main.py:demo_flow", "pipeline.main:demo_flow", None),         # a src-layout package's flow
])
def test_launcher_imports_a_package_flow_by_its_module(store: Store, tmp_path: pathlib.Path, entrypoint: str,
                                                        module: str, main_module: str | None) -> None:
    """A flow in a package (relative imports) is imported by its module name, not loaded from its
    file (where ``from .helpers import ...`` fails): the image's command runs it, checked with the
    same argv and the Dockerfile's PYTHONPATH."""
    import sys

    run_id = make_run(store, entrypoint=entrypoint, module=module, main_module=main_module)
    text = export_run(store, run_id, "dockerfile")
    assert isinstance(text, str)
    cmd = json.loads(_instr(_parse_docker(text), "CMD")[0])
    assert cmd[3:5] == ["pipeline.main", "demo_flow"]
    top_in_app = "/app/src" if entrypoint.startswith("src/") else "/app"
    path = re.search(r'PYTHONPATH="([^"]*)"', text)
    assert path is not None and top_in_app in path.group(1).split(":"), text
    assert f"{top_in_app}/pipeline" not in path.group(1).split(":"), text  # a package's folder is not a top
    pkg = tmp_path / entrypoint.rsplit("/", 1)[0]
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("def show(n, label):\n    return f'ran n={n} label={label}'\n")
    (pkg / "main.py").write_text("from .helpers import show\ndef demo_flow(n, label):\n    print(show(n, label))\n")
    top = tmp_path / "src" if entrypoint.startswith("src/") else tmp_path
    out = subprocess.run([sys.executable, *cmd[1:]], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(top)})
    assert out.stdout.strip() == "ran n=3 label=x"


def test_dockerfile_gpu_base_local_and_vcs_packages(store: Store, tmp_path: pathlib.Path) -> None:
    """A recorded GPU gives an nvidia/cuda runtime base matching the driver's CUDA and a uv-installed
    interpreter; a VCS pin brings git (its one warning suppressed inline); an editable package
    inside the repository installs from /app; one outside is named as not installed."""
    packages = [
        dist("six", "1.17.0"),
        dist("vcspkg", "2.0", direct_url=DirectUrl(url="https://github.com/example/vcspkg.git", vcs="git", commit_id="f" * 40)),
        dist("project", "0.1", direct_url=DirectUrl(url="file:///src/project", editable=True)),
        dist("elsewhere", "1.0", direct_url=DirectUrl(url="file:///home/me/elsewhere", editable=True)),
    ]  # fmt: skip
    hw = Hardware(gpus=[GPUInfo(index=0, name="NVIDIA H100", memory_total_bytes=80 << 30)], gpu_driver="550.54",
                  cuda_driver_version="12.4")  # fmt: skip
    git = GitState(available=True, root="/src/project", commit="c" * 40, dirty=True, diff_blob="d" * 64)
    run_id = make_run(store, packages=packages, hardware=hw, git=git)
    path = tmp_path / "Dockerfile"
    text = export_run(store, run_id, "dockerfile", out=path)
    assert isinstance(text, str)
    structure = _parse_docker(text)
    assert _instr(structure, "FROM") == ["nvidia/cuda:12.4.1-runtime-ubuntu22.04"]
    runs = _instr(structure, "RUN")
    assert any("uv python install" in r for r in runs)
    assert any("apt-get install -y --no-install-recommends git" in r for r in runs)
    assert any("'vcspkg @ git+https://github.com/example/vcspkg.git@" in r for r in runs)
    assert "uv pip install --no-cache --no-deps -e /app" in runs
    assert _instr(structure, "COPY")[-1] == ". /app"  # no remote: the build context is the code
    assert "not installed: elsewhere==1.0" in text
    assert "uncommitted changes" in text
    assert _hadolint(path) == []


def _apptainer_sections(text: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """A small parser of the .def format: header keywords, then %section bodies."""
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"^%(\w+)\s*$", line)
        if m:
            current = m.group(1)
            sections[current] = []
        elif current is None:
            key, _, value = line.partition(":")
            header[key.strip()] = value.strip()
        else:
            sections[current].append(line.strip())
    return header, sections


def test_apptainer_definition_sections(recorded: dict[str, Any]) -> None:
    """Bootstrap: docker from the matching python image; %post installs uv, the pins and the code
    at its commit; %runscript runs the flow; %environment puts the venv on PATH."""
    import platform
    import shlex

    text = export_run(recorded["store"], recorded["run_id"], "apptainer")
    assert isinstance(text, str)
    header, sections = _apptainer_sections(text)
    assert header == {"Bootstrap": "docker", "From": f"python:{platform.python_version()}-slim-bookworm"}
    assert set(sections) == {"labels", "environment", "post", "runscript"}
    post = "\n".join(sections["post"])
    assert "python -m pip install --no-cache-dir uv==" in post
    assert "six==" in post and "--no-deps" in post
    assert f"git -C /app checkout --detach {'a' * 40}" in post
    assert "export PATH=\"/opt/venv/bin:$PATH\"" in sections["environment"]
    argv = shlex.split(sections["runscript"][1])
    assert argv[:3] == ["exec", "python", "-c"] and argv[4:6] == ["flows/demo.py", "demo_flow"]
    assert json.loads(argv[6]) == {"n": 3, "label": "x"}


def test_base_image_follows_recorded_os(store: Store) -> None:
    """Debian 11 → bullseye; an Ubuntu with glibc 2.35 → bookworm (first Debian with glibc >= it)."""
    env = make_environment()
    plat = env.platform.model_copy(update={"distro_id": "debian", "distro_version": "11", "libc": "glibc 2.31"})
    rid = make_run(store, environment=env.model_copy(update={"platform": plat}))
    assert "-slim-bullseye" in str(export_run(store, rid, "dockerfile"))
    plat = env.platform.model_copy(update={"distro_id": "ubuntu", "distro_version": "22.04", "libc": "glibc 2.35"})
    rid = make_run(store, environment=env.model_copy(update={"platform": plat}))
    assert "-slim-bookworm" in str(export_run(store, rid, "dockerfile"))


@pytest.mark.parametrize("fmt", ["dockerfile", "apptainer"])
def test_no_entrypoint_is_said_not_guessed(store: Store, fmt: str) -> None:
    """Without a recorded entry point there is no invented command, and the file says so."""
    rid = make_run(store, entrypoint=None)
    text = str(export_run(store, rid, fmt))
    assert "no flow entry point was recorded" in text
    assert "CMD" not in text and "demo_flow" not in text


def test_apptainer_gpu_base_and_local_code(store: Store) -> None:
    """A recorded GPU gives the nvidia/cuda runtime base, uv installed by its script and the
    recorded interpreter installed by uv; without a remote the code comes in through %files and an
    editable package inside it is installed from /app."""
    packages = [dist("six", "1.17.0"), dist("project", "0.1", direct_url=DirectUrl(url="file:///src/project", editable=True))]
    hw = Hardware(gpus=[GPUInfo(index=0, name="NVIDIA A100")], gpu_driver="535.1", cuda_driver_version="12.2")
    git = GitState(available=True, root="/src/project", commit="c" * 40)
    env = make_environment(packages)
    text = str(export_run(store, make_run(store, environment=env, hardware=hw, git=git), "apptainer"))
    header, sections = _apptainer_sections(text)
    assert header == {"Bootstrap": "docker", "From": "nvidia/cuda:12.2.2-runtime-ubuntu22.04"}
    assert sections["files"] == [". /app"]
    post = "\n".join(sections["post"])
    py = env.python.version
    assert "install.sh | env UV_INSTALL_DIR=/usr/local/bin sh" in post
    assert f"uv python install {py}" in post and f"uv venv --python {py} /opt/venv" in post
    assert "--no-cache --no-deps -e /app" in post and "git clone" not in post


@pytest.mark.parametrize("fmt", ["dockerfile", "apptainer"])
def test_path_parameters_follow_the_code_into_the_image(store: Store, fmt: str) -> None:
    """A path parameter inside the recorded source root points into /app in the image's command;
    one outside it is kept and named as something to mount; relative paths stay relative to /app."""
    import shlex

    params = {"src": pathlib.Path("/src/project/data/in.csv"), "big": pathlib.Path("/data/big.parquet"),
              "out": pathlib.Path("out"), "n": 3}  # fmt: skip
    text = str(export_run(store, make_run(store, params=params), fmt))
    if fmt == "dockerfile":
        cmd = json.loads(_instr(_parse_docker(text), "CMD")[0])
    else:
        cmd = shlex.split(_apptainer_sections(text)[1]["runscript"][1])[1:]
    assert json.loads(cmd[5]) == {"src": "/app/data/in.csv", "big": "/data/big.parquet", "out": "out", "n": 3}
    assert "parameter 'big' is the path /data/big.parquet, outside the recorded code: mount it there" in text
    assert "parameter 'src'" not in text


@pytest.mark.parametrize("fmt", ["dockerfile", "apptainer"])
def test_an_object_parameter_is_left_out_of_the_image_command_and_said(store: Store, fmt: str) -> None:
    """An argparse.Namespace flow parameter is recorded by its state, which the flow's parameter
    validation would not build back from a dict of its attributes: the command leaves it out
    (the flow's default applies) and a note names it, never a dict passed in its place."""
    import argparse
    import shlex

    params = {"args": argparse.Namespace(lr=0.5, data="data/x.txt"), "n": 3}
    text = str(export_run(store, make_run(store, params=params), fmt))
    if fmt == "dockerfile":
        cmd = json.loads(_instr(_parse_docker(text), "CMD")[0])
    else:
        cmd = shlex.split(_apptainer_sections(text)[1]["runscript"][1])[1:]
    assert json.loads(cmd[5]) == {"n": 3}
    assert "parameter 'args' cannot be passed as JSON data" in text


def _simulate_image_command(text: str, source: dict[str, str], app: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """Run a Dockerfile's CMD as the image would: the code laid out under a folder standing for
    /app, the Dockerfile's ENV (PYTHONPATH, ...) and WORKDIR applied with /app moved there."""
    import os
    import sys

    from dockerfile_parse import DockerfileParser

    for rel, body in source.items():
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        (app / rel).write_text(body)
    parser = DockerfileParser(fileobj=__import__("io").BytesIO(text.encode()))
    structure = list(parser.structure)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for key, value in parser.envs.items():
        if key not in ("PATH", "VIRTUAL_ENV", "UV_LINK_MODE"):
            env[key] = value.replace("/app", str(app))
    workdir = _instr(structure, "WORKDIR")[-1].replace("/app", str(app))
    cmd = json.loads(_instr(structure, "CMD")[0])
    assert cmd[0] == "python"
    return subprocess.run([sys.executable, *cmd[1:]], cwd=workdir, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("fmt", ["dockerfile", "apptainer"])
def test_image_command_imports_sibling_modules_and_src_packages(store: Store, tmp_path: pathlib.Path, fmt: str) -> None:
    """A flow file that imports a module next to it (`python flows/pipeline.py` puts flows/ on
    sys.path) and a package under src/ (on the recorded sys.path, as with PYTHONPATH=src) runs
    from the image: the recipe sets PYTHONPATH to those folders under /app, and leaves out the
    project's own virtual environment. The Dockerfile's command is really run with its ENV and
    WORKDIR, the code laid out as /app would be (it failed with ModuleNotFoundError)."""
    sys_path = ["/src/project/flows", "/usr/lib/python311.zip", "/src/project/src",
                "/src/project/.venv/lib/python3.11/site-packages"]  # fmt: skip
    env = make_environment(sys_path=sys_path).model_copy(deep=True)
    env.python.prefix = "/src/project/.venv"
    run_id = make_run(store, environment=env, entrypoint="flows/pipeline.py:pipeline", params={"n": 2})
    text = str(export_run(store, run_id, fmt))
    if fmt == "apptainer":
        assert "    export PYTHONPATH=/app/flows:/app/src:/app" in text
        return
    assert 'PYTHONPATH="/app/flows:/app/src:/app"' in text
    source = {
        "flows/pipeline.py": "import helpers\nimport mylib\n\n"
                             "def pipeline(n):\n    print(helpers.double(n), mylib.NAME)\n",
        "flows/helpers.py": "def double(n):\n    return 2 * n\n",
        "src/mylib/__init__.py": "NAME = 'mylib'\n",
    }  # fmt: skip
    proc = _simulate_image_command(text, source, tmp_path / "app")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "4 mylib"
