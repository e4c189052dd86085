"""Redaction of secrets in environment variables and free text, before anything is stored.

Every rule is a small callable with one signature, ``Rule = Callable[[name, value], reason | None]``:
it returns why a value must not be stored (``"name"``, ``"url-credentials"``,
``"detect-secrets:AWS Access Key"``, ...) or None. :data:`DEFAULT_RULES` runs, cheapest first:

1. :func:`secret_name` -- the variable's *name* says it holds a secret (``*_TOKEN``, ``*_PASSWORD``,
   ``*_API_KEY``, ``SENTRY_DSN``...), split into words so ``KEYBOARD`` or ``PATH`` never match,
   with a short allowlist of well-known harmless names (``PWD``, ``SSH_AUTH_SOCK``...);
2. :func:`url_credentials` -- a URL in the value carries ``user:password@`` or a credential query
   parameter (the project-wide :func:`reproflow._urls.strip_credentials` decides);
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

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ._urls import strip_credentials
from .records import EnvVar

#: A redaction rule: ``(name, value) -> reason`` when the value must not be stored, else None.
Rule = Callable[[str, str], "str | None"]

#: The marker that replaces a secret inside free text.
REDACTED = "[REDACTED]"

# --------------------------------------------------------------------------------------------
# By name
# --------------------------------------------------------------------------------------------

#: Words that make a variable name secret when they are one of its parts (split on _ - . and
#: camelCase), e.g. GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY, DB_PASSWORD, SENTRY_DSN, apiKey.
_SECRET_WORDS = frozenset(
    {
        "TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD", "PASS",
        "PASSPHRASE", "PWD", "KEY", "KEYS", "APIKEY", "CREDENTIAL", "CREDENTIALS", "CREDS",
        "AUTH", "PRIVATE", "SESSION", "COOKIE", "COOKIES", "DSN", "SIGNATURE", "SALT", "PAT",
        "BEARER", "OAUTH", "JWT", "CONNSTR",
    }
)
#: A name part ending in one of these is secret too (DBPASSWORD, ACCESSKEY, AUTHTOKEN...).
_SECRET_SUFFIXES = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "APIKEY", "ACCESSKEY", "SECRETKEY",
                    "PRIVATEKEY", "CREDENTIALS", "CREDENTIAL")
#: Consecutive parts that together name a secret (CONNECTION_STRING holds Azure AccountKeys).
_SECRET_PAIRS = frozenset({("CONNECTION", "STRING")})
#: Well-known variables whose names contain a secret-sounding word but whose values are not
#: secrets (and are useful to keep).
_HARMLESS_NAMES = frozenset(
    {
        "PWD", "OLDPWD", "SSH_AUTH_SOCK", "GPG_AGENT_INFO", "DBUS_SESSION_BUS_ADDRESS",
        "DESKTOP_SESSION", "SESSION_MANAGER", "XDG_SESSION_ID", "XDG_SESSION_TYPE",
        "XDG_SESSION_CLASS", "XDG_SESSION_DESKTOP", "XDG_SESSION_PATH", "XDG_SEAT_PATH",
        "KEYTIMEOUT", "PYTHONHASHSEED", "TOKENIZERS_PARALLELISM",
    }
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[^A-Za-z0-9]+")


def _name_parts(name: str) -> list[str]:
    return [p for p in _SPLIT.split(_CAMEL.sub("_", name).upper()) if p]


def secret_name(name: str, value: str) -> str | None:
    """Flag a variable whose *name* says it holds a secret.

    >>> secret_name("GITHUB_TOKEN", "x"), secret_name("KEYBOARD_LAYOUT", "x"), secret_name("PWD", "/")
    ('name', None, None)
    """
    if name.upper() in _HARMLESS_NAMES:
        return None
    parts = _name_parts(name)
    for i, part in enumerate(parts):
        if part in _SECRET_WORDS or part.endswith(_SECRET_SUFFIXES):
            return "name"
        if i and (parts[i - 1], part) in _SECRET_PAIRS:
            return "name"
    return None


# --------------------------------------------------------------------------------------------
# Credentials inside URLs
# --------------------------------------------------------------------------------------------

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>`]+")


def strip_urls(text: str) -> str:
    """``text`` with every URL in it passed through :func:`strip_credentials`."""
    return _URL.sub(lambda m: strip_credentials(m.group(0)), text)


def url_credentials(name: str, value: str) -> str | None:
    """Flag a value holding a URL with ``user:password@`` or a credential query parameter."""
    if "://" not in value:
        return None
    for m in _URL.finditer(value):
        if strip_credentials(m.group(0)) != m.group(0):
            return "url-credentials"
    return None


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
        self._lock = threading.Lock()
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
    # a lock held by a warm-up thread at fork time would never be released in the child
    global _warm_thread
    _DETECTORS._lock = threading.Lock()
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
    if parts and parts[-1] in _ID_WORDS:
        return None  # GITHUB_SHA, CI_COMMIT_SHA, INVOCATION_ID: random-looking, not secret
    chars = set(value)
    if chars <= _HEX_CHARS:
        plugin, reason = "HexHighEntropyString", "high-entropy:hex"
    elif chars <= _B64_CHARS:
        plugin, reason = "Base64HighEntropyString", "high-entropy:base64"
    else:
        return None
    detector = _DETECTORS.get()[plugin]
    return reason if detector.calculate_shannon_entropy(value) > detector.entropy_limit else None


#: The rules :func:`redact_environ` applies by default, cheapest first.
DEFAULT_RULES: tuple[Rule, ...] = (
    secret_name,
    url_credentials,
    *(DetectSecretsRule(cls) for _, cls in _PLUGINS),
    keyword_assignment,
    high_entropy,
)


def first_reason(name: str, value: str, rules: Iterable[Rule] = DEFAULT_RULES) -> str | None:
    """The reason of the first rule that flags ``(name, value)``, or None."""
    for rule in rules:
        reason = rule(name, value)
        if reason:
            return reason
    return None


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
        out[name] = EnvVar(value=kept, redacted=True, reason=reason, fingerprint=fp)
    return out


# --------------------------------------------------------------------------------------------
# Free text (git diffs)
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


def redact_text(text: str) -> str:
    """``text`` with every detected secret replaced by ``[REDACTED]``.

    Applies the detect-secrets regex plugins (whole private-key blocks are removed, not only their
    header line), its keyword plugin per line (with the rules for the file type when ``text`` is a
    git diff), and strips credentials from every URL. High-entropy strings are left alone: in code
    and lock files they are mostly hashes, and removing them would ruin the diff for nothing.
    """
    if not text:
        return text
    text = _PRIVATE_KEY_BLOCK.sub(REDACTED, text)
    text = _PUTTY_KEY.sub(REDACTED, text)
    if "://" in text:
        text = strip_urls(text)
    found: set[str] = set()
    for _, cls in _PLUGINS:
        if cls == "PrivateKeyDetector":
            continue
        found.update(DetectSecretsRule(cls).matches(text))
    text = _replace_all(text, found)
    if _KEYWORD_HINT.search(text):
        text = _redact_keywords(text)
    return text


def redact_bytes(data: bytes) -> bytes:
    """:func:`redact_text` over bytes (undecodable bytes pass through unchanged)."""
    return redact_text(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def _replace_all(text: str, secrets: set[str]) -> str:
    # Longest first, so a secret that contains another is replaced whole.
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


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


__all__ = [
    "DEFAULT_RULES",
    "REDACTED",
    "DetectSecretsRule",
    "Rule",
    "detector_setup_ms",
    "first_reason",
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
