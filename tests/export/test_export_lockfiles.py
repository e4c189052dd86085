"""requirements, pylock and conda exports: content, the ecosystem's parsers, and real installs.

Lookups go to a local index of wheels built by the test itself (rf_factory.build_index), never to
a machine's mirror: what a mirror happens to hold (a `packaging` older than the one installed
here) must not decide whether a test passes.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tomli as tomllib  # TOML 1.0 subset; stdlib tomllib only on 3.11+
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from rf_factory import build_index, dist, make_run, tool

from reproflow.export import export_run
from reproflow.records import DirectUrl
from reproflow.store import Store

SHA = "ab" * 32
ALPHA, BETA = "rf_alpha-1.0-py3-none-any.whl", "rf_beta-2.0-py3-none-any.whl"


@pytest.fixture
def indexed(tmp_path: pathlib.Path, store: Store) -> dict[str, Any]:
    """A local index of wheels built here (rf-alpha 1.0 and 1.1, rf-beta 2.0) and a run that
    recorded rf-alpha 1.0 and rf-beta 2.0."""
    url, hashes = build_index(tmp_path / "index", {"rf-alpha": ["1.0", "1.1"], "rf-beta": ["2.0"]})
    run_id = make_run(store, packages=[dist("rf-alpha", "1.0"), dist("rf-beta", "2.0")])
    return {"store": store, "run_id": run_id, "index": url, "hashes": hashes}


def _origins_run(store: Store) -> str:
    """A run whose environment holds every PEP 610 origin kind."""
    packages = [
        dist("rf-alpha", "1.0"),
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
    assert "rf-alpha==1.0" in lines
    assert f"archpkg @ https://example.org/archpkg-0.1.tar.gz --hash=sha256:{SHA}" in lines
    assert f"vcspkg @ git+https://github.com/example/vcspkg.git@{'f' * 40}" in lines
    assert "-e /src/project/libs/mylib" in lines
    assert "/opt/local/localpkg" in lines
    assert f"# mylib==0.3.0 from a local editable path (stored source sha256:{'cd' * 32})" in text
    assert "# localpkg==1.0 from a local local path (source NOT stored)" in text
    for ln in lines:  # every non-path line parses as a PEP 508 requirement
        if not ln.startswith(("-e", "/")):
            Requirement(ln.split(" --hash")[0])


def test_requirements_with_index_hashes(indexed: dict[str, Any]) -> None:
    """--hashes locks every release on the index: each pin gets exactly its wheel's sha256."""
    text = export_run(indexed["store"], indexed["run_id"], "requirements", index_url=indexed["index"], hashes=True)
    assert isinstance(text, str)
    body = [ln.strip() for ln in text.splitlines() if not ln.startswith("#")]
    assert body[:4] == ["rf-alpha==1.0 \\", f"--hash=sha256:{indexed['hashes'][ALPHA]}",
                        "rf-beta==2.0 \\", f"--hash=sha256:{indexed['hashes'][BETA]}"]  # fmt: skip


def test_pylock_validates_with_packaging(indexed: dict[str, Any], store: Store) -> None:
    """pylock.toml passes packaging's PEP 751 reader, lists the wheels with their hashes from the
    index, and maps VCS/directory origins onto their tables."""
    from packaging.pylock import Pylock

    text = export_run(indexed["store"], indexed["run_id"], "pylock", index_url=indexed["index"])
    assert isinstance(text, str)
    lock = Pylock.from_dict(tomllib.loads(text))
    lock.validate()
    names = {p.name: p for p in lock.packages}
    assert set(names) == {"rf-alpha", "rf-beta"}
    alpha = names["rf-alpha"]
    assert str(alpha.version) == "1.0" and alpha.wheels is not None
    assert [w.hashes["sha256"] for w in alpha.wheels] == [indexed["hashes"][ALPHA]]
    selected = {p.name for p, _ in lock.select()}  # installable on this very interpreter
    assert selected == {"rf-alpha", "rf-beta"}

    run_id = _origins_run(store)
    text = export_run(store, run_id, "pylock", index_url=indexed["index"])
    assert isinstance(text, str)
    data = tomllib.loads(text)
    lock = Pylock.from_dict(data)
    by = {p.name: p for p in lock.packages}
    assert by["vcspkg"].vcs is not None and by["vcspkg"].vcs.commit_id == "f" * 40
    assert by["mylib"].directory is not None and by["mylib"].directory.editable
    assert by["archpkg"].archive is not None and by["archpkg"].archive.hashes["sha256"] == SHA
    assert data["tool"]["reproflow"]["skipped"] == []


def test_pylock_that_cannot_lock_every_package_fails_unless_partial(indexed: dict[str, Any], store: Store) -> None:
    """A release no index holds fails the export, naming it; with allow_partial the lock is
    written with that package under [tool.reproflow] skipped and a note says so."""
    from reproflow.errors import ExportError

    run_id = make_run(store, packages=[dist("rf-alpha", "1.0"), dist("rf-missing", "9.9"), dist("rf-beta", "7.0")])
    with pytest.raises(ExportError, match=r"2 of 3 .*rf-beta==7\.0.*rf-missing==9\.9.*--allow-partial"):
        export_run(store, run_id, "pylock", index_url=indexed["index"])
    notes: list[str] = []
    text = export_run(store, run_id, "pylock", index_url=indexed["index"], allow_partial=True, notes=notes)
    assert isinstance(text, str)
    data = tomllib.loads(text)
    assert [p["name"] for p in data["packages"]] == ["rf-alpha"]
    assert [s["name"] for s in data["tool"]["reproflow"]["skipped"]] == ["rf-beta", "rf-missing"]
    assert len(notes) == 1 and "rf-missing==9.9" in notes[0] and "partial" in notes[0]


def test_index_listing_answers_yes_no_or_cannot_tell(indexed: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The one thing read from indexes by hand: whether a release is listed at all (True/False),
    across several indexes; an index that cannot be asked (uv offline) leaves it to uv (None)."""
    from reproflow.export._index import listed

    pins = [("rf-alpha", "1.0"), ("RF_Beta", "2.0"), ("rf-beta", "7.0"), ("rf-missing", "1")]
    assert [listed([indexed["index"]], [pin])[pin[0].lower().replace("_", "-")] for pin in pins] == [True, True, False, False]
    monkeypatch.setenv("UV_OFFLINE", "1")
    assert listed(["https://pypi.org/simple", indexed["index"]], [("rf-alpha", "1.0"), ("rf-gone", "1")]) == {
        "rf-alpha": True, "rf-gone": None}


def test_export_with_extra_index_only_counts_the_default_index(
    indexed: dict[str, Any], store: Store, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine configured with `extra-index-url` only (as pip.conf often is) records PyPI as its
    default index too; a package on neither (PyPI unreachable here: uv offline) makes
    `export --format pylock` exit non-zero with one line naming it, and `--allow-partial` writes
    the lock with a warning on stderr. Before, the lock silently skipped most packages."""
    from reproflow.capture.environment import index_configuration
    from reproflow.export._common import ExportContext

    home = tmp_path / "home"
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text(f"[global]\nextra-index-url = {indexed['index']}\n")
    indexes, _ = index_configuration({"HOME": str(home), "XDG_CONFIG_DIRS": str(tmp_path / "none")})
    assert indexes == ["https://pypi.org/simple", indexed["index"]]
    env = ExportContext.load(store, indexed["run_id"]).environment
    env = env.model_copy(update={"index_urls": indexes,
                                 "distributions": [*env.distributions, dist("rf-pypi-only", "1.0")]})  # fmt: skip
    run_id = make_run(store, environment=env)
    monkeypatch.setenv("UV_OFFLINE", "1")
    cli = tool("reproflow")
    out = tmp_path / "pylock.toml"
    proc = subprocess.run([cli, "export", run_id, "--format", "pylock", "--store", store.url, "-o", str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode != 0 and not out.exists()
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert "rf-pypi-only==1.0" in err and "https://pypi.org/simple" in err and "--allow-partial" in err
    proc = subprocess.run([cli, "export", run_id, "--format", "pylock", "--store", store.url, "-o", str(out),
                           "--allow-partial"], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "warning:" in proc.stderr and "rf-pypi-only==1.0" in proc.stderr
    data = tomllib.loads(out.read_text())
    assert {p["name"] for p in data["packages"]} == {"rf-alpha", "rf-beta"}


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
def test_export_installs_the_same_versions(fmt: str, indexed: dict[str, Any], tmp_path: pathlib.Path) -> None:
    """The export installs into a fresh venv with real uv (no deps resolved, offline) and gives
    exactly the recorded versions (rf-alpha 1.0, though the index also serves 1.1)."""
    index = indexed["index"]
    name = "requirements.txt" if fmt == "requirements" else "pylock.toml"
    target = tmp_path / name
    export_run(indexed["store"], indexed["run_id"], fmt, out=target, index_url=index, hashes=True)
    python = _fresh_venv(tmp_path)
    cmd = [sys.executable, "-m", "uv", "pip", "install", "--python", str(python), "--no-deps", "--offline",
           "--index-url", index, "-r", str(target)]  # fmt: skip
    if fmt == "requirements":
        cmd.append("--require-hashes")
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert _installed(python) == {"rf-alpha": "1.0", "rf-beta": "2.0"}


def test_cresp_packages_with_index_hashes(indexed: dict[str, Any]) -> None:
    """cresp --hashes: every index package gets the sha256 of the one file this interpreter would
    install from the index (here each release's only wheel, py3-none-any)."""
    import tomli

    text = export_run(indexed["store"], indexed["run_id"], "cresp", index_url=indexed["index"], hashes=True)
    assert isinstance(text, str)
    pkgs = {p["name"]: p for p in tomli.loads(text)["software"]["packages"]}
    assert pkgs["rf-alpha"]["version"] == "1.0" and pkgs["rf-alpha"]["hash"] == indexed["hashes"][ALPHA]
    assert pkgs["rf-beta"]["hash"] == indexed["hashes"][BETA]
    plain = tomli.loads(str(export_run(indexed["store"], indexed["run_id"], "cresp")))
    assert "hash" not in {p["name"]: p for p in plain["software"]["packages"]}["rf-alpha"]
