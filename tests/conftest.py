"""Shared fixtures. Prefect is configured before it is imported (PREFECT_HOME is read at import)."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile

_PREFECT_HOME = tempfile.mkdtemp(prefix="reproflow-prefect-home-")
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.pop("REPROFLOW_STORE", None)

import pathlib  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from suite_cache import prune_bytecode_cache  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _bytecode_cache() -> Iterator[None]:
    """A shared bytecode cache for every Python process the tests start (flows, replay runners,
    Prefect servers, Dask workers) and for this one's later imports.

    With PYTHONDONTWRITEBYTECODE set (as on these machines) and site-packages installed without
    .pyc files, each process compiles Prefect, pydantic, httpx... from source: `import prefect`
    takes ~3.3 s instead of ~1.7 s. The cache lives under PYTHONPYCACHEPREFIX (a folder in the
    system temp dir, kept between sessions; Python revalidates each entry against its source's
    mtime and size), so no __pycache__ folder appears next to any source file, the tests' own
    repositories included. Runs before the other session fixtures (autouse order is by name)."""
    import sys

    prefix = _pycache_prefix()
    os.makedirs(prefix, exist_ok=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPYCACHEPREFIX", prefix)
    mp.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    mp.setattr(sys, "pycache_prefix", prefix)
    mp.setattr(sys, "dont_write_bytecode", False)
    try:
        yield
    finally:
        mp.undo()


def _pycache_prefix() -> str:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return os.environ.get("PYTHONPYCACHEPREFIX") or os.path.join(tempfile.gettempdir(), f"reproflow-tests-pycache-{uid}")


def _is_xdist_worker() -> bool:
    return "PYTEST_XDIST_WORKER" in os.environ


def _compile_reproflow() -> None:
    """Byte-compile reproflow's own source once, before the workers start: installed editable,
    it is not compiled by the install, and with PYTHONDONTWRITEBYTECODE set (as on CI's
    machines) every subprocess the suite starts (``python flow.py``, ``reproflow replay``, an
    engine's task process) compiled every module it imported again: 0.2 s a process, measured."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("reproflow")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        if os.access(folder, os.W_OK):
            with contextlib.suppress(OSError):
                compileall.compile_dir(folder, quiet=2)


def pytest_configure(config: pytest.Config) -> None:
    """In the process that runs the session (the only one, or xdist's controller before it starts
    its workers): one real `prefect server start` (SQLite, loopback) for every test of every
    worker, and one replay-environment cache folder for all of them. Workers inherit both through
    the environment. The server is started here and waited for in :func:`prefect_harness`, so
    collection runs while it boots."""
    if _is_xdist_worker() or config.option.collectonly or getattr(config.option, "help", False):
        return
    if not os.environ.get("REPROFLOW_TEST_PREFECT_API_URL"):
        home = pathlib.Path(tempfile.mkdtemp(prefix="reproflow-test-server-"))
        server = running_prefect_server(home, timeout=300, wait=False)
        url = server.__enter__()
        os.environ["REPROFLOW_TEST_PREFECT_API_URL"] = url
        os.environ["REPROFLOW_TEST_SERVER_LOG"] = str(home / "server.log")
        config.add_cleanup(lambda: (server.__exit__(None, None, None), os.environ.pop("REPROFLOW_TEST_PREFECT_API_URL", None),
                                    shutil.rmtree(home, ignore_errors=True)))
    _compile_reproflow()
    prune_bytecode_cache(_pycache_prefix(), os.path.realpath(tempfile.gettempdir()))
    if not os.environ.get("REPROFLOW_TEST_SHARED_CACHE"):
        cache = tempfile.mkdtemp(prefix="reproflow-test-cache-")
        os.environ["REPROFLOW_TEST_SHARED_CACHE"] = cache
        config.add_cleanup(lambda: (os.environ.pop("REPROFLOW_TEST_SHARED_CACHE", None),
                                    shutil.rmtree(cache, ignore_errors=True)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The heaviest modules first: ordered by how many of their tests are marked ``slow`` (they
    build environments, start servers, run flows), each module's tests in their own order.

    xdist hands whole modules to its workers in collection order (``--dist loadfile``); with the
    top-level modules collected last, a fresh clone's run ended with minutes in which one worker
    still ran a heavy module and the others had nothing left (longest first is the classic cure)."""
    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    weight: dict[str, int] = {}
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        first.setdefault(module(item), index)
        weight[module(item)] = weight.get(module(item), 0) + (item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: (-weight[module(item)], first[module(item)]))


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """The session's one real Prefect server (started by :func:`pytest_configure`, shared by the
    xdist workers), or the server already running at ``$REPROFLOW_TEST_PREFECT_API_URL``; waits
    until it answers /health."""
    url = os.environ["REPROFLOW_TEST_PREFECT_API_URL"]
    log = os.environ.get("REPROFLOW_TEST_SERVER_LOG")
    _wait_healthy(url, timeout=300, log=pathlib.Path(log) if log else None)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: url}):
        yield


@pytest.fixture(scope="session", autouse=True)
def _subprocesses_share_the_api(prefect_harness: None) -> Iterator[None]:
    """Flows and replay runners started as subprocesses inherit the session's Prefect API
    through PREFECT_API_URL, instead of each starting an ephemeral server (~15-20 s apiece on 2
    cores). Tests that need another server (a real `prefect server start`) set their own."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    old = os.environ.get("PREFECT_API_URL")
    if url:
        os.environ["PREFECT_API_URL"] = url
    yield
    if old is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = old


@pytest.fixture(scope="session")
def shared_cache_dir() -> pathlib.Path:
    """One ``REPROFLOW_CACHE_DIR`` for every test that replays into a rebuilt environment (the
    corpus, the docs pages, the Prefect deployment test, replay modules), in every xdist worker.

    A rebuilt environment's folder is named by what it holds: the validated pins, local sources
    by content hash, and the Python version (``replay/_envbuild.py::env_key``). Every recording
    of the suite runs in this same virtual environment, so every replay asks for the same
    folder: shared, it is built once per session instead of once per module or worker (each
    build installs ~200 distributions; a file lock keeps two workers from building it at once).
    The one test that must see a build from nothing (tests/replay/test_replay_e2e.py) keeps a
    cache of its own."""
    return pathlib.Path(os.environ["REPROFLOW_TEST_SHARED_CACHE"])


@pytest.fixture(scope="session")
def prefect_api_env(prefect_harness: None) -> dict[str, str]:
    """Environment for a subprocess flow to use the session's Prefect API instead of starting its
    own ephemeral server (which costs ~15-20 s per process on 2 cores)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the Prefect test harness did not set an API URL"
    return {"PREFECT_API_URL": url}


@pytest.fixture
def store_dir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A fresh local store, also set as REPROFLOW_STORE for code that resolves the default."""
    d = tmp_path / "store"
    monkeypatch.setenv("REPROFLOW_STORE", str(d))
    return d


@pytest.fixture
def store(store_dir: pathlib.Path):  # type: ignore[no-untyped-def]
    from reproflow.store import Store

    return Store(store_dir)


@pytest.fixture(autouse=True)
def _background_work_ends_with_its_test() -> Iterator[None]:
    """A flow run's end is written on a background thread after the flow returns: wait for it when
    the test that ran the flow ends (as a process waits at exit), not while the next test runs,
    with that test's patches, servers and captured output. (Its Prefect artifacts, published
    after it, may still be on their way, as they were before the end moved there.)"""
    yield
    import sys

    writer = sys.modules.get("reproflow.store._writer")
    if writer is not None:
        writer.finishing().wait(120)


@pytest.fixture(autouse=True)
def _reset_memory_fs() -> Iterator[None]:
    """fsspec's memory:// filesystem is process-global: start every test empty."""
    yield
    from fsspec.implementations.memory import MemoryFileSystem

    MemoryFileSystem.store.clear()
    MemoryFileSystem.pseudo_dirs.clear()
    MemoryFileSystem.pseudo_dirs.append("")


@contextlib.contextmanager
def running_prefect_server(home: pathlib.Path, timeout: float = 180, wait: bool = True) -> Iterator[str]:
    """A real `prefect server start` (SQLite under ``home``, loopback, a free port) until the
    block ends; yields its API URL once /health answers (at once with ``wait=False``: the caller
    waits with :func:`_wait_healthy`)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_UI_API_URL": api,
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
    }
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        if wait:
            _wait_healthy(api, timeout, proc=proc, log=home / "server.log")
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wait_healthy(api: str, timeout: float, proc: Any = None, log: pathlib.Path | None = None) -> None:
    """Until the Prefect API at ``api`` answers /health; a server that exits or stays silent
    fails with the end of its log."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(log.read_text()[-3000:] if log else f"prefect server at {api} exited")
        time.sleep(0.5)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"prefect server at {api} did not become healthy in {timeout:.0f} s\n{tail}")


@pytest.fixture(scope="session")
def start_prefect_server() -> Any:
    """:func:`running_prefect_server`, for fixtures in other folders (conftest modules share one
    import name, so they cannot import from each other)."""
    return running_prefect_server
