"""requirements, pylock and conda exports: content, the ecosystem's parsers, and real installs."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tomli as tomllib  # TOML 1.0 subset; stdlib tomllib only on 3.11+
from typing import Any

import pytest
import yaml
from rf_factory import local_index_url
from packaging.requirements import Requirement
from rf_factory import dist, make_run

from reproflow.export import export_run
from reproflow.records import DirectUrl
from reproflow.store import Store

SHA = "ab" * 32


def _origins_run(store: Store) -> str:
    """A run whose environment holds every PEP 610 origin kind."""
    packages = [
        dist("six", "1.17.0"),
        dist("mylib", "0.3.0", direct_url=DirectUrl(url="file:///src/project/libs/mylib", editable=True),
             source_blob="cd" * 32),
        dist("localpkg", "1.0", direct_url=DirectUrl(url="file:///opt/local/localpkg")),
        dist("vcspkg", "2.0", direct_url=DirectUrl(url="https://github.com/example/vcspkg.git", vcs="git",
                                                  commit_id="f" * 40, requested_revision="main")),
        dist("archpkg", "0.1", direct_url=DirectUrl(url="https://example.org/archpkg-0.1.tar.gz",
                                                   archive_hash=f"sha256={SHA}")),
    ]  # fmt: skip
    return make_run(store, packages=packages)


def test_requirements_pins_every_origin_kind(store: Store) -> None:
    """Index pins are name==version, archives keep their hash, VCS is name @ git+url@commit,
    editable/local are paths with a note on whether their source was stored."""
    run_id = _origins_run(store)
    text = export_run(store, run_id, "requirements")
    assert isinstance(text, str)
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert "six==1.17.0" in lines
    assert f"archpkg @ https://example.org/archpkg-0.1.tar.gz --hash=sha256:{SHA}" in lines
    assert f"vcspkg @ git+https://github.com/example/vcspkg.git@{'f' * 40}" in lines
    assert "-e /src/project/libs/mylib" in lines
    assert "/opt/local/localpkg" in lines
    assert f"# mylib==0.3.0 from a local editable path (stored source sha256:{'cd' * 32})" in text
    assert "# localpkg==1.0 from a local local path (source NOT stored)" in text
    for ln in lines:  # every non-path line parses as a PEP 508 requirement
        if not ln.startswith(("-e", "/")):
            Requirement(ln.split(" --hash")[0])


def test_requirements_with_index_hashes(recorded: dict[str, Any]) -> None:
    """--hashes looks every release up on the index: each pin gets the wheel's sha256."""
    text = export_run(recorded["store"], recorded["run_id"], "requirements", index_url=local_index_url(), hashes=True)
    assert isinstance(text, str)
    block = text.split("six==1.17.0", 1)[1].split("\n")[1]
    assert block.strip().startswith("--hash=sha256:") and len(block.strip()) == len("--hash=sha256:") + 64


def test_pylock_validates_with_packaging(recorded: dict[str, Any], store: Store) -> None:
    """pylock.toml passes packaging's PEP 751 reader, lists wheels with hashes from the index,
    and maps VCS/directory origins onto their tables."""
    from packaging.pylock import Pylock

    text = export_run(recorded["store"], recorded["run_id"], "pylock", index_url=local_index_url())
    assert isinstance(text, str)
    lock = Pylock.from_dict(tomllib.loads(text))
    lock.validate()
    names = {p.name: p for p in lock.packages}
    assert set(names) == {"six", "idna", "packaging"}
    six = names["six"]
    assert str(six.version) == "1.17.0" and six.wheels and six.wheels[0].hashes["sha256"]
    selected = {p.name for p, _ in lock.select()}  # installable on this very interpreter
    assert selected == {"six", "idna", "packaging"}

    run_id = _origins_run(store)
    text = export_run(store, run_id, "pylock", index_url=local_index_url())
    assert isinstance(text, str)
    data = tomllib.loads(text)
    lock = Pylock.from_dict(data)
    by = {p.name: p for p in lock.packages}
    assert by["vcspkg"].vcs is not None and by["vcspkg"].vcs.commit_id == "f" * 40
    assert by["mylib"].directory is not None and by["mylib"].directory.editable
    assert by["archpkg"].archive is not None and by["archpkg"].archive.hashes["sha256"] == SHA
    assert data["tool"]["reproflow"]["skipped"] == []


def test_pylock_records_what_cannot_be_locked(store: Store) -> None:
    """A release the index does not have is listed under [tool.reproflow] skipped, not invented."""
    run_id = make_run(store, packages=[dist("six", "1.17.0"), dist("six-does-not-exist", "9.9")])
    text = export_run(store, run_id, "pylock", index_url=local_index_url())
    assert isinstance(text, str)
    data = tomllib.loads(text)
    assert [p["name"] for p in data["packages"]] == ["six"]
    assert data["tool"]["reproflow"]["skipped"][0]["name"] == "six-does-not-exist"


def test_conda_environment_parses_back(recorded: dict[str, Any]) -> None:
    """environment.yml has python=X.Y, pip, and every pin in its pip: section."""
    text = export_run(recorded["store"], recorded["run_id"], "conda")
    assert isinstance(text, str)
    doc = yaml.safe_load(text)
    deps = doc["dependencies"]
    py = ".".join(map(str, sys.version_info[:2]))
    assert deps[0] == f"python={py}"
    assert "pip" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert sorted(pip_section) == sorted(
        [f"six=={_v('six')}", f"idna=={_v('idna')}", f"packaging=={_v('packaging')}"]
    )
    assert doc["channels"] == ["conda-forge"]


def _v(name: str) -> str:
    import importlib.metadata as md

    return md.version(name)


def _fresh_venv(tmp_path: pathlib.Path) -> pathlib.Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "uv", "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    return venv / "bin" / "python"


def _installed(python: pathlib.Path) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "uv", "pip", "freeze", "--python", str(python)],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return dict(line.split("==", 1) for line in out.split() if "==" in line)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["requirements", "pylock"])
def test_export_installs_the_same_versions(fmt: str, recorded: dict[str, Any], tmp_path: pathlib.Path) -> None:
    """The export installs into a fresh venv with real uv (no deps resolved, offline) and gives
    exactly the recorded versions."""
    index = local_index_url()
    name = "requirements.txt" if fmt == "requirements" else "pylock.toml"
    target = tmp_path / name
    export_run(recorded["store"], recorded["run_id"], fmt, out=target, index_url=index, hashes=True)
    python = _fresh_venv(tmp_path)
    cmd = [sys.executable, "-m", "uv", "pip", "install", "--python", str(python), "--no-deps", "--offline",
           "--index-url", index, "-r", str(target)]  # fmt: skip
    if fmt == "requirements":
        cmd.append("--require-hashes")
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert _installed(python) == {"six": _v("six"), "idna": _v("idna"), "packaging": _v("packaging")}


def test_cresp_packages_with_index_hashes(recorded: dict[str, Any]) -> None:
    """cresp --hashes: every index package gets the sha256 of the one file this interpreter would
    install from the index (six is a pure wheel: its py3-none-any wheel)."""
    import tomli

    text = export_run(recorded["store"], recorded["run_id"], "cresp", index_url=local_index_url(), hashes=True)
    assert isinstance(text, str)
    pkgs = {p["name"]: p for p in tomli.loads(text)["software"]["packages"]}
    six = pkgs["six"]
    assert six["version"] == "1.17.0" and len(six["hash"]) == 64
    from reproflow.export._index import release_files

    found = release_files([local_index_url()], "six", "1.17.0")
    assert found is not None
    [wheel] = [f for f in found[1] if f.filename.endswith("py2.py3-none-any.whl")]
    assert six["hash"] == wheel.hashes["sha256"]
    plain = tomli.loads(str(export_run(recorded["store"], recorded["run_id"], "cresp")))
    assert "hash" not in {p["name"]: p for p in plain["software"]["packages"]}["six"]
