"""get_context: one capture per process, stored as blobs, readable back through the Store."""

from __future__ import annotations

import gzip
import os
import pathlib
import secrets
import string
import threading
import warnings
from collections.abc import Callable, Iterator

import pytest

import reproflow.capture as capture
from reproflow.capture import clear_cache, environment_identity, extract_source, get_context
from reproflow.records import Environment, ProcessContext, RunRecord
from reproflow.store import Store

from .conftest import git

MakeRepo = Callable[..., pathlib.Path]


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


def _all_bytes(root: pathlib.Path) -> Iterator[tuple[pathlib.Path, bytes]]:
    """Every file under root, gzip members decompressed too."""
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            yield path, data
            if data[:2] == b"\x1f\x8b":
                yield path, gzip.decompress(data)


def test_context_is_stored_and_reads_back(make_repo: MakeRepo, tmp_path: pathlib.Path) -> None:
    """The ProcessContext blob, its Environment blob, the diff and the source archive all read back."""
    repo = make_repo({"flow.py": "x = 1\n", "pkg/util.py": "u\n"})
    (repo / "flow.py").write_text("x = 2\n")
    (repo / "extra.py").write_text("e\n")
    store = Store(tmp_path / "store")
    digest, ctx = get_context(store, entry_file=str(repo / "flow.py"))

    assert store.get_model_blob(digest, ProcessContext) == ctx
    env = store.get_model_blob(ctx.environment_blob, Environment)
    assert ctx.environment_hash == environment_identity(env)
    assert ctx.python_version == env.python.version and ctx.pid == os.getpid()
    assert ctx.capture_ms is not None and ctx.capture_ms > 0

    assert ctx.git.available and ctx.git.dirty and ctx.git.root == str(repo)
    assert ctx.git.diff_blob is not None and b"+x = 2" in store.get_blob(ctx.git.diff_blob)
    assert ctx.git.untracked == ["extra.py"]

    assert ctx.source.kind == "git" and ctx.source.blob is not None and ctx.source.root == str(repo)
    dest = tmp_path / "restored"
    extract_source(store.get_blob(ctx.source.blob), str(dest))
    assert (dest / "flow.py").read_text() == "x = 2\n" and (dest / "extra.py").read_text() == "e\n"

    # local/editable distributions (this checkout of reproflow) carry a stored source snapshot
    editable = [d for d in env.distributions if d.direct_url is not None and d.direct_url.kind == "dir"]
    assert editable and all(d.source_blob and store.has_blob(d.source_blob) for d in editable)


def test_second_call_is_cached_and_does_no_work(make_repo: MakeRepo, tmp_path: pathlib.Path) -> None:
    """The same store and root return the same result without capturing again; other keys do capture."""
    repo = make_repo()
    store = Store(tmp_path / "store")
    first = get_context(store, entry_file=str(repo / "flow.py"))
    assert capture.capture_count == 1
    (repo / "flow.py").write_text("changed after the first capture\n")
    assert get_context(store, entry_file=str(repo / "flow.py")) is first
    assert get_context(Store(tmp_path / "store"), root=str(repo)) is first  # same URL, root given
    assert capture.capture_count == 1
    get_context(Store(tmp_path / "other"), root=str(repo))
    assert capture.capture_count == 2
    clear_cache()
    digest, ctx = get_context(store, entry_file=str(repo / "flow.py"))
    assert capture.capture_count == 1 and ctx.git.dirty and digest != first[0]


def test_concurrent_first_calls_capture_once(make_repo: MakeRepo, tmp_path: pathlib.Path) -> None:
    """Eight threads asking at once get one capture and the same digest."""
    repo = make_repo()
    store = Store(tmp_path / "store")
    results: list[str] = []

    def ask() -> None:
        results.append(get_context(store, root=str(repo))[0])

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert capture.capture_count == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_captures_again(make_repo: MakeRepo, tmp_path: pathlib.Path) -> None:
    """After fork the child does not reuse the parent's context: it captures its own (its pid)."""
    repo = make_repo()
    store = Store(tmp_path / "store")
    _, parent_ctx = get_context(store, root=str(repo))
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads alive
        pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            _, ctx = get_context(store, root=str(repo))
            os.write(write_fd, f"{ctx.pid} {capture.capture_count}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    child_pid, child_count = os.read(read_fd, 100).decode().split()
    os.close(read_fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert int(child_pid) == pid != parent_ctx.pid and child_count == "1"
    assert get_context(store, root=str(repo))[1] is parent_ctx  # the parent's cache is intact


def test_secrets_never_reach_the_store(make_repo: MakeRepo, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret in an env var, in the git remote URL and in the diff is nowhere in the store's bytes
    (archives decompressed too): a tracked file holding a key is left out of diff and snapshot."""
    token, remote_pw, db_pw = (f"Secret{secrets.token_hex(8)}" for _ in range(3))
    aws = "AKIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))
    repo = make_repo({"flow.py": "x = 1\n"})
    git(repo, "remote", "add", "origin", f"https://deploy:{remote_pw}@git.example.com/o/r.git")
    (repo / "flow.py").write_text("x = 2\n")
    (repo / "config.py").write_text("x = 3\n")
    git(repo, "add", "config.py")
    git(repo, "commit", "-q", "-m", "config")
    (repo / "config.py").write_text(f'KEY = "{aws}"\n')
    monkeypatch.setenv("MY_SERVICE_TOKEN", token)
    monkeypatch.setenv("SETTINGS_BLOB", f"region=eu {aws}")
    monkeypatch.setenv("DATABASE_URL", f"postgres://app:{db_pw}@db:5432/app")
    store_dir = tmp_path / "store"
    _, ctx = get_context(Store(store_dir), root=str(repo))
    assert ctx.git.remote_url == "https://git.example.com/o/r.git"
    env = Store(store_dir).get_model_blob(ctx.environment_blob, Environment)
    assert env.env_vars["MY_SERVICE_TOKEN"].redacted and env.env_vars["MY_SERVICE_TOKEN"].fingerprint
    assert env.env_vars["SETTINGS_BLOB"].redacted and env.env_vars["SETTINGS_BLOB"].value is None
    assert env.env_vars["DATABASE_URL"].value == "postgres://db:5432/app"
    # the file holding the AWS key is left out of the diff and of the snapshot, and says so
    assert ctx.git.diff_excluded == ["config.py"] and ctx.source.skipped["config.py"].startswith("secret file")
    assert ctx.git.diff_blob is not None and b"+x = 2" in Store(store_dir).get_blob(ctx.git.diff_blob)
    for path, data in _all_bytes(store_dir):
        for secret in (token, remote_pw, db_pw, aws):
            assert secret.encode() not in data, (path, secret)


def test_root_resolution(make_repo: MakeRepo, tmp_path: pathlib.Path) -> None:
    """Root: the git work tree of the entry file's folder; outside git, that folder."""
    repo = make_repo({"flows/etl.py": "pass\n"})
    store = Store(tmp_path / "store")
    _, ctx = get_context(store, entry_file=str(repo / "flows" / "etl.py"))
    assert ctx.source.root == str(repo) and ctx.git.root == str(repo)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "script.py").write_text("print(1)\n")
    _, ctx2 = get_context(store, entry_file=str(plain / "script.py"))
    assert not ctx2.git.available and ctx2.git.absent_reason == "not a git repository"
    assert ctx2.source.kind == "files" and ctx2.source.root == str(plain) and ctx2.source.files == 1


def test_run_record_round_trip_through_store(make_repo: MakeRepo, tmp_path: pathlib.Path) -> None:
    """A RunRecord pointing at the context loads back with that very context."""
    repo = make_repo()
    store = Store(tmp_path / "store")
    digest, ctx = get_context(store, root=str(repo))
    store.write_run(RunRecord(run_id="run-1", flow_name="demo", context=digest))
    run = store.load_run("run-1")
    assert run.context == ctx
    assert ProcessContext.model_validate_json(ctx.model_dump_json()) == ctx


def test_prefetch_loads_detect_secrets_in_the_background() -> None:
    """prefetch() starts one daemon thread that leaves detect-secrets loaded; a second call is free."""
    from reproflow.values._redact import detector_setup_ms

    capture.prefetch()
    thread = capture._prefetch_thread
    assert thread is not None and thread.daemon
    capture.prefetch()
    assert capture._prefetch_thread is thread
    thread.join(timeout=120)
    assert not thread.is_alive() and detector_setup_ms() is not None
