"""Debian's own numpy, linked to a Debian BLAS: the record names the BLAS library in use with its
Debian package and version, and `diff` against a run with another BLAS shows the change (issue
13's done-when; PyPI's numpy bundles its OpenBLAS, so test_system.py sees no Debian BLAS).

Debian's numpy runs under Debian's interpreter (/usr/bin/python3), in a virtual environment that
sees the system's packages and has reproflow installed. Which BLAS numpy loads is chosen for
each run by the dynamic linker's search path (LD_LIBRARY_PATH at the folder of OpenBLAS's
``libblas.so.3``, then at the reference BLAS's), the per-process equivalent of switching the
``libblas.so.3`` alternative with update-alternatives, which would change the machine for every
other process.

The Debian packages are installed by `.ci/run` (as root, where apt-get is); elsewhere the test
skips, saying which are missing.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest

from reproflow.records import ProcessContext, SharedLibrary, SystemLibraries
from reproflow.store import Store

REPO = pathlib.Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = "/usr/bin/python3"
#: what .ci/run installs for this test: Debian's numpy, OpenBLAS and the reference BLAS/LAPACK
PACKAGES = ("python3-numpy", "libopenblas0-pthread", "libblas3", "liblapack3")

PIPELINE = '''
import reproflow
from reproflow import repro_task


@repro_task
def solve(n: int) -> float:
    import numpy as np  # Debian's numpy: its BLAS and LAPACK are libblas.so.3 and liblapack.so.3

    a = np.arange(1.0, n * n + 1).reshape(n, n) + n * np.eye(n)
    return float(np.linalg.solve(a, np.ones(n)).sum() + (a @ a).trace())


with reproflow.record(name="blas"):
    solve(40)
'''


def _installed() -> dict[str, str]:
    """``{package: version}`` of the needed Debian packages that are installed."""
    out = {}
    for pkg in PACKAGES:
        done = subprocess.run(["dpkg-query", "-W", "-f", "${Status}\t${Version}", pkg], capture_output=True, text=True,
                              check=False)  # fmt: skip
        status, _, version = done.stdout.partition("\t")
        if done.returncode == 0 and status.endswith(" installed"):
            out[pkg] = version
    return out


def _missing_reason() -> str | None:
    if shutil.which("dpkg-query") is None or not os.path.exists("/var/lib/dpkg/status"):
        return "not a Debian system (no dpkg database)"
    if not os.access(DEBIAN_PYTHON, os.X_OK):
        return f"no Debian interpreter at {DEBIAN_PYTHON}"
    missing = [p for p in PACKAGES if p not in _installed()]
    if missing:
        can = os.geteuid() == 0 and shutil.which("apt-get") is not None
        how = "as root, .ci/run installs them" if can else "that needs root and apt-get"
        return f"Debian packages not installed: {' '.join(missing)} (apt-get install -y {' '.join(missing)}; {how})"
    return None


def _package_folder(package: str, file: str) -> str:
    """The folder holding ``file`` among the files a Debian package installed (dpkg -L)."""
    listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout.split("\n")
    (path,) = [p for p in listing if p.endswith("/" + file) and os.path.exists(p)][:1]
    return os.path.dirname(path)


@pytest.fixture(scope="module")
def debian_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two runs of the pipeline under Debian's Python and numpy: A with OpenBLAS, B with the
    reference BLAS and LAPACK."""
    reason = _missing_reason()
    if reason:
        pytest.skip(reason)
    from uv import find_uv_bin

    folder = tmp_path_factory.mktemp("debian-numpy")
    venv = folder / "venv"
    uv = find_uv_bin()
    subprocess.run([uv, "venv", "-q", "--python", DEBIAN_PYTHON, "--system-site-packages", str(venv)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    from reproflow.replay._uv import index_config

    done = subprocess.run([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *index_config().args,
                           "-e", str(REPO)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (folder / "pipeline.py").write_text(PIPELINE)
    store_url = str(folder / "store")
    openblas = _package_folder("libopenblas0-pthread", "libblas.so.3")
    reference = f"{_package_folder('libblas3', 'libblas.so.3')}:{_package_folder('liblapack3', 'liblapack.so.3')}"
    runs = []
    for path in (openblas, reference):
        before = set(Store(store_url).run_ids()) if os.path.exists(store_url) else set()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
        env.update({"REPROFLOW_STORE": store_url, "REPROFLOW_ARTIFACTS": "off", "LD_LIBRARY_PATH": path})
        proc = subprocess.run([str(venv / "bin" / "python"), "pipeline.py"], cwd=folder, env=env, capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        (new,) = set(Store(store_url).run_ids()) - before
        runs.append(new)
    return {"store": Store(store_url), "a": runs[0], "b": runs[1], "venv": venv, "versions": _installed(),
            "openblas_dir": openblas}  # fmt: skip


def _libraries(store: Store, run_id: str) -> SystemLibraries:
    run = store.load_run(run_id)
    (task,) = run.final_tasks()
    assert task.context is not None
    ctx = store.get_model_blob(task.context, ProcessContext)
    assert ctx.system_blob is not None
    return store.get_model_blob(ctx.system_blob, SystemLibraries)


def _by_soname(libs: SystemLibraries, soname: str) -> SharedLibrary:
    (lib,) = [x for x in libs.libraries if x.soname == soname]
    return lib


@pytest.mark.slow
def test_record_names_the_debian_blas_and_its_package(debian_runs: dict[str, Any]) -> None:
    """Run A's task loaded numpy from Debian's python3-numpy, and its BLAS and LAPACK through
    OpenBLAS: libblas.so.3, liblapack.so.3 and libopenblas.so.0 owned by libopenblas0-pthread at
    dpkg's version, OpenBLAS's own version as threadpoolctl reads it. Run B's are the reference
    libblas3 and liblapack3, and no OpenBLAS is loaded."""
    store, versions = debian_runs["store"], debian_runs["versions"]
    a = _libraries(store, debian_runs["a"])
    assert a.package_manager == "dpkg"
    numpy_ext = [x for x in a.libraries if x.kind == "extension" and "/numpy/" in x.path]
    assert numpy_ext and all(x.origin == "dpkg" and x.package == "python3-numpy" for x in numpy_ext)
    assert all(x.package_version == versions["python3-numpy"] for x in numpy_ext)
    for soname, role in (("libblas.so.3", "blas"), ("liblapack.so.3", "lapack"), ("libopenblas.so.0", "blas")):
        lib = _by_soname(a, soname)
        assert role in lib.roles, (soname, lib.roles)
        assert (lib.origin, lib.package) == ("dpkg", "libopenblas0-pthread"), lib
        assert lib.package_version == versions["libopenblas0-pthread"] and lib.package_arch
        assert lib.path.startswith(debian_runs["openblas_dir"] + "/") and re.fullmatch(r"[0-9a-f]{64}", lib.sha256 or "")
    upstream = versions["libopenblas0-pthread"].split("+")[0]  # 0.3.21+ds-4 -> 0.3.21
    assert _by_soname(a, "libopenblas.so.0").version == upstream
    assert [(t.internal_api, t.version) for t in a.threadpools if t.user_api == "blas"] == [("openblas", upstream)]

    b = _libraries(store, debian_runs["b"])
    for soname, package in (("libblas.so.3", "libblas3"), ("liblapack.so.3", "liblapack3")):
        lib = _by_soname(b, soname)
        assert (lib.origin, lib.package, lib.package_version) == ("dpkg", package, versions[package]), lib
        assert lib.roles and lib.sha256 != _by_soname(a, soname).sha256
    assert not [x for x in b.libraries if "openblas" in x.path]

    shown = subprocess.run([str(debian_runs["venv"] / "bin" / "reproflow"), "runs", "show", debian_runs["a"], "--store",
                            store.url], capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert f"blas: libblas.so.3 (libopenblas0-pthread {versions['libopenblas0-pthread']})" in shown.stdout, shown.stdout
    _matches_the_page("reproflow runs show RUN_A", shown.stdout, versions)


@pytest.mark.slow
def test_diff_shows_the_blas_change(debian_runs: dict[str, Any]) -> None:
    """`reproflow diff A B --json` (Debian's interpreter, as a user there runs it) names each
    library that changed with its versions and its package change, and OpenBLAS's removal; the
    table says the same; docs/system.md shows this output."""
    store, versions = debian_runs["store"], debian_runs["versions"]
    cli = str(debian_runs["venv"] / "bin" / "reproflow")
    done = subprocess.run([cli, "diff", debian_runs["a"], debian_runs["b"], "--json", "--store", store.url],
                          capture_output=True, text=True, check=True)  # fmt: skip
    lines = [d for d in json.loads(done.stdout)["differences"] if d.startswith("system library")]
    ob, ref, lapack = versions["libopenblas0-pthread"], versions["libblas3"], versions["liblapack3"]
    assert lines == [
        f"system library libblas.so.3: {ob} -> {ref} (libopenblas0-pthread -> libblas3)",
        f"system library liblapack.so.3: {ob} -> {lapack} (libopenblas0-pthread -> liblapack3)",
        f"system library libopenblas.so.0: removed (was {ob.split('+')[0]} (libopenblas0-pthread {ob}))",
    ], lines
    table = subprocess.run([cli, "diff", debian_runs["a"], debian_runs["b"], "--store", store.url],
                           capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert "System libraries" in table.stdout and "libopenblas0-pthread -> libblas3" in table.stdout

    _matches_the_page("reproflow diff RUN_A RUN_B --json", done.stdout, versions)


#: the versions in docs/system.md's shown output (Debian 12's)
DOC_VERSIONS = {"libopenblas0-pthread": "0.3.21+ds-4", "libblas3": "3.11.0-2", "liblapack3": "3.11.0-2"}


def _matches_the_page(command: str, actual: str, versions: dict[str, str]) -> None:
    """docs/system.md's shown output of ``command`` (a fragment there: it needs Debian's
    packages) matches the real output, with this machine's package versions read as the page's."""
    sys.path.insert(0, str(REPO / "tests" / "docs"))
    from docs_runner import match_output, parse_blocks

    for package, shown in DOC_VERSIONS.items():
        actual = actual.replace(versions[package], shown)
    upstream = versions["libopenblas0-pthread"].split("+")[0]
    actual = actual.replace(upstream, DOC_VERSIONS["libopenblas0-pthread"].split("+")[0])
    page = REPO / "docs" / "system.md"
    (block,) = [b for b in parse_blocks(page) if b.lang == "console" and b.text.startswith(f"$ {command}\n")
                and "libblas.so.3" in b.text]  # fmt: skip
    expected = block.text.split("\n", 1)[1]
    assert match_output(expected, actual) is None, f"{block.where} no longer shows what {command} prints:\n{actual}"
