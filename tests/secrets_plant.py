"""Plant secrets of every kind in every place a recorded run can store, then look for them.

Used by tests/test_secrets_planted.py and runnable alone (docs/security.md)::

    python tests/secrets_plant.py            # plants, runs the flow twice, prints the counts

Every secret is random (so it is in no file of this repository), tagged with the place it was
planted and its kind. :func:`scan` reads every byte under the store (``keys/`` excepted: the
fingerprint key is the store's own), gzip members decompressed and tar archives unpacked, and
reports each secret found with the files it was found in. A token is looked for by its random
part too, so a redaction that keeps only the prefix counts as found.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import pathlib
import secrets
import string
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field

_ALNUM = string.ascii_letters + string.digits


def _r(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _pem() -> tuple[str, str]:
    body = base64.b64encode(secrets.token_bytes(96)).decode()
    return f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n", body[8:40]


@dataclass
class Secret:
    place: str  #: env, argv, flow-parameter, task-parameter, result, error, git-remote, git-diff, tracked-file, untracked-file
    kind: str  #: what it looks like (by name, GitHub token, URL password, ...)
    value: str  #: the secret as planted
    needle: str  #: what must not be found (the random part of the secret)


@dataclass
class Planted:
    repo: pathlib.Path
    env: dict[str, str]
    argv: list[str]
    values: dict[str, str]  #: name -> secret, read by the flow from $PLANT_JSON
    secrets: list[Secret] = field(default_factory=list)

    def add(self, place: str, kind: str, value: str, needle: str | None = None) -> str:
        self.secrets.append(Secret(place, kind, value, needle or value))
        return value


FLOW = textwrap.dedent(
    '''
    import json, os, sys
    from pathlib import Path
    from prefect import flow
    from reproflow import repro_task

    P = json.loads(Path(os.environ["PLANT_JSON"]).read_text())

    @repro_task
    def login(user: str, password: str, api_key: str, note: str) -> dict:
        return {"session_token": P["result_token"], "user": user, "info": "issued " + P["result_glpat"],
                "nested": {"client_secret": P["result_client_secret"]}, "n": 3}

    @repro_task
    def configure(config: dict, url: str, header: str, docker: str) -> str:
        return "configured"

    @repro_task
    def fetch(src: str) -> str:
        return "fetched"

    @repro_task
    def fail_with_secret(token: str, what: str) -> None:
        raise ValueError(
            f"login failed: token {token} rejected; password={P['err_password']}; "
            f"env said {os.environ['DB_PASSWORD']}; {what}; api_key: {P['err_api_key']}"
        )

    @flow(name="planted")
    def planted(password: str, api_token: str, settings: dict, dsn: str) -> str:
        login("bob", password, P["api_key"], "note " + P["note_ghp"])
        configure(
            {"db": {"password": P["cfg_db_password"], "host": "db"}, "aws": {"secret_access_key": P["cfg_aws_secret"]},
             "auth": ("bob", P["cfg_auth_pw"]), "retries": 3},
            P["param_url"], "Authorization: Bearer " + P["param_bearer"], P["param_docker"],
        )
        fetch(P["signed_url"])
        fail_with_secret(api_token, P["err_free_ghp"], return_state=True)
        if "--fail" in sys.argv:
            raise RuntimeError(f"flow gave up; client_secret={P['flow_err_secret']} and {P['flow_err_slack']}")
        return "done"

    if __name__ == "__main__":
        state = planted(P["flow_password"], P["flow_api_token"], {"token": P["flow_settings_token"], "mode": "x"},
                        P["flow_dsn"], return_state=True)
        print("RUN_ID", state.state_details.flow_run_id)
    '''
)


def _git(cwd: pathlib.Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gh() -> str:
    return "ghp_" + _r(36)


def plant(root: pathlib.Path) -> Planted:
    """A git repository with a flow, secret files and an uncommitted diff; the env and argv to run it."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    p = Planted(repo=repo, env={}, argv=[], values={})
    v = p.values

    # --- environment: by name
    for name in ("GITHUB_TOKEN", "DB_PASSWORD", "MY_SERVICE_API_KEY", "STRIPE_SECRET", "SLACK_BOT_TOKEN",
                 "HF_TOKEN", "OPENAI_API_KEY", "DEPLOY_PASSPHRASE", "AppClientSecret", "SESSION_COOKIE"):
        p.env[name] = p.add("env", f"by name ({name})", "Pw" + _r(18))
    p.env["AWS_SECRET_ACCESS_KEY"] = p.add("env", "by name (AWS secret key)", _r(40, _ALNUM + "/+"))
    sentry = _r(32, "0123456789abcdef")
    p.env["SENTRY_DSN"] = f"https://{p.add('env', 'by name (DSN)', sentry)}@o1.ingest.sentry.io/42"
    # --- environment: by value, under innocent names
    p.env["SETTING_AWS"] = p.add("env", "AWS key id", "AKIA" + _r(16, string.ascii_uppercase + string.digits))
    tok = gh()
    p.env["SETTING_GH"] = p.add("env", "GitHub token", tok, tok[4:])
    tok = "glpat-" + _r(20)
    p.env["SETTING_GL"] = p.add("env", "GitLab token", tok, tok[6:])
    tok = f"xoxb-{_r(12, string.digits)}-{_r(13, string.digits)}-{_r(24)}"
    p.env["SETTING_SLACK"] = p.add("env", "Slack token", tok, tok[-24:])
    hdr = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    tok = f"{hdr}.{base64.urlsafe_b64encode(json.dumps({'sub': _r(8)}).encode()).decode().rstrip('=')}.{_r(43)}"
    p.env["SETTING_JWT"] = p.add("env", "JWT", tok, tok.rsplit(".", 1)[1])
    pem, needle = _pem()
    p.env["SETTING_PEM"] = p.add("env", "private key", pem, needle)
    pw = "pa/" + _r(8) + "#" + _r(6)
    p.env["DATABASE_URL"] = f"postgres://app:{p.add('env', 'URL password with / and #', pw)}@db.internal:5432/app"
    pw = _r(14)
    p.env["PIP_EXTRA_INDEX_URL"] = f"https://ci:{p.add('env', 'index URL password', pw)}@pypi.internal.example/simple"
    tok = _r(32)
    p.env["EXTRA_HEADERS"] = f"Authorization: Bearer {p.add('env', 'Authorization header', tok)}"
    auth = base64.b64encode(f"bob:{_r(16)}".encode()).decode()
    p.env["REGISTRY_CONFIG"] = json.dumps({"auths": {"registry.example.com": {"auth": p.add("env", "Docker config auths", auth)}}})
    tok = "hf_" + _r(34)
    p.env["SETTING_HF"] = p.add("env", "Hugging Face token", tok, tok[3:])
    tok = "AIza" + _r(35)
    p.env["SETTING_GOOGLE"] = p.add("env", "Google API key", tok, tok[4:])
    tok = "sk-proj-" + _r(48)
    p.env["SETTING_OPENAI"] = p.add("env", "OpenAI project key", tok, tok[8:])
    p.env["JAVA_OPTS"] = f"-Xmx1g -Dpassword={p.add('env', 'password= in a value', _r(16))}"
    # --- S3 reachable with credentials (as when a user's AWS settings are set, or the test
    # session's S3 fixture ran before): the presigned URL below is then really opened, and the
    # client's error quotes it percent-encoded (.../data.csv%3FX-Amz-Signature%3D...). The
    # endpoint is a loopback port where nothing listens, so the error comes at once, offline.
    p.env.update({"AWS_ACCESS_KEY_ID": "rf-planted-key-id", "AWS_DEFAULT_REGION": "us-east-1",
                  "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{_free_port()}", "AWS_MAX_ATTEMPTS": "1",
                  "AWS_RETRY_MODE": "standard"})

    # --- argv
    p.argv = ["--token", p.add("argv", "--token VALUE", _r(20)), f"--api-key={p.add('argv', '--api-key=VALUE', _r(20))}"]
    tok = gh()
    p.argv.append(p.add("argv", "GitHub token", tok, tok[4:]))

    # --- flow parameters
    v["flow_password"] = p.add("flow-parameter", "password=", "Pw" + _r(16))
    v["flow_api_token"] = p.add("flow-parameter", "api_token=", _r(24))
    v["flow_settings_token"] = p.add("flow-parameter", "nested token", _r(24))
    pw = _r(12)
    v["flow_dsn"] = f"mysql://svc:{p.add('flow-parameter', 'URL password', pw)}@db:3306/app"

    # --- task parameters
    v["api_key"] = p.add("task-parameter", "api_key=", _r(32))
    tok = gh()
    v["note_ghp"] = p.add("task-parameter", "GitHub token in a str", tok, tok[4:])
    v["cfg_db_password"] = p.add("task-parameter", "config.db.password", _r(18))
    v["cfg_aws_secret"] = p.add("task-parameter", "config.aws.secret_access_key", _r(40))
    v["cfg_auth_pw"] = p.add("task-parameter", "config.auth tuple", _r(18))
    pw = _r(14)
    v["param_url"] = f"https://user:{p.add('task-parameter', 'URL password', pw)}@api.example.com/v1?token={p.add('task-parameter', 'URL token query', _r(22))}"
    v["param_bearer"] = p.add("task-parameter", "Bearer header", _r(30))
    auth = base64.b64encode(f"ci:{_r(16)}".encode()).decode()
    v["param_docker"] = json.dumps({"auths": {"ghcr.io": {"auth": p.add("task-parameter", "Docker config auths", auth)}}})
    sig = _r(64, "0123456789abcdef")
    v["signed_url"] = (f"s3://bucket/data.csv?X-Amz-Signature={p.add('task-parameter', 'signed URL signature', sig)}"
                       f"&X-Amz-Credential={p.add('task-parameter', 'signed URL credential', 'AKIA' + _r(16, string.ascii_uppercase))}")

    # --- results
    v["result_token"] = p.add("result", "session_token", _r(28))
    tok = "glpat-" + _r(20)
    v["result_glpat"] = p.add("result", "GitLab token in a str", tok, tok[6:])
    v["result_client_secret"] = p.add("result", "nested client_secret", _r(28))

    # --- errors
    v["err_password"] = p.add("error", "password= in a message", _r(18))
    tok = gh()
    v["err_free_ghp"] = p.add("error", "GitHub token in a message", tok, tok[4:])
    v["err_api_key"] = p.add("error", "api_key: in a message", _r(22))
    v["flow_err_secret"] = p.add("error", "flow error client_secret=", _r(22))
    tok = f"xoxp-{_r(12, string.digits)}-{_r(12, string.digits)}-{_r(26).lower()}"
    v["flow_err_slack"] = p.add("error", "Slack token in a flow error", tok, tok[-26:])
    # task error: the parameter token (api_token) and DB_PASSWORD are echoed: known secrets

    # --- the repository: tracked secret files
    (repo / "flow.py").write_text(FLOW)
    pem, needle = _pem()
    p.add("tracked-file", "id_rsa", pem, needle)
    (repo / "id_rsa").write_text(pem)
    sa_pem, sa_needle = _pem()
    sa = {"type": "service_account", "project_id": "demo", "private_key_id": p.add("tracked-file", "SA private_key_id", _r(40, "0123456789abcdef")),
          "private_key": sa_pem, "client_email": "svc@demo.iam.gserviceaccount.com"}
    p.add("tracked-file", "SA private key", sa_pem, sa_needle)
    (repo / "credentials.json").write_text(json.dumps(sa))
    (repo / ".netrc").write_text(f"machine api.example.com login bob password {p.add('tracked-file', '.netrc', _r(18))}\n")
    (repo / ".pypirc").write_text(f"[pypi]\nusername = __token__\npassword = {p.add('tracked-file', '.pypirc', 'pypi-' + _r(60))}\n")
    (repo / "deploy.env").write_text(f"DEPLOY_KEY={p.add('tracked-file', 'deploy.env', _r(24))}\n")
    (repo / "docker").mkdir()
    auth = base64.b64encode(f"bot:{_r(16)}".encode()).decode()
    (repo / "docker" / "config.json").write_text(json.dumps({"auths": {"reg.io": {"auth": p.add("tracked-file", "docker/config.json auths", auth)}}}))
    (repo / ".env").write_text(f"SECRET_A={p.add('tracked-file', '.env', _r(24))}\n")
    (repo / "settings.ini").write_text("[db]\nhost = db\n")
    (repo / "app_config.py").write_text("DEBUG = False\n")
    _git(repo, "init", "-q", "-b", "main")
    pw = "rem/" + _r(10) + "#x"
    _git(repo, "remote", "add", "origin", f"https://deploy:{p.add('git-remote', 'remote password with / and #', pw)}@git.example.com/team/repo.git")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "init")
    # --- uncommitted edits (the git diff)
    with (repo / ".env").open("a") as fh:
        fh.write(f"API_TOKEN={p.add('git-diff', 'tracked .env edited', _r(24))}\n")
    with (repo / "settings.ini").open("a") as fh:
        fh.write(f"password = {p.add('git-diff', 'settings.ini password', _r(18))}\n")
    tok = gh()
    (repo / "app_config.py").write_text(f'DEBUG = False\nGITHUB = "{p.add("git-diff", "GitHub token in code", tok, tok[4:])}"\n')
    # --- untracked files
    (repo / ".env.local").write_text(f"LOCAL_SECRET={p.add('untracked-file', '.env.local', _r(24))}\n")
    (repo / "secrets.yaml").write_text(f"db_password: {p.add('untracked-file', 'secrets.yaml', _r(24))}\n")
    pem, needle = _pem()
    (repo / "server.pem").write_text(p.add("untracked-file", "server.pem", pem, needle))
    tok = "hf_" + _r(34)
    (repo / "notes.txt").write_text(f"the model token is {p.add('untracked-file', 'HF token in notes.txt', tok, tok[3:])}\n")
    key_pem, key_needle = _pem()
    (repo / "gcp-key.json").write_text(json.dumps({"type": "service_account", "private_key": p.add("untracked-file", "SA JSON by content", key_pem, key_needle)}))

    (root / "plant.json").write_text(json.dumps(v))
    p.env["PLANT_JSON"] = str(root / "plant.json")
    return p


def run_flow(p: Planted, store: pathlib.Path, api_env: dict[str, str], *, fail: bool = False) -> str | None:
    """Run the planted flow in a subprocess (the planted env and argv); its run id."""
    env = {**os.environ, **api_env, **p.env, "REPROFLOW_STORE": str(store), "PREFECT_LOGGING_LEVEL": "ERROR"}
    argv = [sys.executable, "flow.py", *p.argv, *(["--fail"] if fail else [])]
    out = subprocess.run(argv, cwd=p.repo, env=env, capture_output=True, text=True, timeout=600)
    ids = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("RUN_ID")]
    if not ids:
        raise AssertionError(f"the planted flow did not run: {out.stderr[-3000:]}")
    return ids[0]


def _contents(store: pathlib.Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(store.rglob("*")):
        if not path.is_file() or "keys" in path.relative_to(store).parts:
            continue
        data = path.read_bytes()
        name = str(path.relative_to(store))
        yield name, data
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError):
                continue
            yield name + " (gunzipped)", data
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for m in tar.getmembers():
                    f = tar.extractfile(m) if m.isfile() else None
                    if f is not None:
                        yield f"{name}!{m.name}", f.read()
        except (tarfile.TarError, OSError, EOFError):
            pass


def scan(store: pathlib.Path, planted: list[Secret]) -> dict[str, list[str]]:
    """needle -> the stored files (archive members) it was found in; only found ones."""
    found: dict[str, list[str]] = {}
    needles = {s.needle.encode() for s in planted}
    # JSON escapes a few characters: look for the escaped forms too
    escaped = {s.needle: json.dumps(s.needle)[1:-1].encode() for s in planted}
    for name, data in _contents(store):
        for s in planted:
            if s.needle.encode() in data or escaped[s.needle] in data:
                found.setdefault(s.needle, []).append(name)
    assert needles
    return found


def report(planted: list[Secret], found: dict[str, list[str]]) -> str:
    places = sorted({s.place for s in planted})
    lines = [f"secrets planted: {len(planted)}, found in the store: {len(found)}"]
    for place in places:
        mine = [s for s in planted if s.place == place]
        lines.append(f"  {place:15} planted {len(mine):3}  found {sum(s.needle in found for s in mine)}")
    for s in planted:
        if s.needle in found:
            lines.append(f"  LEAK {s.place}/{s.kind}: {', '.join(found[s.needle][:3])}")
    return "\n".join(lines)


def main() -> int:  # pragma: no cover - the docs' command
    import tempfile

    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=300):
        api = {"PREFECT_API_URL": str(PREFECT_API_URL.value())}
        root = pathlib.Path(tmp)
        p = plant(root)
        store = root / "store"
        run_flow(p, store, api)
        run_flow(p, store, api, fail=True)
        found = scan(store, p.secrets)
        print(report(p.secrets, found))
        return 1 if found else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
