"""The corpus modules' fixtures: the session's Prefect API and replay environment cache, and
a moto S3 server on loopback (one per module)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def corpus_env(prefect_api_env: dict[str, str], shared_cache_dir: Path) -> Iterator[dict[str, Any]]:
    """The session's Prefect API for the module, and the session's replay environment cache
    (tests/conftest.py): every shape records in this same environment, so the first replay of
    the session builds it and every other reuses it."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PREFECT_API_URL", prefect_api_env["PREFECT_API_URL"])
    cache = shared_cache_dir
    mp.setenv("REPROFLOW_CACHE_DIR", str(cache))
    try:
        yield {"cache": cache}
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def s3(corpus_env: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A moto S3 server on loopback, credentials through the environment only."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
    from storage_servers import S3_KEY_ID, S3_SECRET, S3Server, free_port

    from moto.server import ThreadedMotoServer

    mp = pytest.MonkeyPatch()
    for k, v in {"AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET,
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "2", "AWS_RETRY_MODE": "standard"}.items():
        mp.setenv(k, v)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    srv = S3Server(port=port, server=server)
    mp.setenv("AWS_ENDPOINT_URL_S3", srv.endpoint)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield {"server": srv}
    finally:
        server.stop()
        mp.undo()
        # fsspec caches filesystem instances by their options, not by the endpoint taken from the
        # environment: one made here would point later modules at this stopped server
        s3fs.S3FileSystem.clear_instance_cache()
