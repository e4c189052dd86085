"""Secret redaction: rules by name and by value (detect-secrets), environ records, free text."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reproflow.values import _redact
from reproflow.values._redact import (
    DEFAULT_RULES,
    REDACTED,
    detector_setup_ms,
    first_reason,
    high_entropy,
    json_secret_keys,
    redact_bytes,
    redact_environ,
    redact_text,
    secret_name,
    url_credentials,
)
from reproflow.capture.environment import capture_environment
from reproflow.store import Store

AWS = "AKIAIOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"
SLACK = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAwJ3kexample\nq8h2Xyz==\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    "name",
    ["GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "MYSQL_PWD", "OPENAI_API_KEY", "apiKey",
     "SENTRY_DSN", "HF_TOKEN", "AWS_SESSION_TOKEN", "NPM_AUTH", "DBPASSWORD", "SECRET", "app.secret",
     "AZURE_STORAGE_CONNECTION_STRING", "GH_PAT", "COOKIE_SALT", "PRIVATE_KEY_PATH", "ACCESSKEY"],
)
def test_secret_names(name: str) -> None:
    """Names that say 'secret' are flagged, whatever the value."""
    assert secret_name(name, "harmless") == "name"


@pytest.mark.parametrize(
    "name",
    ["PATH", "HOME", "KEYBOARD_LAYOUT", "PWD", "OLDPWD", "SSH_AUTH_SOCK", "XDG_SESSION_TYPE",
     "DBUS_SESSION_BUS_ADDRESS", "TOKENIZERS_PARALLELISM", "MONKEYPATCH", "PASSAGE_DIR", "AUTHOR",
     "GIT_AUTHOR_NAME", "PYTHONHASHSEED", "LANG", "KEYMAP", "COMPASS_MODE", "SPATH"],
)
def test_harmless_names(name: str) -> None:
    """Words merely containing KEY/PASS/AUTH/PWD, and well-known harmless names, are not flagged."""
    assert secret_name(name, "x") is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (AWS, "detect-secrets:AWS Access Key"),
        (GITHUB, "detect-secrets:GitHub Token"),
        (SLACK, "detect-secrets:Slack Token"),
        (STRIPE, "detect-secrets:Stripe Access Key"),
        (JWT, "detect-secrets:JSON Web Token"),
        (PRIVATE_KEY, "detect-secrets:Private Key"),
        ("https://bob:hunter22@db.example.com/x", "url-credentials"),
        ("s3://bucket/key?X-Amz-Signature=abcdef&v=1", "url-credentials"),
        ("-Dfoo=1 password=hunter22", "detect-secrets:Secret Keyword"),
        ("q8Zr7vX2LmP4tN9wK3sB6yD1fH5jG0cA", "high-entropy:base64"),
        ("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "high-entropy:hex"),
    ],
)
def test_secret_values_under_innocent_names(value: str, reason: str) -> None:
    """Value rules catch each kind of secret even when the name says nothing."""
    assert first_reason("SETTING", value) == reason


@pytest.mark.parametrize(
    "value",
    ["/usr/local/bin:/usr/bin:/bin", "en_US.UTF-8", "xterm-256color", "/home/user/projects/demo",
     "https://pypi.org/simple", "git@github.com:o/r.git", "1", "true", "Europe/Paris",
     "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages", "s3://bucket/data/part-0001.parquet",
     "--max-old-space-size=4096", "postgres://db.internal:5432/app"],
)
def test_ordinary_values_pass(value: str) -> None:
    """Ordinary configuration values are kept as they are."""
    assert first_reason("SETTING", value) is None


@pytest.mark.parametrize("name", ["GITHUB_SHA", "CI_COMMIT_SHA", "INVOCATION_ID", "IMAGE_DIGEST", "BUILD_UUID",
                                  "PYTEST_XDIST_TESTRUNUID"])
def test_identifier_names_keep_random_looking_values(name: str) -> None:
    """Commit SHAs and ids under identifier names are kept; the same value under another name is not."""
    sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"
    assert first_reason(name, sha) is None
    assert first_reason("SETTING", sha) == "high-entropy:hex"


def test_real_environment_keeps_common_variables() -> None:
    """PATH, HOME, LANG and the like of this very process are recorded verbatim."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TERM", "SHELL", "USER", "PWD")}
    records = redact_environ(env)
    assert {k: r.value for k, r in records.items()} == env
    assert not any(r.redacted for r in records.values())


def test_redact_environ_records_and_fingerprints(tmp_path: pathlib.Path) -> None:
    """Redacted values become fingerprints under the store's key; URL-only secrets keep the stripped URL."""
    store = Store(tmp_path / "store")
    env = {
        "GITHUB_TOKEN": GITHUB,
        "DATABASE_URL": "postgres://app:pw-hunter22@db:5432/app",
        "DB_PASSWORD_URL": "postgres://app:pw-hunter22@db:5432/app",
        "PLAIN": "value",
        "EMPTY_TOKEN": "",
    }
    records = redact_environ(env, fingerprint=store.fingerprint)
    token = records["GITHUB_TOKEN"]
    assert (token.value, token.redacted, token.reason) == (None, True, "name")
    assert token.fingerprint == store.fingerprint(GITHUB) and token.fingerprint.startswith("hmac-sha256:")
    url = records["DATABASE_URL"]
    assert (url.value, url.redacted, url.reason) == ("postgres://db:5432/app", True, "url-credentials")
    assert records["DB_PASSWORD_URL"].value is None  # the name alone forbids keeping anything
    assert records["PLAIN"].value == "value" and not records["PLAIN"].redacted
    assert records["EMPTY_TOKEN"].value == "" and not records["EMPTY_TOKEN"].redacted
    # same secret, same fingerprint; another secret, another one; another store, another key
    again = redact_environ({"X_TOKEN": GITHUB, "Y_TOKEN": GITHUB + "x"}, fingerprint=store.fingerprint)
    assert again["X_TOKEN"].fingerprint == token.fingerprint != again["Y_TOKEN"].fingerprint
    other = Store(tmp_path / "other")
    assert other.fingerprint(GITHUB) != token.fingerprint


def test_no_fingerprint_callable_keeps_no_trace() -> None:
    """Without the store's keyed hash, nothing derived from the secret is kept."""
    records = redact_environ({"API_TOKEN": GITHUB})
    assert records["API_TOKEN"].fingerprint is None and records["API_TOKEN"].value is None


def test_rules_share_one_signature_and_are_replaceable() -> None:
    """Every default rule is (name, value) -> reason | None; callers can pass their own list."""
    for rule in DEFAULT_RULES:
        assert rule("PATH", "/usr/bin") is None
    assert url_credentials("X", "https://u:p@h/") == "url-credentials"
    assert high_entropy("X", "short") is None
    custom = redact_environ({"A": "internal-codename"}, rules=[lambda n, v: "custom" if "codename" in v else None])
    assert custom["A"].redacted and custom["A"].reason == "custom"


def test_detect_secrets_setup_is_measured_once() -> None:
    """Loading detect-secrets is timed, and happens once per process."""
    first_reason("X", AWS)
    setup = detector_setup_ms()
    assert setup is not None and setup > 0
    _redact.warm_up(background=False)
    first_reason("Y", GITHUB)
    assert detector_setup_ms() == setup


DIFF = f"""diff --git a/settings.py b/settings.py
--- a/settings.py
+++ b/settings.py
@@ -1,3 +1,8 @@
 import os
+AWS_KEY = "{AWS}"
+password = "correct-horse-battery"
+REMOTE = "https://deploy:hunter22@git.example.com/o/r.git"
+CHECKSUM = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
+TOKEN_JWT = "{JWT}"
 def main():
     return 1
diff --git a/id_key b/id_key
+{PRIVATE_KEY.replace(chr(10), chr(10) + "+")}
diff --git a/app.ini b/app.ini
+password = plain-ini-secret
+timeout = 30
"""


def test_redact_text_on_a_diff() -> None:
    """Secrets in a diff are replaced; private-key blocks go whole; ordinary lines and hashes stay."""
    out = redact_text(DIFF)
    for secret in (AWS, "correct-horse-battery", "hunter22", JWT, "MIIEowIBAAKCAQEAwJ3kexample", "q8h2Xyz",
                   "plain-ini-secret"):
        assert secret not in out
    assert REDACTED in out
    assert "https://git.example.com/o/r.git" in out
    assert "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" in out
    assert "+timeout = 30" in out and "     return 1" in out


def test_redact_bytes_keeps_undecodable_bytes() -> None:
    """Binary content passes through byte-for-byte except the secrets."""
    data = b"\xff\xfe binary " + AWS.encode() + b" \x00\x01"
    out = redact_bytes(data)
    assert AWS.encode() not in out and out.startswith(b"\xff\xfe binary ") and out.endswith(b" \x00\x01")
    assert redact_bytes(b"nothing to see\n") == b"nothing to see\n"


# --------------------------------------------------------------------------------------------
# Property: a planted secret never reaches the dumped Environment
# --------------------------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits


def _b64url(obj: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


aws_keys = st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16).map(lambda s: "AKIA" + s)
github_tokens = st.builds(
    lambda p, s: f"{p}_{s}", st.sampled_from(["ghp", "gho", "ghu", "ghs", "ghr"]),
    st.text(_ALNUM, min_size=36, max_size=36),
)
private_keys = st.binary(min_size=48, max_size=200).map(
    lambda b: "-----BEGIN PRIVATE KEY-----\n" + base64.b64encode(b).decode() + "\n-----END PRIVATE KEY-----"
)
jwts = st.builds(
    lambda sub, sig: f"{_b64url({'alg': 'HS256', 'typ': 'JWT'})}.{_b64url({'sub': sub})}.{sig}",
    st.text(_ALNUM, min_size=8, max_size=20),
    st.text(_ALNUM + "-_", min_size=43, max_size=43),
)
passwords = st.text(_ALNUM + "-_.~!$*", min_size=10, max_size=24).map(lambda s: "Pw" + s)


@st.composite
def planted(draw: st.DrawFn) -> tuple[dict[str, str], list[str]]:
    """An environment with one secret planted somewhere, and the substrings that must not leak."""
    kind = draw(st.sampled_from(["aws", "github", "key", "jwt", "url", "query", "index"]))
    name = draw(st.sampled_from(["FOO", "SETTING", "CONFIG_VALUE", "MY_APP_OPTS", "X"]))
    prefix = draw(st.sampled_from(["", "--flag ", "value: ", "a=1 b="]))
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent-home", "XDG_CONFIG_DIRS": "/nonexistent"}
    if kind in ("aws", "github", "key", "jwt"):
        secret = draw({"aws": aws_keys, "github": github_tokens, "key": private_keys, "jwt": jwts}[kind])
        env[name] = prefix + secret
        must_hide = [secret] if kind != "key" else [secret.split("\n")[1]]
        if kind == "jwt":
            must_hide.append(secret.rsplit(".", 1)[1])
    elif kind == "url":
        pw = draw(passwords)
        env[name] = f"{prefix}https://user:{pw}@example.com/repo.git"
        must_hide = [pw]
    elif kind == "query":
        tok = draw(passwords)
        env[name] = f"{prefix}https://example.com/data.csv?token={tok}&v=1"
        must_hide = [tok]
    else:
        pw = draw(passwords)
        env[draw(st.sampled_from(["PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL"]))] = (
            f"https://ci:{pw}@pypi.internal.example/simple"
        )
        must_hide = [pw]
    return env, must_hide


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=planted())
def test_planted_secret_never_in_environment_json(case: tuple[dict[str, str], list[str]], tmp_path: pathlib.Path) -> None:
    """Whatever secret is planted (AWS key, GitHub token, private key, JWT, URL password or token,
    index URL password), no part of it appears anywhere in the dumped Environment JSON."""
    environ, must_hide = case
    env = capture_environment(environ=environ, fingerprint=Store(tmp_path / "store").fingerprint)
    dumped = env.model_dump_json()
    for secret in must_hide:
        assert secret not in dumped
    assert any(v.redacted for v in env.env_vars.values())


# --------------------------------------------------------------------------------------------
# Whole tokens, never a prefix; formats detect-secrets misses; configurable names
# --------------------------------------------------------------------------------------------

GITLAB = "glpat-" + "xY9zA8bC7dE6fG5hI4jK"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"clone with {GITHUB} please", GITHUB[4:]),
        (f"clone with {GITLAB} please", GITLAB[6:]),
        ("github_pat_" + "11ABCDEFG0" + "a" * 20 + "_" + "B" * 59, "a" * 20 + "_" + "B" * 59),
        ("key AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
        ("hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"),
        ("OPENAI=sk-proj-" + "Q" * 10 + "w" * 30, "Q" * 10 + "w" * 30),
        ("postgres://app:pa/ss#w0rd99@db:5432/app", "pa/ss#w0rd99"),
        ("Authorization: Bearer abcDEF123456ghiJKL789", "abcDEF123456ghiJKL789"),
        ('{"auths": {"reg.io": {"auth": "Ym9iOmh1bnRlcjIyMjI="}}}', "Ym9iOmh1bnRlcjIyMjI="),
        ("ValueError: login failed, token=tok3n-Value-77", "tok3n-Value-77"),
        ("run --api-key s3cr3t-V4lue --fast", "s3cr3t-V4lue"),
        ("machine example.com login bob password hunter2-netrc", "hunter2-netrc"),
    ],
)
def test_redact_text_replaces_the_whole_secret(text: str, secret: str) -> None:
    """The whole secret goes, never only its prefix (detect-secrets reports `ghp` as GitHub's
    match), including formats and places detect-secrets does not cover."""
    out = redact_text(text)
    assert secret not in out and out != text


@pytest.mark.parametrize(
    "text",
    ["max_tokens=512", "password = get_password()", "https://host:8080/pkg@1.0", "token = os.environ['X']",
     "sort_key=name", "s3://bucket/data/part-0001.parquet", "see https://pypi.org/simple"],
)
def test_redact_text_keeps_ordinary_text(text: str) -> None:
    """Numbers under token-ish names, code that reads a secret, ports and plain URLs stay."""
    assert redact_text(text) == text


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("DATABASE_URL", "postgres://app:pa/ss#word@db:5432/app", "url-credentials"),
        ("EXTRA_HEADERS", "Authorization: Bearer abcdefghijklmnop123456", "pattern"),
        ("REGISTRY", '{"auths": {"reg.io": {"auth": "Ym9iOmh1bnRlcjI="}}}', "secret-assignment"),
        ("SA", '{"type": "service_account", "private_key_id": "abc"}', "detect-secrets:Secret Keyword"),
        ("CFG", '{"client": {"api_token": "abcdef12"}}', "secret-assignment"),
    ],
)
def test_environment_values_the_old_rules_kept(name: str, value: str, reason: str) -> None:
    """URLs whose password holds / or #, Authorization headers, Docker configs with auths and
    JSON with secret-named keys are redacted from the environment."""
    records = redact_environ({name: value})
    assert records[name].redacted and records[name].reason == reason
    assert records[name].value is None or "ss#word" not in records[name].value
    assert json_secret_keys(name, value) or name in ("DATABASE_URL", "EXTRA_HEADERS")


def test_environment_secrets_are_scrubbed_elsewhere() -> None:
    """A value redacted from the environment is replaced wherever else it shows up."""
    value = "Known-" + os.urandom(8).hex()
    redact_environ({"SERVICE_PASSWORD": value})
    assert redact_text(f"connect failed with {value}!") == f"connect failed with {REDACTED}!"


def test_secret_names_are_configurable(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    """$REPROFLOW_SECRET_NAMES and [tool.reproflow] secret-names add words (or remove them with -)."""
    from reproflow.values import _secret_names

    (tmp_path / "pyproject.toml").write_text('[tool.reproflow]\nsecret-names = ["license", "-auth"]\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REPROFLOW_SECRET_NAMES", "cert_pin")
    _secret_names.reload()
    try:
        assert _secret_names.is_secret_key("license") and _secret_names.is_secret_key("my_cert_pin")
        assert not _secret_names.is_secret_key("auth") and _secret_names.is_secret_key("token")
        assert secret_name("APP_LICENSE", "x") == "name"
        assert _secret_names.settings().sources == (str(tmp_path / "pyproject.toml"), "$REPROFLOW_SECRET_NAMES")
    finally:
        monkeypatch.undo()
        _secret_names.reload()
    assert not _secret_names.is_secret_key("license") and _secret_names.is_secret_key("auth")
