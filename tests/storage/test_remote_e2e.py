"""Issue 4's acceptance, end to end on real object-store servers: a flow whose data *and* store
are remote (S3 on moto, GCS on gcp-storage-emulator) is recorded by a real ``python flow.py``,
then replayed from a different working folder with nothing but the store URL: reproduced.

The endpoint and the credentials reach every process the way users pass them: S3 through
botocore's environment (``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``),
GCS through fsspec's configuration (``FSSPEC_GS`` in the environment, ``fsspec.config.conf``
in this process). None of it may end up in the store.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pytest
from storage_servers import S3_SECRET, GCSServer, S3Server

from reproflow.cli._common import run_cli
from reproflow.cli import app
from reproflow.store import Store

pytestmark = pytest.mark.slow

FLOW = textwrap.dedent(
    """
    import sys

    import fsspec
    from prefect import flow

    from reproflow import repro_task


    @repro_task(inputs=["src"], outputs=["dst"])
    def shout(src: str, dst: str) -> int:
        with fsspec.open(src, "rb") as fh:
            text = fh.read().decode()
        with fsspec.open(dst, "wb") as fh:
            fh.write(text.upper().encode())
        return len(text.split())


    @repro_task
    def double(n: int) -> int:
        return 2 * n


    @flow
    def remote_pipeline(src: str, dst: str) -> int:
        return double(shout(src, dst))


    if __name__ == "__main__":
        remote_pipeline(sys.argv[1], sys.argv[2])
    """
)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


def _remote_setup(backend: str, request: pytest.FixtureRequest, mp: pytest.MonkeyPatch) -> tuple[str, Any]:
    """A fresh bucket; the endpoint set for this process and its children. (bucket, fs)"""
    if backend == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        mp.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)  # read by botocore in every process
        import s3fs

        return s3.new_bucket(), s3fs.S3FileSystem(skip_instance_cache=True)
    gcs: GCSServer = request.getfixturevalue("gcs_server")
    options = gcs.storage_options
    mp.setenv("FSSPEC_GS", json.dumps(options))  # child processes read it at import
    mp.setitem(fsspec.config.conf, "gs", options)  # this process read its env already
    return gcs.new_bucket(), gcs.fs()


def _all_bytes(fs: Any, root: str) -> dict[str, bytes]:
    """Every object under ``root``, gzip blobs (source snapshots) decompressed."""
    out = {}
    for p in fs.find(root):
        data = fs.cat_file(p)
        out[p] = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    return out


IN_TXT = b"the quick brown fox\n"
OUT_TXT = b"THE QUICK BROWN FOX\n"


@dataclass
class Recorded:
    """A run recorded by a real ``python flow.py`` with remote data and a remote store."""

    bucket: str
    fs: Any
    store_url: str
    src: str
    dst: str
    run_id: str
    key_id: str


@pytest.fixture(scope="module", params=["s3", "gs"])
def recorded(request: pytest.FixtureRequest, s3_env: None, prefect_api_env: dict[str, str],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """One recording per backend, shared by the module's tests (each recording is a real
    ``python flow.py`` subprocess, ~8 s here): a fresh bucket holding the input and the store,
    a fresh S3 key id in the environment (made now, so no source file, archived too, holds it),
    private cache and spool folders. The endpoint settings and the key id stay set while the
    backend's tests run (the replays need them as the recording did); tests that change the
    remote objects put them back."""
    backend = request.param
    tmp = tmp_path_factory.mktemp(f"remote-e2e-{backend}")
    mp = pytest.MonkeyPatch()
    try:
        key_id = f"rf-key-{uuid.uuid4().hex}"
        mp.setenv("AWS_ACCESS_KEY_ID", key_id)
        mp.setenv("REPROFLOW_CACHE_DIR", str(tmp / "cache"))
        mp.setenv("REPROFLOW_SPOOL_DIR", str(tmp / "spool"))
        mp.delenv("REPROFLOW_STRICT", raising=False)
        bucket, fs = _remote_setup(backend, request, mp)
        scheme = "s3" if backend == "s3" else "gs"
        store_url = f"{scheme}://{bucket}/team/store"
        src, dst = f"{scheme}://{bucket}/data/in.txt", f"{scheme}://{bucket}/data/out.txt"
        fs.pipe_file(f"{bucket}/data/in.txt", IN_TXT)
        repo = tmp / "repo"
        repo.mkdir()
        (repo / "flow.py").write_text(FLOW)
        _git(repo, "init", "-q")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", "remote pipeline")
        env = {**os.environ, **prefect_api_env, "REPROFLOW_STORE": store_url, "PREFECT_LOGGING_LEVEL": "WARNING"}
        proc = subprocess.run([sys.executable, "flow.py", src, dst], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert fs.cat_file(f"{bucket}/data/out.txt") == OUT_TXT
        [summary] = Store(store_url).list_runs()
        yield Recorded(bucket, fs, store_url, src, dst, summary.run_id, key_id)
    finally:
        mp.undo()


def _replay_elsewhere(rec: Recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      prefect_api_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    """`reproflow replay RUN --store URL --in-place --json` from an empty folder, no REPROFLOW_STORE,
    a cold hash cache. Returns (exit code, JSON result, stderr)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("REPROFLOW_STORE", raising=False)
    for k, v in prefect_api_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(tmp_path / "replay-cache"))
    capsys.readouterr()
    code = run_cli(app, ["replay", rec.run_id, "--store", rec.store_url, "--in-place", "--json"])
    captured = capsys.readouterr()
    assert not any(elsewhere.iterdir()), "the replay wrote into the working folder"
    return code, (json.loads(captured.out) if captured.out.strip() else {}), captured.err


def test_remote_data_and_store_replay_elsewhere_reproduces(
    recorded: Recorded,
    cache_dirs: Path,
    prefect_api_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Record `python flow.py <remote in> <remote out>` with REPROFLOW_STORE on the same server;
    the task record names the remote input and output by URL and SHA-256 (kind "object"). Then,
    from another working folder, with no REPROFLOW_STORE, `reproflow replay RUN --store URL
    --in-place` verifies the remote input by SHA-256, re-runs the flow and exits 0 with verdict "reproduced", as a new run linked to
    the original. No store object (records, blobs, decompressed source snapshots) contains the
    S3 credentials, which were in the environment of both the recording and the replay."""
    rec = recorded
    key_id = rec.key_id
    store = Store(rec.store_url)
    run = store.load_run(rec.run_id)
    assert run.status == "COMPLETED" and len(run.tasks) == 2
    shout = next(t for t in run.tasks if t.task_name == "shout")
    [inp] = shout.inputs
    [out] = [o for o in shout.outputs if o.param == "dst"]
    assert (inp.uri, inp.kind, inp.declared, inp.size) == (rec.src, "object", True, 20) and inp.sha256
    assert (out.uri, out.kind, out.declared) == (rec.dst, "object", True) and out.sha256

    code, result, err = _replay_elsewhere(rec, tmp_path, monkeypatch, prefect_api_env, capsys)
    assert code == 0, err[-3000:] + json.dumps(result)[-3000:]
    assert result["verdict"] == "reproduced" and result["reproduced"] is True
    assert [(c["uri"], c["status"]) for c in result["inputs"]] == [(rec.src, "ok")]
    assert sorted((t["task_name"], t["verdict"]) for t in result["tasks"]) == [
        ("double", "reproduced"), ("shout", "reproduced")]
    assert rec.fs.cat_file(f"{rec.bucket}/data/out.txt") == b"THE QUICK BROWN FOX\n"
    replayed = Store(rec.store_url).load_run(result["replay_run_id"])
    assert replayed.record.replay_of == rec.run_id and len(replayed.tasks) == 2

    stored = _all_bytes(rec.fs, f"{rec.bucket}/team/store")
    assert any("/runs/" in p for p in stored) and any("/objects/" in p for p in stored)
    for path, data in stored.items():
        for secret in (S3_SECRET, key_id):
            assert secret.encode() not in data, f"{secret!r} leaked into {path}"


def test_replay_verifies_remote_inputs(
    recorded: Recorded,
    cache_dirs: Path,
    prefect_api_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A remote input is checked by SHA-256 before the replay runs: unchanged it is listed as
    "ok"; rewritten on the server after the recording, the replay refuses before running (exit
    6, InputChanged naming the URL) and the output object is left as the original wrote it.
    The recorded objects are put back afterwards (the recording is shared by the module)."""
    rec = recorded
    assert rec.fs.cat_file(f"{rec.bucket}/data/in.txt") == IN_TXT
    code, result, err = _replay_elsewhere(rec, tmp_path / "a", monkeypatch, prefect_api_env, capsys)
    assert code == 0 and [(c["uri"], c["status"]) for c in result["inputs"]] == [(rec.src, "ok")], err

    try:
        rec.fs.pipe_file(f"{rec.bucket}/data/in.txt", b"the lazy dog\n")
        rec.fs.pipe_file(f"{rec.bucket}/data/out.txt", b"untouched\n")
        code, result, err = _replay_elsewhere(rec, tmp_path / "b", monkeypatch, prefect_api_env, capsys)
        assert code == 6 and rec.src in err, err
        assert rec.fs.cat_file(f"{rec.bucket}/data/out.txt") == b"untouched\n"
    finally:
        rec.fs.pipe_file(f"{rec.bucket}/data/in.txt", IN_TXT)
        rec.fs.pipe_file(f"{rec.bucket}/data/out.txt", OUT_TXT)
