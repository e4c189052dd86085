"""Every shape in the corpus: recorded by ``python flow.py`` in a fresh git repository, replayed
from another folder with only ``--store`` (local folder, and S3 on moto where the shape asks),
and the verdict is the right one: reproduced, unverified where nothing can be compared, or a
refusal naming its cause; never a false "reproduced". See corpus_harness.py for a shape's files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from corpus_harness import Shape, check, make_repo, record, replay, shape_names

pytestmark = pytest.mark.slow

CASES = [(name, backend) for name in shape_names() for backend in Shape.load(name).backends]


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


def _store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "local":
        return str(tmp_path / "store")
    srv = request.getfixturevalue("s3")["server"]
    return f"s3://{srv.new_bucket()}/runs"


def _run_ids(url: str) -> Any:
    from reproflow.store import Store

    def ids() -> list[str]:
        try:
            return list(Store(url).run_ids())
        except Exception:  # an empty, not yet created store
            return []
    return ids


@pytest.mark.parametrize(("name", "backend"), CASES, ids=[f"{n}-{b}" for n, b in CASES])
def test_shape_replays_to_an_honest_verdict(name: str, backend: str, corpus_env: dict[str, Any], tmp_path: Path,
                                            request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Record the shape, replay it from an empty folder with only --store, check the verdict."""
    shape = Shape.load(name)
    url = _store(backend, tmp_path, request)
    repo = make_repo(shape, tmp_path / "repo")
    run_id = ""
    for _ in range(int(shape.expect.get("runs", 1))):
        run_id, _out = record(repo, url, shape.expect.get("env"), list_runs=_run_ids(url),
                              argv=shape.expect.get("argv"), exit_code=int(shape.expect.get("record_exit", 0)))
    if shape.expect.get("after_record"):
        subprocess.run([sys.executable, "-c", "from pathlib import Path; " + shape.expect["after_record"]],
                       cwd=repo, check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, result, out, err = replay(run_id, url, elsewhere, list(shape.expect.get("replay_args", [])),
                                    capsys=capsys, monkeypatch=monkeypatch)
    check(shape, code, result, out, err)
