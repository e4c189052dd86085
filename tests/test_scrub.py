"""Scrubbing parameters, results, errors and argv: by key name, by value, known secrets."""

from __future__ import annotations

import dataclasses
import json
import os
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reproflow.values import _redact, _scrub
from reproflow.values._scrub import is_redacted, scrub_argv, scrub_json, scrub_mapping, scrub_text
from reproflow.values._typed import from_typed_json, has_opaque, to_typed_json

GITHUB = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"


def _fp(value: str) -> str:
    return "hmac-sha256:" + str(len(value))


def test_values_under_secret_keys_become_markers_at_any_depth() -> None:
    """password/api_key/token/client_secret values are replaced by markers, in nested dicts,
    tuples and typed dicts alike; numbers, booleans, None and other keys are kept."""
    params = {
        "password": "hunter2-pw",
        "api_key": "k" * 20,
        "max_tokens": 512,
        "token": None,
        "config": {"db": {"password": "db-pw-123", "host": "db"}, "auth": ("bob", "tuple-pw"), "retries": 3},
        "headers": {1: "x", "Authorization": "Bearer abcdefghijklmnop"},
        "sort_key": "name",
    }
    out = scrub_mapping({k: to_typed_json(v) for k, v in params.items()}, _fp)
    dumped = json.dumps(out)
    for secret in ("hunter2-pw", "k" * 20, "db-pw-123", "tuple-pw", "abcdefghijklmnop"):
        assert secret not in dumped
    assert out["password"] == {"__rf__": "redacted", "reason": "name", "type": "str", "fingerprint": "hmac-sha256:10"}
    assert out["max_tokens"] == 512 and out["token"] is None and out["sort_key"] == "name"
    assert out["config"]["db"]["host"] == "db" and out["config"]["retries"] == 3
    assert is_redacted(out["config"]["auth"]["v"][1])
    assert has_opaque(out) and not has_opaque(out["sort_key"])


@dataclasses.dataclass
class Credentials:
    user: str = "bob"
    api_key: str = "k" * 24
    note: str = "use " + GITHUB


def test_fields_of_recorded_instances_are_scrubbed_like_dict_keys() -> None:
    """A dataclass (or attrs class, pydantic model) recorded as its fields: a secret-named field
    and a secret inside a free-text field become markers, under any key, other fields stay."""
    out = scrub_mapping({"account": to_typed_json(Credentials()), "token": to_typed_json(Credentials())}, _fp)
    dumped = json.dumps(out)
    assert "k" * 24 not in dumped and GITHUB not in dumped
    fields = out["account"]["v"]
    assert fields["user"] == "bob" and is_redacted(fields["api_key"]) and fields["note"]["shown"] == "use [REDACTED]"
    assert out["token"]["__rf__"] == "object" and is_redacted(out["token"]["v"]["user"])


def test_a_secret_in_a_free_string_becomes_a_marker_with_the_scrubbed_text() -> None:
    """A value that changes when scrubbed is never stored as a silently altered string: it is a
    marker (replay asks for it), showing the scrubbed text."""
    out = scrub_json({"note": f"use {GITHUB} now", "url": "https://bob:pw-secret-1@host/x", "plain": "/data/x.csv"})
    assert out["note"]["__rf__"] == "redacted" and out["note"]["shown"] == "use [REDACTED] now"
    assert out["url"]["shown"] == "https://host/x" and out["plain"] == "/data/x.csv"
    restored = from_typed_json(out["note"])
    assert not isinstance(restored, str)  # never handed to a replayed task as text


def test_plain_values_are_not_scanned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-task cost: paths, words, numbers and ids never reach the detect-secrets scan."""
    calls: list[str] = []
    monkeypatch.setattr(_scrub, "redact_text", lambda text: calls.append(text) or text)
    params = {"path": "/data/raw/part-0001.parquet", "name": "experiment", "lr": 0.01, "n": 10,
              "files": ["a.csv", "b.csv"], "model": {"kind": "ridge", "alpha": 1.0}, "id": "3f2a-91"}
    scrub_mapping({k: to_typed_json(v) for k, v in params.items()})
    assert calls == []


def test_argv_flags_naming_secrets_lose_their_values() -> None:
    """--token VALUE, --api-key=VALUE and tokens anywhere in argv are redacted; other flags stay."""
    argv = ["flow.py", "--token", "tok-value-1", "--api-key=key-value-2", "--out", "x.csv", GITHUB, "--verbose"]
    out = scrub_argv(argv)
    assert out == ["flow.py", "--token", "[REDACTED]", "--api-key=[REDACTED]", "--out", "x.csv", "[REDACTED]", "--verbose"]
    # the flag values are known secrets from now on
    assert scrub_text("echo tok-value-1 and key-value-2") == "echo [REDACTED] and [REDACTED]"


def test_error_text_loses_secrets_found_by_key_in_the_parameters() -> None:
    """A secret redacted from a parameter by its name is scrubbed from an error message too."""
    value = "param-secret-" + os.urandom(4).hex()
    scrub_mapping({"db_password": value})
    assert scrub_text(f"could not connect as {value}") == "could not connect as [REDACTED]"


_ALNUM = string.ascii_letters + string.digits
secret_keys = st.sampled_from(["password", "api_key", "apiKey", "token", "client_secret", "DB_PASSWORD",
                               "auth_token", "private_key", "credentials", "secret"])
plain_keys = st.sampled_from(["name", "path", "mode", "user", "sort_key", "max_tokens", "items"])
secret_values = st.text(_ALNUM + "-_.!", min_size=8, max_size=30).map(lambda s: "S3c" + s)
formatted = st.one_of(
    st.text(_ALNUM, min_size=36, max_size=36).map(lambda s: "ghp_" + s),
    st.text(_ALNUM, min_size=20, max_size=30).map(lambda s: "glpat-" + s),
    st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16).map(lambda s: "AKIA" + s),
    st.text(_ALNUM, min_size=34, max_size=34).map(lambda s: "hf_" + s),
)


@st.composite
def planted_params(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A nested parameter mapping with secrets planted under secret keys and inside free text."""
    hidden: list[str] = []

    def leaf(depth: int) -> Any:
        kind = draw(st.integers(0, 5 if depth < 3 else 3))
        if kind == 0:
            return draw(st.integers())
        if kind == 1:
            return draw(st.text(string.ascii_lowercase + "/._", max_size=12))
        if kind == 2:
            tok = draw(formatted)
            hidden.append(tok[4:])
            return draw(st.sampled_from(["{}", "key {} here", "x={}", "['{}']"])).format(tok)
        if kind == 3:
            return [leaf(depth + 1) for _ in range(draw(st.integers(0, 3)))]
        out = {}
        for _ in range(draw(st.integers(1, 3))):
            if draw(st.booleans()):
                value = draw(secret_values)
                hidden.append(value)
                out[draw(secret_keys)] = value
            else:
                out[draw(plain_keys)] = leaf(depth + 1)
        return out

    params = {f"p{i}": leaf(0) for i in range(draw(st.integers(1, 4)))}
    return params, hidden


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=planted_params())
def test_planted_secrets_never_survive_scrubbing(case: tuple[dict[str, Any], list[str]]) -> None:
    """Whatever the nesting, a secret under a secret-named key or a token of a known format in
    any string is absent from the scrubbed parameters (and from the JSON stored)."""
    params, hidden = case
    dumped = json.dumps(scrub_mapping({k: to_typed_json(v) for k, v in params.items()}))
    for secret in hidden:
        assert secret not in dumped


@pytest.fixture(autouse=True)
def _forget_known() -> Any:
    yield
    _redact.forget_known()


SIG = "9fe96b28c4d6f887aaa859804c7d7a90bbfd12a94783b4258767b5ed05667f39"
SAS = "sv/2+ab=cd" + "Qx7Lm2Pz"  # a credential holding characters that percent-encoding changes


@pytest.mark.parametrize("shape", [
    # botocore quotes the key it could not fetch: "?" and "=" become %3F and %3D
    'EndpointConnectionError: Could not connect to the endpoint URL: '
    '"http://127.0.0.1:9/bucket/data.csv%3FX-Amz-Signature%3D{sig}%26X-Amz-Credential%3DAKIAABCDEFGHIJKLMNOP"',
    "GET https://bucket.s3.amazonaws.com/data.csv%3fx-amz-signature%3d{sig} failed",  # lower-case escapes
    "could not open s3%3A%2F%2Fbucket%2Fdata.csv%3FX-Amz-Signature%3D{sig}%26v%3D1",  # a whole URL quoted
    "retrying s3://bucket/data.csv%253FX-Amz-Signature%253D{sig}",  # quoted twice
    "s3://bucket/k?X-Amz-Signature={sig}",  # and the plain form still
])
def test_url_credentials_are_scrubbed_from_free_text_in_percent_encoded_forms(shape: str) -> None:
    """An error message that quotes a presigned URL (``?``/``=``/``&`` as ``%3F``/``%3D``/``%26``,
    once or twice, any case) keeps no signature: scrub_text, an error result and a returned
    string alike."""
    text = shape.format(sig=SIG)
    assert SIG not in scrub_text(text)
    assert SIG not in json.dumps(scrub_json(to_typed_json({"msg": text, "items": [text]})))


def test_a_url_credential_seen_once_is_scrubbed_from_later_text_in_any_encoding() -> None:
    """The credential query values of a URL given as a parameter (or an input) are known secrets
    for the rest of the process: a later error that names the value alone, raw or
    percent-encoded, keeps none of it."""
    url = f"https://acct.blob.example.net/c/b.csv?sig={SAS}&se=2030"
    marker = scrub_json(to_typed_json(url))
    assert is_redacted(marker) and SAS not in json.dumps(marker)
    from urllib.parse import quote

    for form in (SAS, quote(SAS, safe=""), quote(quote(SAS, safe=""), safe="")):
        assert form not in scrub_text(f"signature {form} did not match"), form
