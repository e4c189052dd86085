"""Secret-bearing files, by name and by content: out of source snapshots and git diffs."""

from __future__ import annotations

import gzip
import io
import json
import pathlib
import tarfile
from collections.abc import Callable

import pytest

from reproflow.capture.git import capture_git
from reproflow.capture.source import snapshot_source
from reproflow.capture._secret_files import drop_secret_files, is_secret_file, secret_content

from .conftest import git

MakeRepo = Callable[..., pathlib.Path]

PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
GITHUB = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"


@pytest.mark.parametrize("name", ["credentials.json", "gcp/credentials.json", "client_secret_123.json",
                                  "service-account.json", "prod.env", ".env.local", "secrets.yaml", "key.ppk",
                                  ".pgpass", ".pypirc", ".netrc", "id_ed25519"])
def test_secret_names(name: str) -> None:
    assert is_secret_file(name)


@pytest.mark.parametrize("name", ["flow.py", ".env.example", "settings.yaml", "config.json", "environment.yml",
                                  "tokenizer.json", "keys.py"])
def test_ordinary_names(name: str) -> None:
    assert not is_secret_file(name)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("deploy/key.txt", PEM, "private key"),
        ("gcp.json", json.dumps({"type": "service_account", "project_id": "p"}), "cloud service-account key"),
        ("docker.json", '{"auths": {"r.io": {"auth": "Ym9iOng="}}}', "Docker config with auths"),
        ("hosts", "machine api.example.com login bob password hunter2\n", "netrc credentials"),
        ("app.cfg", "[s3]\naws_secret_access_key = abc\n", "credentials file"),
        ("config.py", f'TOKEN = "{GITHUB}"\n', "token (ghp_...)"),
    ],
)
def test_secret_content(name: str, data: str, reason: str) -> None:
    assert secret_content(data.encode(), name) == reason


def test_code_that_assigns_a_password_is_not_a_credentials_file() -> None:
    """`password = os.environ[...]` in code is not a stored credential; in a config file it is."""
    assert secret_content(b"password = os.environ['PW']\n", "db.py") is None
    assert secret_content(b"password = hunter2\n", "db.ini") == "credentials file"


def _members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_tracked_and_untracked_secret_files_stay_out_of_the_snapshot(make_repo: MakeRepo) -> None:
    """A tracked credentials.json (by name) and files holding keys or tokens (by content) are left
    out of the snapshot and listed with the reason; ordinary files stay."""
    repo = make_repo({"flow.py": "pass\n", "credentials.json": "{}", "keys/deploy.txt": PEM,
                      "conf.py": f"T = '{GITHUB}'\n", "docker/config.json": '{"auths": {"r": {"auth": "eA=="}}}'})
    (repo / "notes.md").write_text(f"token {GITHUB}\n")
    state, _ = capture_git(repo)
    snap, archive = snapshot_source(str(repo), git=state, entry_file=None)
    assert archive is not None and sorted(_members(archive)) == ["flow.py"]
    assert set(snap.skipped) == {"credentials.json", "keys/deploy.txt", "conf.py", "docker/config.json", "notes.md"}
    assert all(reason.startswith("secret file") for reason in snap.skipped.values())


def test_a_secret_file_leaves_the_diff_whole(make_repo: MakeRepo) -> None:
    """A tracked .env (and a file whose new lines hold a key) with uncommitted edits is dropped
    from the stored diff, section and all; the other files' changes stay."""
    repo = make_repo({"flow.py": "x = 1\n", ".env": "A=1\n", "settings.ini": "[db]\n"})
    (repo / ".env").write_text("A=1\nAPI_TOKEN=very-secret-value-1\n")
    (repo / "settings.ini").write_text("[db]\npassword = very-secret-value-2\n")
    (repo / "flow.py").write_text("x = 2\n")
    _, diff = capture_git(repo)
    assert diff is not None and b"very-secret-value-1" in diff
    kept, dropped = drop_secret_files(diff)
    assert dropped == [".env", "settings.ini"]
    assert b"very-secret" not in kept and b"+x = 2" in kept and kept.startswith(b"diff --git a/flow.py")
    git(repo, "checkout", "flow.py")
    kept, dropped = drop_secret_files(capture_git(repo)[1] or b"")
    assert kept == b"" and dropped == [".env", "settings.ini"]
