"""Docs that run: every page of docs/ (and the README), followed block by block as a new reader
would, in a fresh folder, against the session's Prefect API (and a local S3 server for the
pages that use one). A block that does not run, or whose shown output no longer matches, fails
the page. See docs_runner.py for what runs and how pages mark fragments and files."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_runner import REPO, DocsFailure, Session, parse_blocks, run_page  # noqa: E402

PAGES = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").rglob("*.md")) + ["README.md"]

#: Pages that talk to S3 as ``s3://team-bucket/...``: the test starts a moto server and creates
#: that bucket; credentials and endpoint reach the page through the environment only.
S3_PAGES = {"docs/storage.md": ["team-bucket"]}

#: Pages known not to run yet, with the reason. The test fails when one of them starts passing
#: (strict xfail), so this list only shrinks.
KNOWN_FAILING: dict[str, str] = {}


@pytest.fixture(scope="module")
def docs_cache(shared_cache_dir: Path) -> Path:
    """The session's REPROFLOW_CACHE_DIR (tests/conftest.py) for every page: replay environments
    built by one page, or by an earlier test, are reused (they all record in this environment)."""
    return shared_cache_dir


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[Any]:
    sys.path.insert(0, str(REPO / "tests" / "storage"))
    from moto.server import ThreadedMotoServer
    from storage_servers import S3Server, free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(port=port, server=server)
    finally:
        server.stop()


def page_env(cache: Path, prefect_api_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPROFLOW_", "PYTEST_", "VIRTUAL_ENV"))}
    env.update(prefect_api_env)
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "REPROFLOW_CACHE_DIR": str(cache),
        "COLUMNS": "100",
        "DASK_LOGGING__DISTRIBUTED": "error",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "GIT_AUTHOR_NAME": "Docs Reader", "GIT_AUTHOR_EMAIL": "reader@example.com",
        "GIT_COMMITTER_NAME": "Docs Reader", "GIT_COMMITTER_EMAIL": "reader@example.com",
    })
    return env


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=pytest.mark.xfail(reason=KNOWN_FAILING[p], strict=True, raises=DocsFailure))
     if p in KNOWN_FAILING else p for p in PAGES],
)
def test_page_runs_as_written(page: str, tmp_path: Path, docs_cache: Path, prefect_api_env: dict[str, str],
                              request: pytest.FixtureRequest) -> None:
    """Every runnable block of the page runs, in order, in a fresh folder, and prints what the
    page shows."""
    env = page_env(docs_cache, prefect_api_env)
    if page in S3_PAGES:
        srv = request.getfixturevalue("s3_endpoint")
        import boto3

        from storage_servers import S3_KEY_ID, S3_SECRET

        env.update({
            "AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": srv.endpoint,
            "AWS_MAX_ATTEMPTS": "2", "AWS_RETRY_MODE": "standard",
        })
        s3 = boto3.client("s3", endpoint_url=srv.endpoint, region_name="us-east-1",
                          aws_access_key_id=S3_KEY_ID, aws_secret_access_key=S3_SECRET)
        for bucket in S3_PAGES[page]:
            s3.create_bucket(Bucket=bucket)
    folder = tmp_path / "reader"
    folder.mkdir()
    session = Session(root=folder, env=env, cwd=folder)
    run_page(REPO / page, session)


# -- the runner itself --------------------------------------------------------------------


def test_blocks_and_directives_are_parsed(tmp_path: Path) -> None:
    """Fences (indented ones too), languages and the directive comment right before a fence."""
    page = tmp_path / "p.md"
    page.write_text(
        "# t\n\n<!-- file: flows/a.py -->\n```python\nx = 1\n```\n\n"
        "- item\n\n   ```bash\n   echo hi\n   ```\n\n<!-- fragment -->\n```console\n$ reproflow RUN_ID\n```\n"
    )
    blocks = parse_blocks(page)
    assert [(b.lang, b.directive, b.text) for b in blocks] == [
        ("python", "file: flows/a.py", "x = 1\n"),
        ("bash", None, "echo hi\n"),
        ("console", "fragment", "$ reproflow RUN_ID\n"),
    ]
    assert blocks[0].file_target == "flows/a.py" and not blocks[0].runs and blocks[1].runs


def _session(tmp_path: Path) -> Session:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return Session(root=tmp_path, env=env, cwd=tmp_path, timeout=120)


def test_a_broken_example_fails_the_page(tmp_path: Path) -> None:
    """A page whose shown output is stale, whose code uses an undefined name, or whose command
    fails, fails; a file block is written for later blocks, and `export`/`cd` carry over."""
    good = tmp_path / "good.md"
    good.write_text(
        "<!-- file: lib/greet.py -->\n```python\nNAME = 'world'\n```\n\n"
        "```bash\nexport GREETING=hello\nmkdir -p sub && cd sub\n```\n\n"
        "```console\n$ echo \"$GREETING $(basename $PWD) 3f2a9c1e-0000-4000-8000-000000000000 took 1.5 s\"\n"
        "hello sub 54b29a3f-c882-4b97-9884-8408c379e447 took 0.2 s\n```\n\n"
        "```python\nimport sys; sys.path.insert(0, '../lib'); import greet; print(greet.NAME)\n```\n"
    )
    (tmp_path / "good").mkdir()
    run_page(good, _session(tmp_path / "good"))

    broken_output = good.read_text().replace("hello sub", "goodbye sub")
    undefined = good.read_text().replace("print(greet.NAME)", "print(greet.NAME, clean)")
    failing_cmd = good.read_text().replace("export GREETING=hello", "export GREETING=hello\nfalse")
    for i, text in enumerate([broken_output, undefined, failing_cmd]):
        page = tmp_path / f"broken{i}.md"
        page.write_text(text)
        (tmp_path / f"b{i}").mkdir()
        with pytest.raises(DocsFailure):
            run_page(page, _session(tmp_path / f"b{i}"))


def test_shown_output_is_compared_loosely() -> None:
    """Ids, hashes, times and durations may differ; `...` matches any text; the shown lines must
    come in order; a changed word or number fails."""
    from docs_runner import match_output

    actual = "run 3f2a9c1e-0000-4000-8000-000000000000 took 2.31 s at 2026-12-02T03:00:01+00:00\nscore: 95/100\nextra\n"
    assert match_output("run 54b29a3f-c882-4b97-9884-8408c379e447 took 0.5 s at ...\nscore: 95/100", actual) is None
    assert match_output("score: 90/100", actual) == "score: 90/100"
    assert match_output("score: 95/100\nrun ...", actual) == "run ..."


_HEARTBEAT_LOG = """
import asyncio, logging, sys
import distributed  # distributed's own logging configuration and format
from distributed.comm.core import CommClosedError
from tornado.iostream import StreamClosedError

print("110", flush=True)


async def read():
    raise StreamClosedError()


async def heartbeat():  # the shape of distributed.worker.Worker.heartbeat's failure path
    try:
        try:
            await read()
        except StreamClosedError as e:
            raise CommClosedError("in <TCP (closed) ConnectionPool.heartbeat_worker "
                                  "local=tcp://127.0.0.1:1 remote=tcp://127.0.0.1:2>: Stream is closed") from e
    except OSError:
        logging.getLogger("distributed.worker").exception("Failed to communicate with scheduler during heartbeat.")


asyncio.run(heartbeat())
if sys.argv[1:] == ["own"]:
    1 / 0
"""


def test_only_distributeds_known_teardown_log_is_let_through() -> None:
    """dask/distributed#7105: distributed's logged heartbeat traceback at a LocalCluster's
    shutdown does not fail a page (docs/scale.md); a traceback of anything else, even right
    after it, still does."""
    import subprocess

    from docs_runner import without_known_upstream_logs

    pytest.importorskip("distributed")

    def run(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-c", _HEARTBEAT_LOG, *args], capture_output=True, text=True)
        return proc.stdout + proc.stderr

    logged = run()
    assert "Failed to communicate with scheduler during heartbeat." in logged and logged.count("Traceback") == 2
    assert "Traceback" not in without_known_upstream_logs(logged)
    assert without_known_upstream_logs(logged).strip() == "110"
    # interleaved: the log record starts on the line another process was printing
    assert without_known_upstream_logs("done " + logged.split("110\n", 1)[1]).strip() == "done"
    # the same record in Prefect's log format (a worker process with Prefect's logging set up)
    prefect_style = logged.replace("distributed.worker - ERROR - Failed", "00:33:11.737 | ERROR   | "
                                   "distributed.worker - Failed")
    assert prefect_style != logged and "Traceback" not in without_known_upstream_logs(prefect_style)

    own = run("own")
    assert "ZeroDivisionError" in without_known_upstream_logs(own)
    assert without_known_upstream_logs(own).count("Traceback (most recent call last)") == 1
    # the same log line over another exception is not the known shape: it stays
    other = logged.replace("distributed.comm.core.CommClosedError", "ValueError")
    assert without_known_upstream_logs(other) == other
    # a page that prints the log line itself, with no traceback after it, is left as it is
    assert without_known_upstream_logs("x - distributed.worker - ERROR - Failed to communicate with scheduler"
                                       " during heartbeat.\nok").endswith("ok")


def test_record_format_names_every_file_a_run_leaves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/record-format.md's layout names every kind of file a recorded and reported run leaves
    in a local store (issue 17: REPRODUCIBILITY.html was missing)."""
    import re

    import reproflow
    from reproflow import repro_task
    from reproflow.analysis._report import build_report, save_report
    from reproflow.store import Store

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(tmp_path / "cache"))

    @repro_task
    def double(x: int) -> int:
        return 2 * x

    store = Store(tmp_path / "store")
    with reproflow.record("layout", store=store.url) as run:
        double(2)
    save_report(store, build_report(store, run.run_id))
    layout = (REPO / "docs" / "record-format.md").read_text()
    listed = set(re.findall(r"^<store>/(\S+)", layout, flags=re.M))
    patterns = [re.compile("^" + re.sub(r"<[^>]+>", "[^/]+", re.escape(p).replace(r"\<", "<").replace(r"\>", ">")) + "$")
                for p in listed]
    for f in (tmp_path / "store").rglob("*"):
        if f.is_file():
            rel = f.relative_to(tmp_path / "store").as_posix()
            assert any(p.match(rel) for p in patterns), f"{rel} is not in docs/record-format.md's layout"
