"""Real object-store servers on 127.0.0.1 for the storage tests, and one store per backend.

* S3: moto's ``ThreadedMotoServer`` on a free port, buckets made with boto3 (``fs.mkdir`` fails
  there for us-east-1), reached through s3fs with ``client_kwargs={"endpoint_url": ...}``;
  credentials only through the ``AWS_*`` environment variables this fixture sets.
* GCS: ``gcp-storage-emulator`` (from PyPI) as a subprocess on a free port, reached through gcsfs
  with ``endpoint_url=...`` and ``token="anon"``.

Both servers live for the whole session; every test gets fresh buckets, so tests never see each
other's objects.
"""

from __future__ import annotations

import os

# gcsfs >= 2025.x first asks a gRPC control plane for the bucket layout, which an emulator does
# not serve (a 60 s timeout per bucket). Must be set before gcsfs is imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import logging  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from storage_servers import (  # noqa: E402
    BACKENDS,
    S3_KEY_ID,
    S3_SECRET,
    Backend,
    GCSServer,
    S3Server,
    free_port,
)


def _start_moto(port: int) -> Any:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server


@pytest.fixture(scope="module")
def s3_env() -> Iterator[None]:
    """Credentials for S3 through the environment only (as users pass them), for the module that
    asks for them and undone after it. Session-wide, they outlived tests/storage: every later
    recording captured an AWS secret (tests/test_report.py lost 5 points to "secrets-redacted")
    and really opened the s3:// URLs it was given (tests/test_secrets_planted.py)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ACCESS_KEY_ID", S3_KEY_ID)
    mp.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.delenv("AWS_PROFILE", raising=False)
    mp.delenv("AWS_SESSION_TOKEN", raising=False)
    # Fail fast against a stopped server (botocore's default legacy mode retries 5 times).
    mp.setenv("AWS_MAX_ATTEMPTS", "2")
    mp.setenv("AWS_RETRY_MODE", "standard")
    yield
    mp.undo()


@pytest.fixture(scope="session")
def _moto_s3() -> Iterator[S3Server]:
    """One moto S3 server for the session, on a free loopback port (it needs no credentials)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    srv = S3Server(port=port, server=_start_moto(port))
    yield srv
    srv.server.stop()


@pytest.fixture(scope="module")
def s3_server(_moto_s3: S3Server, s3_env: None) -> S3Server:
    """The session's moto S3 server, with the credentials in the environment while the module runs."""
    return _moto_s3


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSServer]:
    """One in-memory GCS emulator for the session, a subprocess on a free loopback port.

    A subprocess keeps the emulator's own request tracebacks out of the CLI output under test.
    The emulator serves one connection at a time from a stdlib ``http.server.HTTPServer``
    whose listen backlog is 5: under 50 concurrent writers the kernel drops SYNs, the clients
    wait out TCP retransmits and gcsfs's backoff, and 50 task writes took 3-15 s (once 111 s).
    With a backlog of 128 (set on the class before the emulator starts) they take 0.2-0.4 s.
    """
    port = free_port()
    start = ("import sys, http.server; http.server.HTTPServer.request_queue_size = 128; "
             "from gcp_storage_emulator.__main__ import main; main(sys.argv[1:])")
    proc = subprocess.Popen(
        [sys.executable, "-c", start, "start", "--host", "127.0.0.1",
         "--port", str(port), "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    srv = GCSServer(port=port, server=proc)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(srv.endpoint + "/", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"gcp-storage-emulator did not start on port {port}")
        time.sleep(0.1)
    yield srv
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def cache_dirs(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Private hash cache and spool folders, so tests never touch ~/.cache."""
    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("REPROFLOW_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.delenv("REPROFLOW_STRICT", raising=False)
    from reproflow.store import _spool

    with _spool._offline_lock:
        _spool._offline_until.clear()
    return tmp_path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Any, cache_dirs: Any) -> Backend:
    """The same store contract, once per backend: local folder, memory://, S3 (moto), GCS (emulator)."""
    name = request.param
    if name == "file":
        return Backend(name, str(tmp_path / "store"), {})
    if name == "memory":
        return Backend(name, f"memory://rf-{uuid.uuid4().hex[:8]}/store", {})
    if name == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        return Backend(name, f"s3://{s3.new_bucket()}/team/store", s3.storage_options)
    gcs: GCSServer = request.getfixturevalue("gcs_server")
    return Backend(name, f"gs://{gcs.new_bucket()}/team/store", gcs.storage_options)
