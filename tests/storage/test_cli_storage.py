"""The CLI against remote stores: bad input gets one red line and its exit code."""

from __future__ import annotations

from typing import Any

import fsspec
import pytest
from storage_records import write_run
from storage_servers import Backend, dead_endpoint

from reproflow import errors
from reproflow.records import SCHEMA_VERSION
from reproflow.cli._common import run_cli
from reproflow.cli import app


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_cli(app, list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def remote(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, cache_dirs: Any) -> Backend:
    """An S3 or GCS store whose endpoint comes from fsspec's config (as a user's config file sets it)."""
    if request.param == "s3":
        srv = request.getfixturevalue("s3_server")
        monkeypatch.setitem(fsspec.config.conf, "s3", srv.storage_options)
        return Backend("s3", f"s3://{srv.new_bucket()}/store", {})
    srv = request.getfixturevalue("gcs_server")
    monkeypatch.setitem(fsspec.config.conf, "gs", srv.storage_options)
    return Backend("gs", f"gs://{srv.new_bucket()}/store", {})


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    return lines[0]


#: The console script's main(), in a process of its own (no pytest log handlers, so a library's
#: logged traceback would reach stderr as it does for users), with gcsfs giving up after one try.
_GCS_MAIN = """
import sys
import gcsfs
from gcsfs.retry import retry_request
gcsfs.GCSFileSystem._request = retry_request(retries=1)(gcsfs.GCSFileSystem._request.__wrapped__)
from reproflow.cli import main
sys.argv = ["reproflow", "runs", "list", "--store", "gs://nowhere/store"]
main()
"""


def test_unreachable_gcs_prints_no_library_traceback() -> None:
    """Issue 11: gcsfs logs a full aiohttp traceback for the failed request before raising (49
    lines before the one-line error); the CLI keeps only its own line, exit 3."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "FSSPEC_GS": json.dumps({"endpoint_url": dead_endpoint(), "token": "anon"}),
           "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
    proc = subprocess.run([sys.executable, "-c", _GCS_MAIN], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 3, proc.stderr
    line = _one_line(proc.stderr)
    assert "unreachable" in line and "Traceback" not in proc.stderr


@pytest.mark.parametrize("remote", ["s3", "gs"], indirect=True)
def test_remote_runs_list_and_show(remote: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    """`runs list --json` and `runs show` work on a remote store given only its URL."""
    run_id = write_run(remote.store(), n_tasks=2)
    code, out, _ = cli(capsys, "runs", "list", "--store", remote.url, "--json")
    assert code == 0 and run_id in out
    code, out, _ = cli(capsys, "runs", "show", run_id[:8], "--store", remote.url, "--json")
    assert code == 0 and '"step-1"' in out


@pytest.mark.parametrize("remote", ["s3", "gs"], indirect=True)
def test_remote_bad_input_one_line(remote: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    """Unknown run, missing store, corrupt record, newer schema: one line each, distinct codes."""
    store = remote.store()
    run_id = write_run(store, n_tasks=1)

    code, _, err = cli(capsys, "runs", "show", "deadbeef-1234", "--store", remote.url)
    assert code == errors.RunNotFound.exit_code and "deadbeef-1234" in _one_line(err)

    code, _, err = cli(capsys, "runs", "list", "--store", remote.url + "-absent")
    assert code == errors.StoreNotFound.exit_code and "no reproflow store" in _one_line(err)

    path = store.path("runs", run_id, "run.json")
    good = store.read_bytes(path)
    store.fs.pipe_file(path, b"\x00garbage")
    code, _, err = cli(capsys, "runs", "show", run_id, "--store", remote.url)
    assert code == errors.CorruptRecord.exit_code and "corrupt record" in _one_line(err)

    store.fs.pipe_file(path, good.replace(f'"schema_version":"{SCHEMA_VERSION}"'.encode(), b'"schema_version":"7.0"'))
    code, _, err = cli(capsys, "runs", "show", run_id, "--store", remote.url)
    assert code == errors.NewerSchema.exit_code and "7.0" in _one_line(err)


def test_unreachable_s3_one_line(
    s3_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An S3 endpoint where nothing listens: StoreUnreachable, one line, exit code 3."""
    monkeypatch.setitem(fsspec.config.conf, "s3", {"client_kwargs": {"endpoint_url": dead_endpoint()}})
    code, _, err = cli(capsys, "runs", "list", "--store", "s3://nowhere/store")
    line = _one_line(err)
    assert code == errors.StoreUnreachable.exit_code == 3
    assert "unreachable" in line and "s3://nowhere/store" in line


def test_unreachable_gcs_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A GCS endpoint where nothing listens: StoreUnreachable, one line, exit code 3.

    gcsfs retries a refused connection 6 times with exponential backoff (~33 s of sleeps; the
    count is bound by its ``retry_request`` decorator when the class is defined, and no storage
    option changes it). Here ``_request`` is re-wrapped with that same decorator at
    ``retries=1``: the real request is refused by the real socket and gcsfs gives up through its
    own last-attempt path, raising the same exception it raises after the 6th attempt."""
    import gcsfs
    from gcsfs.retry import retry_request

    one_try = retry_request(retries=1)(gcsfs.GCSFileSystem._request.__wrapped__)
    monkeypatch.setattr(gcsfs.GCSFileSystem, "_request", one_try)
    monkeypatch.setitem(fsspec.config.conf, "gs", {"endpoint_url": dead_endpoint(), "token": "anon"})
    code, _, err = cli(capsys, "runs", "list", "--store", "gs://nowhere/store")
    line = _one_line(err)
    assert code == 3 and "unreachable" in line and "gs://nowhere/store" in line
