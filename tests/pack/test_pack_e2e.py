"""End to end: a numpy pipeline recorded in a small real environment (reproflow + numpy and
their dependencies, built with uv), packed with `reproflow pack`, then the recording repository,
its environment and its store are deleted ("another machine") and the pack is replayed with an
empty uv cache, an empty env cache, and every index pointed at an unreachable address
(``UV_OFFLINE=1``): the environment is rebuilt from the pack's wheels alone.

The environment also holds a small package that exists only as an sdist (on a find-links folder
of the test's, gone at replay) and builds with setuptools: the pack must bring the sdist and its
build backend, or the offline rebuild fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "http://127.0.0.1:9/"

FLOW = textwrap.dedent(
    '''
    """A small numpy pipeline: standardize numbers, then summarize them."""
    from pathlib import Path

    import numpy as np
    from prefect import flow

    from reproflow import repro_task


    @repro_task(inputs=["src"], outputs=["dst"])
    def standardize(src: Path, dst: Path) -> int:
        x = np.loadtxt(src)
        z = (x - x.mean()) / x.std()
        dst.parent.mkdir(parents=True, exist_ok=True)
        np.save(dst, z)
        return int(z.size)


    @repro_task(inputs=["src"])
    def summarize(src: Path, n: int) -> dict:
        import rf_sdistonly  # installed from an sdist: the replay's environment built it offline

        z = np.load(src)
        return {"n": n, "min": round(float(z.min()), 6), "max": round(float(z.max()), 6), "tag": rf_sdistonly.TAG}


    @flow
    def numbers(src: Path = Path("data/values.csv"), dst: Path = Path("out/z.npy")) -> dict:
        return summarize(dst, standardize(src, dst))


    if __name__ == "__main__":
        print(numbers())
    '''
)


#: a package published only as an sdist, built with setuptools (not the hatchling reproflow's own
#: editable install already brings into the pack)
SDIST_NAME, SDIST_VERSION = "rf_sdistonly", "1.0"


def _sdist(folder: Path) -> Path:
    """``rf_sdistonly-1.0.tar.gz``: a one-module setuptools project, and nothing else in ``folder``."""
    import io

    files = {
        "pyproject.toml": textwrap.dedent(f"""\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{SDIST_NAME}"
            version = "{SDIST_VERSION}"
            """),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {SDIST_NAME}\nVersion: {SDIST_VERSION}\n",
        f"{SDIST_NAME}.py": 'TAG = "built from an sdist"\n',
    }
    folder.mkdir(parents=True)
    path = folder / f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{SDIST_NAME}-{SDIST_VERSION}/{name}")
            info.size, info.mtime, info.mode = len(data), 1700000000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


def _project_extras() -> set[str]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(doc.get("project", {}).get("optional-dependencies", {}))


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed `reproflow` entry point."""
    exe = Path(sys.executable).with_name("reproflow")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=1500)


@pytest.fixture(scope="module")
def packed(prefect_api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Record the numpy pipeline in its own small environment, pack it (with and without wheels),
    then delete the repository, the environment and the store."""
    from reproflow.replay._uv import find_uv, index_config

    tmp = tmp_path_factory.mktemp("pack-e2e")
    uv = find_uv()
    venv = tmp / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, capture_output=True)
    py = str(venv / "bin" / "python")
    extras = _project_extras()
    project = f"{ROOT}[prefect]" if "prefect" in extras else str(ROOT)  # Prefect may be an extra
    sdists = _sdist(tmp / "sdists").parent
    proc = subprocess.run([uv, "pip", "install", "-q", "--python", py, *index_config().args, "--find-links", str(sdists),
                           "-e", project, "numpy", f"{SDIST_NAME}=={SDIST_VERSION}"], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    repo = tmp / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "values.csv").write_text("\n".join(str((i * 7919) % 1000 / 10) for i in range(500)) + "\n")
    (repo / "flow.py").write_text(FLOW)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "numbers")
    store = tmp / "store"
    env = {**os.environ, **prefect_api_env, "REPROFLOW_STORE": str(store)}
    proc = subprocess.run([py, "flow.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    from reproflow.store import Store

    (run_id,) = Store(store).run_ids()
    out = tmp / "out"
    packs = {}
    # the sdist's folder is one more find-links location of this machine's index configuration
    pack_env = {**os.environ, "PIP_FIND_LINKS": " ".join([*index_config().find_links, str(sdists)])}
    for name, extra in (("full", []), ("again", []), ("small", ["--no-wheels"])):
        proc = _cli("pack", run_id[:8], "-o", str(out / f"{name}.tar"), "--store", str(store), "--json", *extra,
                    env=pack_env)
        assert proc.returncode == 0, proc.stderr[-4000:]
        packs[name] = json.loads(proc.stdout)
    # another machine: nothing of the recording is left but the pack files
    shutil.rmtree(repo)
    shutil.rmtree(venv)
    shutil.rmtree(store)
    shutil.rmtree(sdists)
    yield {"run_id": run_id, "out": out, "reports": packs, "tmp": tmp}


def _offline(monkeypatch: pytest.MonkeyPatch, tmp: Path, name: str) -> Path:
    """An empty uv cache and env cache, every index unreachable, a fresh working folder."""
    where = tmp / name
    for sub in ("uv-cache", "reproflow-cache", "cwd"):
        (where / sub).mkdir(parents=True)
    for var in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL"):
        monkeypatch.setenv(var, UNREACHABLE)
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("UV_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("UV_CACHE_DIR", str(where / "uv-cache"))
    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(where / "reproflow-cache"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(where / "cwd")
    return where


def _replay(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any, str]:
    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    capsys.readouterr()
    code = run_cli(app, ["replay", *args, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_pack_holds_the_run_its_crate_and_a_wheel_per_pin(packed: dict[str, Any]) -> None:
    """The pack lists every member with its hash; it holds the run's records, its source snapshot,
    RO-Crate metadata and numpy's wheel; the --no-wheels pack holds no distribution file; the same
    run packs to the same bytes twice (a pack is citable by its SHA-256)."""
    reports = packed["reports"]
    assert reports["full"]["sha256"] == reports["again"]["sha256"]
    assert reports["full"]["by_kind"]["dists"] > 0 and "dists" not in reports["small"]["by_kind"]
    assert reports["small"]["size"] < reports["full"]["size"] / 10
    with tarfile.open(packed["out"] / "full.tar") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("reproflow-pack.json"))  # type: ignore[arg-type]
    assert names[0] == "reproflow-pack.json" and set(names[1:]) == set(manifest["members"])
    assert f"store/runs/{packed['run_id']}/run.json" in names and "ro-crate-metadata.json" in names
    assert any(n.startswith("dists/numpy-") and n.endswith(".whl") for n in names)
    assert any(d["name"] == "prefect" for d in manifest["dists"])
    assert any(d["build_only"] for d in manifest["dists"]), "the editable reproflow's build backend is packed"
    sdist = [d for d in manifest["dists"] if d["name"] == "rf-sdistonly"]
    assert [(d["file"], d["build_only"]) for d in sdist] == [(f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz", False)]
    backend = {d["name"] for d in manifest["dists"] if d["build_only"]}
    assert {"setuptools", "wheel"} <= backend, "the sdist's build backend is packed"
    top = reports["full"]["largest"][0]
    assert top["size"] == max(m["size"] for m in manifest["members"].values())


def test_pack_replays_offline_to_reproduced(packed: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`reproflow replay FILE` with no index reachable, an empty uv cache and an empty env cache
    rebuilds the environment from the pack's wheels and reproduces every task."""
    _offline(monkeypatch, packed["tmp"], "offline")
    code, result, err = _replay([str(packed["out"] / "full.tar")], capsys)
    assert code == 0, err[-4000:]
    assert result["verdict"] == "reproduced", result
    assert {t["task_name"]: t["verdict"] for t in result["tasks"]} == {"standardize": "reproduced",
                                                                       "summarize": "reproduced"}
    # summarize imported the sdist-only package, built offline from the pack's sdist and setuptools
    assert result["environment"]["reused"] is False and "--no-index" in result["plan"]["index"]


def test_unpack_into_a_store_then_replay_by_id(packed: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`reproflow unpack FILE --store URL` imports the run; `reproflow replay RUN_ID --store URL`
    then replays it like any recorded run (a second unpack finds everything already there)."""
    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    store = str(tmp_path / "team-store")
    for attempt in range(2):
        capsys.readouterr()
        assert run_cli(app, ["unpack", str(packed["out"] / "small.tar"), "--store", store, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["run_id"] == packed["run_id"]
        assert (report["records"] > 0) == (attempt == 0) and (report["already"] > 0) == (attempt == 1)
    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(packed["tmp"] / "offline" / "reproflow-cache"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    code, result, err = _replay([packed["run_id"], "--store", store], capsys)
    assert code == 0, err[-4000:]
    assert result["verdict"] == "reproduced", result


def _retar(src: Path, dst: Path, change: Any, *, fix_manifest: bool) -> None:
    """Copy a pack, letting ``change(name, data)`` alter members; with ``fix_manifest`` the
    manifest is rewritten to list the altered sizes and hashes (a careful forger)."""
    import hashlib
    import io

    with tarfile.open(src) as tin:
        members = [(i, tin.extractfile(i).read()) for i in tin.getmembers()]  # type: ignore[union-attr]
    members = [(i, change(i.name, d)) for i, d in members]
    if fix_manifest:
        info, data = members[0]
        manifest = json.loads(data)
        for i, d in members[1:]:
            manifest["members"][i.name] = {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        members[0] = (info, json.dumps(manifest).encode())
    with tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for info, data in members:
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))


def _alter_blob(name: str, data: bytes) -> bytes:
    """The environment record (a JSON blob) with one byte changed, under its old name."""
    return data.replace(b'"', b"'", 1) if name.startswith("store/objects/") and data[:1] == b"{" else data


def _alter_record(name: str, data: bytes) -> bytes:
    return data.replace(b'"flow_name":"numbers"', b'"flow_name":"numberz"') if name.endswith("/run.json") else data


@pytest.mark.parametrize("case", ["blob", "blob-and-manifest", "record"])
def test_tampered_pack_is_refused(case: str, packed: dict[str, Any], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A pack whose blob was altered (with or without its manifest rewritten to match), or whose
    record no longer hashes as listed, is refused by replay and by unpack: one line, exit 5,
    nothing imported."""
    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    bad = tmp_path / "bad.tar"
    _retar(packed["out"] / "small.tar", bad, _alter_record if case == "record" else _alter_blob,
           fix_manifest=case == "blob-and-manifest")
    store = tmp_path / "store"
    for args in (["replay", str(bad)], ["unpack", str(bad), "--store", str(store)]):
        capsys.readouterr()
        code = run_cli(app, args)
        err = capsys.readouterr().err
        assert code == 5, err
        assert "refusing the pack" in err and "Traceback" not in err
        assert "sha256" in err
    assert not store.exists()
