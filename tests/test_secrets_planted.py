"""Planted secrets, end to end: a real flow run twice in a real git repository with 60+ secrets of
every kind (env, argv, flow and task parameters, results, errors, git remote, git diff, tracked
and untracked files) finds none of them in any stored byte (archives unpacked); the run stays
whole; a replay asks for the redacted parameters and names the files left out."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from secrets_plant import Planted, plant, report, run_flow, scan

import reproflow
from reproflow import repro_task
from reproflow.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def planted(prefect_api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("planted")
    p = plant(root)
    store = root / "store"
    ok = run_flow(p, store, prefect_api_env)
    failed = run_flow(p, store, prefect_api_env, fail=True)
    yield {"p": p, "store": store, "ok": ok, "failed": failed}


def test_no_planted_secret_is_in_any_stored_byte(planted: dict[str, Any]) -> None:
    """60+ secrets in ten places, none found in the store (gzip and tar members included); the
    count per place is printed (docs/security.md quotes it). The flow runs with S3 credentials
    and an endpoint set (a dead loopback port), whatever ran before: the client's error then
    quotes the presigned URL percent-encoded, which kept its signature in the input's reason."""
    p: Planted = planted["p"]
    places = {s.place for s in p.secrets}
    assert places == {"env", "argv", "flow-parameter", "task-parameter", "result", "error", "git-remote",
                      "git-diff", "tracked-file", "untracked-file"}
    assert len(p.secrets) >= 60
    found = scan(planted["store"], p.secrets)
    print("\n" + report(p.secrets, found))
    assert not found, report(p.secrets, found)


@repro_task
def open_signed(src: str) -> dict[str, str]:
    return {"src": src, "quoted": quote(src, safe="")}


@repro_task
def fail_quoting(src: str) -> None:
    raise OSError(f"could not fetch {quote(src, safe=':/')}; retry with {quote(quote(src, safe=''), safe='')}")


def test_a_signed_url_leaves_no_credential_in_any_record(store_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A presigned URL's signature and credential reach no stored byte, however the URL comes
    back: as the input's reason (the S3 client's error quotes the key percent-encoded), in a
    result (raw and encoded), in an error (encoded once and twice), in the parameters. S3 is set
    up as a user's AWS settings would (credentials, an endpoint: a loopback port where nothing
    listens), so the URL is really opened, offline and at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for k, v in {"AWS_ACCESS_KEY_ID": "rf-test-key-id", "AWS_SECRET_ACCESS_KEY": "rf-" + os.urandom(8).hex(),
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
                 "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"}.items():
        monkeypatch.setenv(k, v)
    import s3fs

    # an S3 filesystem cached by earlier tests (their moto endpoint) would answer instead of the
    # dead endpoint set above: the URL would come back "missing", not unhashed
    s3fs.S3FileSystem.clear_instance_cache()
    monkeypatch.setattr(s3fs.S3FileSystem, "cachable", False)
    sig, cred = os.urandom(32).hex(), "AKIA" + os.urandom(8).hex().upper()
    url = f"s3://bucket/data.csv?X-Amz-Signature={sig}&X-Amz-Credential={cred}%2F20261202%2Fus-east-1%2Fs3"
    store = store_dir
    with reproflow.record("signed") as run:
        out = open_signed(url)
        with pytest.raises(OSError):
            fail_quoting(url)
    assert out["src"] == url  # the task got the real value
    task = {t.task_name: t for t in Store(store).load_run(run.run_id).final_tasks()}
    (ref,) = task["open_signed"].inputs
    assert ref.kind == "unhashed" and ref.reason and "127.0.0.1" in ref.reason  # the client really tried
    assert task["fail_quoting"].state == "FAILED" and "could not fetch" in task["fail_quoting"].error.message
    stored = b"".join(p.read_bytes() for p in store.rglob("*") if p.is_file() and "keys" not in p.parts)
    for needle in (sig, cred):
        assert needle.encode() not in stored, needle


def test_the_run_stays_whole_and_a_signed_url_is_recorded_unhashed(planted: dict[str, Any]) -> None:
    """Every task is recorded; the task given a presigned URL ran, its input is recorded as
    unhashed with the reason and without the signature; redacted values are markers."""
    st = Store(planted["store"])
    run = st.load_run(planted["ok"])
    assert run.status == "COMPLETED"
    by_name = {t.task_name: t for t in run.final_tasks()}
    assert set(by_name) == {"login", "configure", "fetch", "fail_with_secret"}
    assert by_name["fetch"].state == "COMPLETED"
    (ref,) = by_name["fetch"].inputs
    assert ref.kind == "unhashed" and ref.reason and "X-Amz" not in ref.uri
    assert by_name["fail_with_secret"].state == "FAILED" and "[REDACTED]" in by_name["fail_with_secret"].error.message
    login = by_name["login"].parameters
    assert login["password"]["__rf__"] == "redacted" and login["password"]["reason"] == "name"
    assert login["password"]["fingerprint"].startswith("hmac-sha256:")
    assert login["user"] == "bob"
    assert by_name["configure"].parameters["config"]["retries"] == 3
    assert by_name["login"].result["n"] == 3
    assert run.record.parameters["settings"]["mode"] == "x"
    assert "--token" in run.record.argv and "[REDACTED]" in run.record.argv
    failed = st.load_run(planted["failed"])
    assert failed.status == "FAILED" and failed.end is not None and "[REDACTED]" in failed.end.error.message


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    capsys.readouterr()
    code = run_cli(app, args)
    out, err = capsys.readouterr()
    return code, out, err


def test_replay_plan_asks_for_the_redacted_parameters(planted: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan lists each redacted flow parameter with how to give it, and the secret files
    left out of the record; without them the replay stops with one line; given by --param or
    $REPROFLOW_PARAM_*, the plan says where each comes from."""
    for key in [k for k in os.environ if k.startswith("REPROFLOW_PARAM_")]:
        monkeypatch.delenv(key)
    store = str(planted["store"])
    code, out, _ = _cli(["replay", planted["ok"], "--store", store, "--dry-run", "--json"], capsys)
    plan = json.loads(out)["plan"]
    assert code == 1
    assert "password: not given (--param password=VALUE or $REPROFLOW_PARAM_PASSWORD)" in plan["secrets"]
    assert any(line.startswith("settings.token: not given") for line in plan["secrets"])
    assert any(line.startswith("dsn: not given") for line in plan["secrets"])
    assert {"credentials.json", ".env", "id_rsa", ".netrc", ".pypirc", "deploy.env", "settings.ini",
            "app_config.py", "secrets.yaml", "server.pem", "gcp-key.json"} <= set(plan["secret_files"])

    code, out, err = _cli(["replay", planted["ok"], "--store", store], capsys)
    assert code != 0 and "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "--param" in lines[0] and "is a secret that was not recorded" in lines[0], err

    monkeypatch.setenv("REPROFLOW_PARAM_DSN", "mysql://db:3306/app")
    code, out, _ = _cli(["replay", planted["ok"], "--store", store, "--dry-run", "--json",
                         "--param", "password=x", "--param", "api_token=y", "--param", "settings.token=z"], capsys)
    plan = json.loads(out)["plan"]
    assert "password: from --param" in plan["secrets"] and "dsn: from $REPROFLOW_PARAM_DSN" in plan["secrets"]
    assert not any("secret" in p for p in plan["problems"])
    assert plan["parameters"]["password"]["__rf__"] == "redacted"  # the printed plan never shows a secret


TOKEN_FLOW = textwrap.dedent(
    """
    import sys
    from prefect import flow
    from reproflow import repro_task

    @repro_task
    def use(api_token: str, n: int) -> int:
        return len(api_token) * n

    @flow(name="tokenized")
    def tokenized(api_token: str, n: int = 2) -> int:
        return use(api_token, n)

    if __name__ == "__main__":
        state = tokenized(sys.argv[1], return_state=True)
        print("RUN_ID", state.state_details.flow_run_id)
    """
)


def test_replay_with_the_secret_given_reproduces(prefect_api_env: dict[str, str], tmp_path: pathlib.Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A flow parameter redacted by name is taken from $REPROFLOW_PARAM_API_TOKEN at replay, and
    the task reproduces (its parameter hash was computed on the real value); a different value
    is not passed off as the same run."""
    repo, store = tmp_path / "repo", tmp_path / "store"
    repo.mkdir()
    (repo / "flow.py").write_text(TOKEN_FLOW)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"], cwd=repo, check=True)
    secret = "tok-" + os.urandom(12).hex()
    env = {**os.environ, **prefect_api_env, "REPROFLOW_STORE": str(store), "PREFECT_LOGGING_LEVEL": "ERROR"}
    out = subprocess.run([sys.executable, "flow.py", secret], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    run_id = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("RUN_ID"))
    assert secret.encode() not in b"".join(p.read_bytes() for p in store.rglob("*") if p.is_file())

    monkeypatch.setenv("PREFECT_API_URL", prefect_api_env["PREFECT_API_URL"])
    monkeypatch.setenv("REPROFLOW_PARAM_API_TOKEN", secret)
    code, out, err = _cli(["replay", run_id, "--store", str(store), "--in-place", "--json"], capsys)
    result = json.loads(out)
    assert code == 0 and result["reproduced"], err
    monkeypatch.setenv("REPROFLOW_PARAM_API_TOKEN", secret + "-other")
    code, out, err = _cli(["replay", run_id, "--store", str(store), "--in-place", "--json"], capsys)
    assert code != 0 and not json.loads(out)["reproduced"]
