"""Redaction of secrets in environment variables and free text, before anything is stored.

Every rule is a small callable with one signature, ``Rule = Callable[[name, value], reason | None]``:
it returns why a value must not be stored (``"name"``, ``"url-credentials"``,
``"detect-secrets:AWS Access Key"``, ...) or None. :data:`DEFAULT_RULES` runs, cheapest first:

1. :func:`secret_name` -- the variable's *name* says it holds a secret (``*_TOKEN``, ``*_PASSWORD``,
   ``*_API_KEY``, ``SENTRY_DSN``...), split into words so ``KEYBOARD`` or ``PATH`` never match,
   with a short allowlist of well-known harmless names (``PWD``, ``SSH_AUTH_SOCK``...);
2. :func:`url_credentials` -- a URL in the value carries ``user:password@`` or a credential query
   parameter (the project-wide :func:`reproflow.values._urls.strip_credentials` decides);
3. one rule per plugin of the maintained ``detect-secrets`` library (AWS keys, private keys, JWTs,
   GitHub/GitLab/Slack/Stripe/OpenAI/PyPI/npm tokens, basic-auth URLs, Azure keys, ...), plus its
   keyword detector for ``password=...`` inside a value;
4. :func:`high_entropy` -- the whole value is one long random-looking base64 or hex token
   (detect-secrets' Shannon-entropy measure and limits).

:func:`redact_environ` keeps a flagged value only as a keyed fingerprint (the store's HMAC), so a
later diff can tell that a secret changed without storing it. When the only problem is credentials
inside URLs, it keeps the value with the URLs stripped (and still marks it redacted).

``detect-secrets`` costs a few hundred ms to import (it pulls in ``requests``); its plugins are
loaded once per process, on first use or ahead of time in a background thread (:func:`warm_up`),
and the time it took is kept (:func:`detector_setup_ms`).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ._urls import PORT, USERINFO, strip_credentials
from ._secret_names import is_secret_env_name, is_secret_key, name_parts
from ..records import EnvVar
from .. import _forksafe

#: A redaction rule: ``(name, value) -> reason`` when the value must not be stored, else None.
Rule = Callable[[str, str], "str | None"]

#: The marker that replaces a secret inside free text.
REDACTED = "[REDACTED]"

# --------------------------------------------------------------------------------------------
# By name
# --------------------------------------------------------------------------------------------

def _name_parts(name: str) -> list[str]:
    return name_parts(name)


def secret_name(name: str, value: str) -> str | None:
    """Flag a variable whose *name* says it holds a secret (see :mod:`reproflow.values._secret_names`,
    whose list is configurable).

    >>> secret_name("GITHUB_TOKEN", "x"), secret_name("KEYBOARD_LAYOUT", "x"), secret_name("PWD", "/")
    ('name', None, None)
    """
    return "name" if is_secret_env_name(name) else None


# --------------------------------------------------------------------------------------------
# Credentials inside URLs
# --------------------------------------------------------------------------------------------

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>`]+")
_USERINFO, _PORT = USERINFO, PORT
#: A query field of a percent-encoded URL (``%3Fkey%3Dvalue`` or ``%26key%3Dvalue``, encoded once
#: or more, any case), as error messages quote a key they could not fetch: botocore turns
#: ``s3://b/k?X-Amz-Signature=...`` into ``.../k%3FX-Amz-Signature%3D...``.
_ENCODED_FIELD = re.compile(
    r"(?i)%(?:25)*(?:3F|26)(?P<k>[A-Za-z0-9_.\-]{2,40})%(?:25)*3D(?P<v>(?:(?!%(?:25)*26)[^\s\"'<>`&;,)\]}])*)"
)


def _drop_userinfo(m: re.Match[str]) -> str:
    return m.group(0) if _PORT.match(m.group("pw")) else m.group("scheme")


def _drop_and_remember_userinfo(m: re.Match[str]) -> str:
    if not _PORT.match(m.group("pw")):
        remember_url_value(m.group("pw"))
    return _drop_userinfo(m)


def _encoded_secrets(text: str) -> list[tuple[int, int]]:
    """Spans of the credential values in percent-encoded query fields of ``text``."""
    from ._urls import _SECRET_QUERY

    return [m.span("v") for m in _ENCODED_FIELD.finditer(text) if m.group("v") and _SECRET_QUERY.match(m.group("k"))]


def _decoded(value: str) -> str:
    """``value`` percent-decoded until it no longer changes (a field may be quoted twice)."""
    from urllib.parse import unquote

    for _ in range(4):
        plain = unquote(value)
        if plain == value:
            break
        value = plain
    return value


def url_secrets(text: str) -> list[str]:
    """The passwords and credential query values of every URL in ``text`` (to scrub elsewhere),
    percent-encoded query fields included (decoded)."""
    from urllib.parse import unquote_plus, urlsplit

    from ._urls import _SECRET_QUERY

    found = [m.group("pw") for m in _USERINFO.finditer(text) if not _PORT.match(m.group("pw"))]
    if "%" in text:
        for start, end in _encoded_secrets(text):
            found.append(_decoded(text[start:end]))
    for m in _URL.finditer(_USERINFO.sub(_drop_userinfo, text)):
        try:
            query = urlsplit(m.group(0)).query
        except ValueError:
            continue
        for field in query.split("&"):  # the value as written and as decoded (``+`` is a space)
            key, _, raw = field.partition("=")
            if raw and _SECRET_QUERY.match(unquote_plus(key)):
                found += [raw, unquote_plus(raw)]
    return found


def remember_url_value(value: str) -> None:
    """Remember a credential found in a URL as a known secret, with the forms percent-encoding
    gives it (once and twice, ``/`` kept or not), so a later message that quotes it is scrubbed."""
    from urllib.parse import quote

    once = quote(value, safe="")
    remember(value, quote(value), once, quote(once, safe=""))


def remember_url_secrets(text: str) -> None:
    """Remember the credentials of every URL in ``text`` (:func:`remember_url_value`), before
    anything that may quote them (an error of the library that opens the URL) is stored."""
    for value in url_secrets(text):
        remember_url_value(value)


def _strip_url(m: re.Match[str]) -> str:
    url = m.group(0)
    clean = strip_credentials(url)
    if clean != url:
        remember_url_secrets(url)
    return clean


def strip_urls(text: str) -> str:
    """``text`` with ``user:password@`` removed from every URL (passwords holding ``/`` or ``#``
    included), every URL passed through :func:`strip_credentials` (credential query fields), and
    the credential values of percent-encoded query fields (``%3FX-Amz-Signature%3D...``)
    replaced. Every credential removed is remembered (:func:`remember_url_value`): the same
    value elsewhere in later text, in any of its encoded forms, is scrubbed too."""
    if "%" in text:
        spans = _encoded_secrets(text)
        for start, end in spans:
            remember(text[start:end])
            remember_url_value(_decoded(text[start:end]))
        text = _apply(text, spans)
    if "://" not in text:
        return text
    text = _USERINFO.sub(_drop_and_remember_userinfo, text)
    return _URL.sub(_strip_url, text)


def url_credentials(name: str, value: str) -> str | None:
    """Flag a value holding a URL with ``user:password@`` or a credential query parameter."""
    if "://" not in value:
        return None
    return "url-credentials" if strip_urls(value) != value else None


# --------------------------------------------------------------------------------------------
# detect-secrets plugins, loaded once per process
# --------------------------------------------------------------------------------------------

#: detect-secrets' regex detectors used on every value and on free text: (module, class).
#: Left out: IPPublicDetector (a public IP is not a secret) and the entropy plugins, which
#: :func:`high_entropy` applies to whole values only.
_PLUGINS: tuple[tuple[str, str], ...] = (
    ("aws", "AWSKeyDetector"),
    ("private_key", "PrivateKeyDetector"),
    ("jwt", "JwtTokenDetector"),
    ("github_token", "GitHubTokenDetector"),
    ("gitlab_token", "GitLabTokenDetector"),
    ("slack", "SlackDetector"),
    ("stripe", "StripeDetector"),
    ("openai", "OpenAIDetector"),
    ("pypi_token", "PypiTokenDetector"),
    ("npm", "NpmDetector"),
    ("basic_auth", "BasicAuthDetector"),
    ("azure_storage_key", "AzureStorageKeyDetector"),
    ("artifactory", "ArtifactoryDetector"),
    ("cloudant", "CloudantDetector"),
    ("discord", "DiscordBotTokenDetector"),
    ("ibm_cloud_iam", "IbmCloudIamDetector"),
    ("ibm_cos_hmac", "IbmCosHmacDetector"),
    ("mailchimp", "MailchimpDetector"),
    ("sendgrid", "SendGridDetector"),
    ("softlayer", "SoftlayerDetector"),
    ("square_oauth", "SquareOAuthDetector"),
    ("telegram_token", "TelegramBotTokenDetector"),
    ("twilio", "TwilioKeyDetector"),
)


class _Detectors:
    """detect-secrets plugin instances, built once per process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = _forksafe.lock()
        self._plugins: dict[str, Any] | None = None
        self.setup_ms: float | None = None

    def get(self) -> dict[str, Any]:
        plugins = self._plugins
        if plugins is not None:
            return plugins
        with self._lock:
            if self._plugins is None:
                t0 = time.perf_counter()
                import importlib

                loaded: dict[str, Any] = {}
                for module, cls in _PLUGINS:
                    mod = importlib.import_module(f"detect_secrets.plugins.{module}")
                    loaded[cls] = getattr(mod, cls)()
                for module, cls in (("keyword", "KeywordDetector"),
                                    ("high_entropy_strings", "Base64HighEntropyString"),
                                    ("high_entropy_strings", "HexHighEntropyString")):
                    mod = importlib.import_module(f"detect_secrets.plugins.{module}")
                    loaded[cls] = getattr(mod, cls)()
                self._plugins = loaded
                self.setup_ms = (time.perf_counter() - t0) * 1000
            return self._plugins


_DETECTORS = _Detectors()
_warm_thread: threading.Thread | None = None


def _after_fork_in_child() -> None:
    # the warm-up thread is not the child's (a lock it held is unlocked in the child by _forksafe)
    global _warm_thread
    _warm_thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def warm_up(background: bool = True) -> None:
    """Load the detect-secrets plugins now, in a daemon thread unless ``background`` is False.

    Call it as early as possible (e.g. when a task is decorated) so the first capture does not
    pay for the import. Calling it again is free.
    """
    global _warm_thread
    if not background:
        _DETECTORS.get()
        return
    if _warm_thread is None:
        _warm_thread = threading.Thread(target=_DETECTORS.get, name="reproflow-redact-warmup", daemon=True)
        _warm_thread.start()


def detector_setup_ms() -> float | None:
    """How long loading detect-secrets took in this process (None when not loaded yet)."""
    return _DETECTORS.setup_ms


class DetectSecretsRule:
    """A :data:`Rule` backed by one detect-secrets regex plugin (e.g. ``"AWSKeyDetector"``)."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin

    def __repr__(self) -> str:
        return f"DetectSecretsRule({self.plugin!r})"

    def matches(self, text: str) -> list[str]:
        """The secret substrings the plugin finds in ``text``."""
        detector = _DETECTORS.get()[self.plugin]
        return [s for s in detector.analyze_string(text) if s]

    def __call__(self, name: str, value: str) -> str | None:
        detector = _DETECTORS.get()[self.plugin]
        for found in detector.analyze_string(value):
            if found:
                return f"detect-secrets:{detector.secret_type}"
        return None


def keyword_assignment(name: str, value: str) -> str | None:
    """Flag ``password=...``, ``api_key: ...`` inside a value (detect-secrets' keyword plugin)."""
    from detect_secrets.plugins.keyword import CONFIG_DENYLIST_REGEX_TO_GROUP

    detector = _DETECTORS.get()["KeywordDetector"]
    for found in detector.analyze_string(value, CONFIG_DENYLIST_REGEX_TO_GROUP):
        if found:
            return "detect-secrets:Secret Keyword"
    return None


#: Shortest whole value the entropy rule looks at (shorter random strings are common ids).
_ENTROPY_MIN_LEN = 20
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=")
_HEX_CHARS = frozenset("0123456789abcdefABCDEF")
#: A name ending in one of these words holds an identifier or a hash: random-looking by design.
_ID_WORDS = frozenset({"SHA", "COMMIT", "REVISION", "REV", "DIGEST", "HASH", "CHECKSUM", "ID", "UUID",
                       "GUID", "SHA1", "SHA256"})


def high_entropy(name: str, value: str) -> str | None:
    """Flag a value that is one long random-looking base64 or hex token.

    Uses detect-secrets' Shannon entropy and its default limits (4.5 for base64, 3.0 for hex),
    on the whole value only: a token inside a longer text is left to the specific detectors.
    Names ending in an identifier word (``GITHUB_SHA``, ``INVOCATION_ID``, ``*_DIGEST``) are left
    alone: their values are random by design (a secret name is still caught by its name).
    """
    if len(value) < _ENTROPY_MIN_LEN:
        return None
    parts = _name_parts(name)
    if parts and (parts[-1] in _ID_WORDS or parts[-1].endswith(("UUID", "UID"))):
        # GITHUB_SHA, CI_COMMIT_SHA, INVOCATION_ID, PYTEST_XDIST_TESTRUNUID: random-looking, not secret
        return None
    chars = set(value)
    if chars <= _HEX_CHARS:
        plugin, reason = "HexHighEntropyString", "high-entropy:hex"
    elif chars <= _B64_CHARS:
        plugin, reason = "Base64HighEntropyString", "high-entropy:base64"
    else:
        return None
    detector = _DETECTORS.get()[plugin]
    return reason if detector.calculate_shannon_entropy(value) > detector.entropy_limit else None


def secret_assignment(name: str, value: str) -> str | None:
    """Flag ``token=...``, ``"api_key": "..."``, ``--password ...`` or an ``Authorization:``
    header inside a value, with the configurable list of secret names (what detect-secrets'
    keyword plugin misses: it knows no ``token``)."""
    return "secret-assignment" if _assignment_spans(value) else None


def json_secret_keys(name: str, value: str) -> str | None:
    """Flag a JSON value with a secret-named key holding a string (a Docker config's ``auths``,
    a cloud service-account key, ``{"password": ...}``)."""
    text = value.lstrip()
    if not text.startswith(("{", "[")):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return "json-secret-key" if _json_has_secret(data, 0) else None


def _json_has_secret(data: Any, depth: int) -> bool:
    if depth > 32:
        return False
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(k, str) and is_secret_key(k) and (isinstance(v, (str, dict, list)) and v):
                return True
            if _json_has_secret(v, depth + 1):
                return True
    elif isinstance(data, list):
        return any(_json_has_secret(v, depth + 1) for v in data)
    return False


def free_text_secret(name: str, value: str) -> str | None:
    """Flag a value holding a token of a known format that detect-secrets misses or matches
    only in part (fine-grained GitHub PATs, GitLab tokens of any length, Google, Hugging Face,
    OpenAI project and Anthropic keys, bearer tokens ...)."""
    return "pattern" if _extra_spans(value) else None


#: The rules :func:`redact_environ` applies by default, cheapest first.
DEFAULT_RULES: tuple[Rule, ...] = (
    secret_name,
    url_credentials,
    *(DetectSecretsRule(cls) for _, cls in _PLUGINS),
    free_text_secret,
    keyword_assignment,
    secret_assignment,
    json_secret_keys,
    high_entropy,
)


def first_reason(name: str, value: str, rules: Iterable[Rule] = DEFAULT_RULES) -> str | None:
    """The reason of the first rule that flags ``(name, value)``, or None."""
    for rule in rules:
        reason = rule(name, value)
        if reason:
            return reason
    return None


def _is_path(value: str) -> bool:
    return value.startswith(("/", "~/", "./", "../")) and not any(c.isspace() for c in value) and "://" not in value


def redact_environ(
    environ: Mapping[str, str],
    fingerprint: Callable[[str], str] | None = None,
    rules: Sequence[Rule] = DEFAULT_RULES,
) -> dict[str, EnvVar]:
    """Environment variables as records, with secrets replaced by keyed fingerprints.

    Args:
        environ: the variables (``os.environ`` or a test's dict).
        fingerprint: the store's keyed HMAC (``Store.fingerprint``); without it a redacted value
            keeps no trace at all (a plain hash of a short password could be brute-forced).
        rules: the rules to apply (see :data:`DEFAULT_RULES`).

    Returns:
        name -> :class:`EnvVar`, sorted by name. A flagged value becomes
        ``EnvVar(value=None, redacted=True, reason=..., fingerprint=...)``; a value whose only
        problem is credentials in URLs keeps its stripped form as ``value`` (still ``redacted``).
    """
    out: dict[str, EnvVar] = {}
    for name in sorted(environ):
        value = environ[name]
        if not value:
            out[name] = EnvVar(value=value)
            continue
        reason = first_reason(name, value, rules)
        if reason is None:
            out[name] = EnvVar(value=value)
            continue
        fp = fingerprint(value) if fingerprint is not None else None
        kept: str | None = None
        if "://" in value:
            stripped = strip_urls(value)
            if stripped != value and first_reason(name, stripped, rules) is None:
                kept = stripped
        # the secret itself is scrubbed wherever else it shows up (argv, parameters, errors);
        # a file path (GOOGLE_APPLICATION_CREDENTIALS=/home/me/key.json) is not the secret
        if not _is_path(value):
            remember(*(url_secrets(value) if kept is not None else [value]))
        out[name] = EnvVar(value=kept, redacted=True, reason=reason, fingerprint=fp)
    return out


# --------------------------------------------------------------------------------------------
# Free text: git diffs, error messages, argv, strings in parameters and results
# --------------------------------------------------------------------------------------------

_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
_PUTTY_KEY = re.compile(r"PuTTY-User-Key-File-\d.*?(?:Private-MAC:[^\n]*|\Z)", re.DOTALL)
_DIFF_FILE = re.compile(r"^diff --git a/(.*?) b/(.*)$")
_KEYWORD_HINT = re.compile(
    r"(?i)api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|priv_?key|"
    r"private_?key|client_?key|db_?pass|database_?pass|key_?pass|password|passwd|pwd|secret|"
    r"contrase"
)

#: Token formats detect-secrets misses, or matches only in part (its GitHub detector reports
#: the 3-letter prefix): the whole token is the match, or the group named ``s``.
_EXTRA_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9_]{20,255}|github_pat_[A-Za-z0-9_]{20,255})")),
    ("GitLab token", re.compile(r"\bgl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-[A-Za-z0-9_\-]{16,1024}")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}")),
    ("Google OAuth token", re.compile(r"\bya29\.[0-9A-Za-z_\-]{20,}")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("OpenAI/Anthropic key", re.compile(r"\bsk-(?:proj-|ant-[a-z]+\d*-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}")),
    ("Stripe key", re.compile(r"\b[rsp]k_(?:live|test)_[0-9A-Za-z]{16,}")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}|\bxapp-\d-[A-Za-z0-9\-]{10,}")),
    ("npm token", re.compile(r"\bnpm_[A-Za-z0-9]{30,}")),
    ("PyPI token", re.compile(r"\bpypi-[A-Za-z0-9_\-]{50,}")),
    ("AWS key id", re.compile(r"\b(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("Azure key", re.compile(r"(?i)(?:AccountKey|SharedAccessKey|SharedAccessSignature)=(?P<s>[^;\s\"']{8,})")),
    ("Bearer token", re.compile(r"(?i)\b(?:bearer|basic|token|bot|digest)\s+(?P<s>[A-Za-z0-9\-._~+/]{12,}=*)")),
    ("netrc password", re.compile(r"(?i)\blogin\s+\S+\s+password\s+(?P<s>\S+)")),
)
_ASSIGN_KEY = r"(?P<k>[A-Za-z][A-Za-z0-9_.\-]{1,60})"
#: ``key = "value"``, ``"key": "value"``, ``key: value``, ``key=value``, ``--key value``,
#: ``Authorization: value``; the key is checked against the secret-name list.
_ASSIGNMENTS = (
    re.compile(r"[\"']?" + _ASSIGN_KEY + r"[\"']?\s*(?:=|:|=>|:=)\s*(?P<q>[\"'])(?P<s>(?:(?!(?P=q)).){1,4096})(?P=q)"),
    re.compile(_ASSIGN_KEY + r"\s*(?:=|:)[ \t]*(?P<s>[^\s\"'<>`,;&()\[\]{}]{3,})(?=[\s\"'<>`,;&)\]}]|$)"),
    re.compile(r"(?<![\w-])--?" + _ASSIGN_KEY + r"[ \t]+(?P<s>[^\s\"'-][^\s\"']{2,})"),
    re.compile(r"(?i)\b(?P<k>(?:proxy-)?authorization|x-api-key|api-key|x-auth-token|private-token)\s*[:=]\s*(?P<s>[^\r\n\"']{4,})"),
)
_NOT_A_SECRET = frozenset({"none", "null", "true", "false", "redacted", "[redacted]", "***", "changeme", "required"})


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in " \t=:\"'":
        start += 1
    while end > start and text[end - 1] in " \t\"'":
        end -= 1
    return start, end


def _match_span(m: re.Match[str]) -> tuple[int, int]:
    """The secret in a detector match: its longest group when that is a real value (8+
    characters), else the whole match (GitHub's and GitLab's groups are only the prefix)."""
    best: tuple[int, int] | None = None
    for i in range(1, (m.lastindex or 0) + 1):
        if m.group(i) and (best is None or m.end(i) - m.start(i) > best[1] - best[0]):
            best = m.span(i)
    if best is None or best[1] - best[0] < 8:
        best = m.span(0)
    return _trim(m.string, *best)


def _detector_spans(text: str) -> list[tuple[int, int]]:
    plugins = _DETECTORS.get()
    spans: list[tuple[int, int]] = []
    for _, cls in _PLUGINS:
        if cls == "PrivateKeyDetector":
            continue  # whole blocks are removed by _PRIVATE_KEY_BLOCK
        for regex in plugins[cls].denylist:
            spans += [_match_span(m) for m in regex.finditer(text)]
    return spans


def _extra_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for _, regex in _EXTRA_PATTERNS:
        for m in regex.finditer(text):
            spans.append(m.span("s") if "s" in regex.groupindex else m.span(0))
    return spans


def _assignment_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for regex in _ASSIGNMENTS:
        for m in regex.finditer(text):
            value = m.group("s").strip()
            if not value or value.lower() in _NOT_A_SECRET or value == REDACTED or value.startswith(("$", "%(", "{{", "<")):
                continue
            key = m.group("k")
            if regex is _ASSIGNMENTS[3] or is_secret_key(key):
                spans.append(_trim(text, *m.span("s")))
    return spans


def _apply(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    out, last = [], 0
    for start, end in _merge([s for s in spans if s[1] > s[0]]):
        out += [text[last:start], REDACTED]
        last = end
    out.append(text[last:])
    return "".join(out)


def redact_text(text: str) -> str:
    """``text`` with every detected secret replaced, whole, by ``[REDACTED]``.

    In order: private-key blocks (whole, JSON-escaped ones too); credentials in URLs (also
    passwords holding ``/`` or ``#``); every match of detect-secrets' regex detectors, the
    whole token, never only its prefix; the token formats it misses (:data:`_EXTRA_PATTERNS`);
    ``key = value`` assignments whose key names a secret (the configurable list, see
    :mod:`reproflow.values._secret_names`) and detect-secrets' keyword rules per line (for the file
    type of each file of a git diff); and last every value known to be secret in this process
    (:func:`remember`). High-entropy strings are left alone: in code and lock files they are
    mostly hashes.
    """
    if not text:
        return text
    if "PRIVATE KEY" in text:
        text = _PRIVATE_KEY_BLOCK.sub(REDACTED, text)
    if "PuTTY" in text:
        text = _PUTTY_KEY.sub(REDACTED, text)
    text = strip_urls(text)
    text = _apply(text, _detector_spans(text) + _extra_spans(text) + _assignment_spans(text))
    if _KEYWORD_HINT.search(text):
        text = _redact_keywords(text)
    return scrub_known(text)


def redact_bytes(data: bytes) -> bytes:
    """:func:`redact_text` over bytes (undecodable bytes pass through unchanged)."""
    return redact_text(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _redact_keywords(text: str) -> str:
    from detect_secrets.plugins.keyword import (
        QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
        REGEX_BY_FILETYPE,
    )
    from detect_secrets.util.filetype import determine_file_type

    _DETECTORS.get()  # measured once with the rest of detect-secrets
    regexes = QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP
    lines = text.split("\n")
    for i, line in enumerate(lines):
        m = _DIFF_FILE.match(line)
        if m:
            regexes = REGEX_BY_FILETYPE.get(
                determine_file_type(m.group(2)), QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP
            )
            continue
        if not _KEYWORD_HINT.search(line):
            continue
        spans: list[tuple[int, int]] = []
        for regex, group in regexes.items():
            for km in regex.finditer(line):
                if km.group(group) and km.group(group) != REDACTED:
                    spans.append(km.span(group))
        for start, end in reversed(_merge(spans)):
            line = line[:start] + REDACTED + line[end:]
        lines[i] = line
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Values known to be secret in this process
# --------------------------------------------------------------------------------------------

#: Shorter known secrets are not scrubbed from other text (they would match ordinary words).
KNOWN_MIN_LEN = 6


class _Known:
    """Secret values seen in this process (redacted from the environment or from a mapping by
    its key), scrubbed from every other text stored: one regex, rebuilt when the set grows."""

    def __init__(self) -> None:
        self.lock = _forksafe.lock()
        self.values: set[str] = set()
        self.regex: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        new = {v.strip() for v in values if isinstance(v, str) and len(v.strip()) >= KNOWN_MIN_LEN} - self.values
        if not new:
            return
        with self.lock:
            self.values |= new
            ordered = sorted(self.values, key=len, reverse=True)  # a secret holding another goes whole
            self.regex = re.compile("|".join(re.escape(v) for v in ordered))

    def scrub(self, text: str) -> str:
        regex = self.regex
        return regex.sub(REDACTED, text) if regex is not None and text else text


_KNOWN = _Known()


def remember(*values: str) -> None:
    """Treat ``values`` as secrets for the rest of the process: :func:`scrub_known` and
    :func:`redact_text` replace them wherever they appear."""
    _KNOWN.add(values)


def scrub_known(text: str) -> str:
    """``text`` with every value known to be secret (:func:`remember`) replaced."""
    return _KNOWN.scrub(text)


def forget_known() -> None:
    """Forget every remembered secret (tests)."""
    global _KNOWN
    _KNOWN = _Known()


__all__ = [
    "DEFAULT_RULES",
    "REDACTED",
    "DetectSecretsRule",
    "Rule",
    "detector_setup_ms",
    "first_reason",
    "forget_known",
    "free_text_secret",
    "json_secret_keys",
    "remember",
    "remember_url_secrets",
    "remember_url_value",
    "scrub_known",
    "secret_assignment",
    "url_secrets",
    "high_entropy",
    "keyword_assignment",
    "redact_bytes",
    "redact_environ",
    "redact_text",
    "secret_name",
    "strip_urls",
    "url_credentials",
    "warm_up",
]
