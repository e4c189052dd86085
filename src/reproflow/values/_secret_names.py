"""Which names say that a value is a secret: environment variables, mapping keys, CLI flags.

A name is split into words (on ``_ - .`` and camelCase; ``GITHUB_TOKEN`` -> GITHUB, TOKEN) and is
secret when one word is in the list, when a word ends with a listed suffix (``DBPASSWORD``), or
when two consecutive words make a listed pair (``API_KEY``, ``CONNECTION_STRING``).

Environment variables use the wider :data:`ENV_WORDS` (a bare ``KEY``, ``PASS`` or ``SESSION``
in a variable name means a secret); keys of parameters, results and other mappings use
:data:`MAPPING_WORDS`, which leaves out words that name ordinary arguments (``key``,
``sort_key``, ``max_tokens``, ``session``, ``n_pass``) and relies on pairs instead.

The list is configurable, once per process, read at the first use:

* ``REPROFLOW_SECRET_NAMES="license,cert_pin,-auth"``: words to add (or, with a leading ``-``,
  to remove), comma-separated, case-insensitive;
* ``[tool.reproflow] secret-names = ["license", "-auth"]`` in the ``pyproject.toml`` found from
  the current folder upwards (the environment variable is applied after it).

:func:`reload` forgets the cached settings (tests, long-lived processes that change them).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path

SECRET_NAMES_ENV = "REPROFLOW_SECRET_NAMES"

#: Words that make an environment variable's name secret.
ENV_WORDS = frozenset(
    {
        "TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD", "PASS",
        "PASSPHRASE", "PWD", "KEY", "KEYS", "APIKEY", "CREDENTIAL", "CREDENTIALS", "CREDS",
        "AUTH", "AUTHORIZATION", "PRIVATE", "SESSION", "COOKIE", "COOKIES", "DSN", "SIGNATURE",
        "SALT", "PAT", "BEARER", "OAUTH", "JWT", "CONNSTR",
    }
)
#: Words that make a mapping key (a parameter, a dict key, a CLI flag) secret.
MAPPING_WORDS = frozenset(
    {
        "TOKEN", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PASSPHRASE", "PWD", "APIKEY",
        "CREDENTIAL", "CREDENTIALS", "CREDS", "AUTH", "AUTHORIZATION", "COOKIE", "DSN", "BEARER",
        "OAUTH", "JWT", "CONNSTR", "PAT",
    }
)
#: A word ending in one of these is secret too (DBPASSWORD, ACCESSKEY, AUTHTOKEN...).
SUFFIXES = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "APIKEY", "ACCESSKEY", "SECRETKEY",
            "PRIVATEKEY", "CREDENTIALS", "CREDENTIAL")
#: Consecutive words that together name a secret.
PAIRS = frozenset(
    {
        ("CONNECTION", "STRING"), ("API", "KEY"), ("ACCESS", "KEY"), ("SECRET", "KEY"),
        ("PRIVATE", "KEY"), ("CLIENT", "KEY"), ("SIGNING", "KEY"), ("ENCRYPTION", "KEY"),
        ("MASTER", "KEY"), ("ACCOUNT", "KEY"), ("SERVICE", "KEY"), ("SESSION", "KEY"),
        ("AUTH", "KEY"), ("LICENSE", "KEY"), ("WEBHOOK", "URL"), ("SAS", "URL"),
    }
)
#: Well-known variables whose names hold a secret-sounding word but whose values are not
#: secrets (and are useful to keep).
HARMLESS_NAMES = frozenset(
    {
        "PWD", "OLDPWD", "SSH_AUTH_SOCK", "GPG_AGENT_INFO", "DBUS_SESSION_BUS_ADDRESS",
        "DESKTOP_SESSION", "SESSION_MANAGER", "XDG_SESSION_ID", "XDG_SESSION_TYPE",
        "XDG_SESSION_CLASS", "XDG_SESSION_DESKTOP", "XDG_SESSION_PATH", "XDG_SEAT_PATH",
        "KEYTIMEOUT", "PYTHONHASHSEED", "TOKENIZERS_PARALLELISM", "REPROFLOW_SECRET_NAMES",
    }
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[^A-Za-z0-9]+")


def name_parts(name: str) -> list[str]:
    """``name`` split into upper-case words (``apiKey`` -> ``["API", "KEY"]``)."""
    return [p for p in _SPLIT.split(_CAMEL.sub("_", name).upper()) if p]


def _words_from(items: list[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(words or ``A_B`` phrases to add, words to remove) from the configured entries."""
    add, remove = set(), set()
    for raw in items:
        entry = raw.strip()
        target = remove if entry.startswith("-") else add
        parts = name_parts(entry.lstrip("-+"))
        if parts:
            target.add("_".join(parts))
    return frozenset(add), frozenset(remove)


def _pyproject_items(start: Path) -> tuple[list[str], str | None]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    for folder in (start, *start.parents):
        path = folder / "pyproject.toml"
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return [], None
            value = data.get("tool", {}).get("reproflow", {}).get("secret-names", [])
            if isinstance(value, str):
                value = value.split(",")
            return [str(v) for v in value if isinstance(v, str)], str(path)
    return [], None


class Settings:
    """The secret-name settings in force (built by :func:`settings`)."""

    def __init__(self, added: frozenset[str], removed: frozenset[str], sources: tuple[str, ...]) -> None:
        self.added, self.removed, self.sources = added, removed, sources
        multi = {w for w in added if "_" in w}
        self.added_words = frozenset(added - multi)
        #: user entries of several words (``cert_pin``) match as consecutive words
        self.added_phrases = tuple(tuple(w.split("_")) for w in multi)
        self.env_words = (ENV_WORDS | self.added_words) - removed
        self.mapping_words = (MAPPING_WORDS | self.added_words) - removed


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    """The configured list: defaults, then pyproject ``secret-names``, then ``$REPROFLOW_SECRET_NAMES``."""
    items: list[str] = []
    sources: list[str] = []
    try:
        found, where = _pyproject_items(Path.cwd())
    except OSError:
        found, where = [], None
    if found and where:
        items += found
        sources.append(where)
    env = os.environ.get(SECRET_NAMES_ENV, "")
    if env.strip():
        items += env.split(",")
        sources.append(f"${SECRET_NAMES_ENV}")
    add, remove = _words_from(items)
    return Settings(add, remove, tuple(sources))


def reload() -> None:
    """Forget the cached settings and name decisions (read again at the next use)."""
    settings.cache_clear()
    is_secret_env_name.cache_clear()
    is_secret_key.cache_clear()


def _secret(parts: list[str], words: frozenset[str], conf: Settings) -> bool:
    for i, part in enumerate(parts):
        if part in conf.removed:
            continue
        if part in words or part.endswith(SUFFIXES):
            return True
        if i and (parts[i - 1], part) in PAIRS:
            return True
    for phrase in conf.added_phrases:
        n = len(phrase)
        if any(tuple(parts[i:i + n]) == phrase for i in range(len(parts) - n + 1)):
            return True
    return False


@functools.lru_cache(maxsize=4096)
def is_secret_env_name(name: str) -> bool:
    """Whether an environment variable's *name* says it holds a secret.

    >>> is_secret_env_name("GITHUB_TOKEN"), is_secret_env_name("KEYBOARD_LAYOUT"), is_secret_env_name("PWD")
    (True, False, False)
    """
    if name.upper() in HARMLESS_NAMES:
        return False
    conf = settings()
    return _secret(name_parts(name), conf.env_words, conf)


@functools.lru_cache(maxsize=4096)
def is_secret_key(name: str) -> bool:
    """Whether a mapping key, parameter or flag name says its value is a secret.

    >>> is_secret_key("api_key"), is_secret_key("password"), is_secret_key("sort_key"), is_secret_key("max_tokens")
    (True, True, False, False)
    """
    conf = settings()
    return _secret(name_parts(name), conf.mapping_words, conf)


__all__ = [
    "ENV_WORDS",
    "MAPPING_WORDS",
    "SECRET_NAMES_ENV",
    "Settings",
    "is_secret_env_name",
    "is_secret_key",
    "name_parts",
    "reload",
    "settings",
]
