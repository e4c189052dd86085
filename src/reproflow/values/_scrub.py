"""Scrub secrets out of what records keep besides the environment: parameters, results, errors, argv.

Environment variables have their own redaction (by name and value, with fingerprints, in
``_redact``); this covers everything else a record keeps. Hashes are computed on the real
values first, so a changed secret still shows up as a changed parameter hash.

* **Mappings** (parameters, returned dicts, at any depth): a value whose *key* names a secret
  (``password``, ``api_key``, ``token``, ...; the configurable list of
  :mod:`reproflow.values._secret_names`) is replaced by a marker, and remembered as a known secret::

      {"__rf__": "redacted", "reason": "name", "type": "str", "fingerprint": "hmac-sha256:..."}

  Numbers, booleans, None and paths under such a key are kept (``max_tokens=512`` is no secret).
  The check is a cached look-up per key: no scan of the values.
* **Strings** in them: a cheap test first (:func:`maybe_secret`); only a string that could hold a
  token, an assignment or a URL with credentials is scanned (:func:`reproflow.values._redact.redact_text`).
  A string that changes becomes a marker with ``reason: "value"`` and the scrubbed text in
  ``shown``, never a silently altered value: replay asks for every marker again.
* **Free text** (errors, tracebacks, argv): :func:`scrub_text`, and ``--token VALUE`` style flags
  in argv (:func:`scrub_argv`).

Values known to be secret in this process (redacted from the environment, or by key) are
replaced wherever they appear (:func:`reproflow.values._redact.remember`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ._redact import KNOWN_MIN_LEN, REDACTED, redact_text, remember, scrub_known
from ._secret_names import is_secret_key

_TAG = "__rf__"
#: The typed-JSON tag of a redacted value.
REDACTED_TAG = "redacted"
_RUN = re.compile(r"[A-Za-z0-9_+]{16}")

Fingerprint = Callable[[str], str]


def maybe_secret(text: str) -> bool:
    """A cheap over-approximation: can ``text`` hold a secret that :func:`redact_text` finds?

    Tokens of every known format hold a run of 16+ token characters; assignments hold ``=``,
    ``:`` or a ``--flag``; URL credentials an ``@`` or a query (percent-encoded ones ``%3D``).
    Plain words and paths do not.
    """
    if len(text) < 8:
        return False
    if "=" in text or "--" in text or "PRIVATE KEY" in text or "PuTTY" in text:
        return True
    if "%3" in text:  # a percent-encoded query field (%3Fsig%3D...) of a quoted URL
        return True
    if ":" in text and ("://" not in text or "@" in text or "?" in text or text.count(":") > 1):
        return True
    return _RUN.search(text) is not None


def scrub_text(text: str) -> str:
    """Free text with every detected and every known secret replaced by ``[REDACTED]``."""
    if len(text) < KNOWN_MIN_LEN:  # too short for a token or a remembered secret
        return text
    if maybe_secret(text):
        return redact_text(text)
    return scrub_known(text)


def _marker(reason: str, value: Any, fingerprint: Fingerprint | None, shown: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {_TAG: REDACTED_TAG, "reason": reason, "type": _type_of(value)}
    if shown is not None:
        out["shown"] = shown
    raw = value if isinstance(value, str) else None
    if fingerprint is not None and raw:
        out["fingerprint"] = fingerprint(raw)
    return out


def _type_of(typed: Any) -> str:
    if isinstance(typed, dict):
        return str(typed.get(_TAG) or "dict")
    if isinstance(typed, list):
        return "list"
    return type(typed).__name__


def _under_secret_key(typed: Any, fingerprint: Fingerprint | None) -> Any:
    """Everything that can hold a secret under a secret-named key: strings, bytes, containers'
    string leaves. Numbers, booleans, None and paths are kept."""
    if isinstance(typed, str):
        if not typed:
            return typed
        remember(typed)
        return _marker("name", typed, fingerprint)
    if isinstance(typed, list):
        return [_under_secret_key(v, fingerprint) for v in typed]
    if isinstance(typed, dict):
        tag = typed.get(_TAG)
        if tag is None:
            return {k: _under_secret_key(v, fingerprint) for k, v in typed.items()}
        if tag == "bytes":
            return _marker("name", typed, None)
        if tag in ("tuple", "set", "frozenset"):
            return {**typed, "v": [_under_secret_key(v, fingerprint) for v in typed.get("v", [])]}
        if tag == "dict":
            return {**typed, "items": [[k, _under_secret_key(v, fingerprint)] for k, v in typed.get("items", [])]}
        if tag == "opaque":
            return {**typed, "repr": REDACTED}
        if tag == "object":  # a dataclass, attrs class, pydantic model or named tuple: its fields
            return {**typed, "v": _under_secret_key(typed.get("v"), fingerprint),
                    **({"extra": _under_secret_key(typed["extra"], fingerprint)} if "extra" in typed else {})}
    return typed


def scrub_json(data: Any, fingerprint: Fingerprint | None = None) -> Any:
    """A copy of typed JSON (parameters, a result) with secrets replaced by redaction markers.

    Args:
        data: typed JSON (:func:`reproflow.values._typed.to_typed_json`).
        fingerprint: the store's keyed hash, kept in each marker of a string so ``diff`` can
            tell that a secret changed.
    """
    if isinstance(data, str):
        if not data:
            return data
        shown = scrub_text(data)
        return data if shown == data else _marker("value", data, fingerprint, shown)
    if isinstance(data, list):
        return [scrub_json(v, fingerprint) for v in data]
    if not isinstance(data, dict):
        return data
    tag = data.get(_TAG)
    if tag is None:
        if any(len(k) >= KNOWN_MIN_LEN and scrub_text(k) != k for k in data):  # a secret as a key: the mapping goes whole
            return _marker("value", data, None)
        out: dict[str, Any] = {}
        for k, v in data.items():
            if is_secret_key(k):
                out[k] = _under_secret_key(v, fingerprint)
            else:
                out[k] = scrub_json(v, fingerprint)
        return out
    if tag in ("tuple", "set", "frozenset"):
        return {**data, "v": [scrub_json(v, fingerprint) for v in data.get("v", [])]}
    if tag == "dict":
        items = []
        for k, v in data.get("items", []):
            secret = isinstance(k, str) and is_secret_key(k)
            items.append([k, _under_secret_key(v, fingerprint) if secret else scrub_json(v, fingerprint)])
        return {**data, "items": items}
    if tag == "object":  # a dataclass, attrs class, pydantic model (fields by name) or named tuple
        out = {**data, "v": scrub_json(data.get("v"), fingerprint)}
        if isinstance(data.get("extra"), dict):
            out["extra"] = scrub_json(data["extra"], fingerprint)
        return out
    if tag == "opaque" and isinstance(data.get("repr"), str):
        return {**data, "repr": scrub_text(data["repr"])}
    if tag == "path" and isinstance(data.get("v"), str):
        shown = scrub_text(data["v"])
        return data if shown == data["v"] else _marker("value", data, None, shown)
    return data


def scrub_mapping(params: dict[str, Any], fingerprint: Fingerprint | None = None) -> dict[str, Any]:
    """:func:`scrub_json` of a parameter mapping (its own keys are checked too)."""
    result = scrub_json(params, fingerprint)
    assert isinstance(result, dict)
    return result


_FLAG = re.compile(r"^--?(?P<k>[A-Za-z][A-Za-z0-9_.\-]*)(?:=(?P<v>.*))?$", re.DOTALL)


def scrub_argv(argv: list[str]) -> list[str]:
    """argv with the value of every secret-named flag (``--token V``, ``--api-key=V``) and every
    detected secret replaced by ``[REDACTED]``; the flag values are remembered as secrets."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("-"):
            remember(arg)
            out.append(REDACTED)
            hide_next = False
            continue
        hide_next = False
        m = _FLAG.match(arg)
        if m and is_secret_key(m.group("k")):
            if m.group("v") is not None:
                if m.group("v"):
                    remember(m.group("v"))
                out.append(arg[: m.start("v")] + REDACTED)
                continue
            hide_next = True
        out.append(arg)
    return [scrub_text(a) for a in out]


def is_redacted(typed: Any) -> bool:
    """Whether a typed-JSON value is a redaction marker."""
    return isinstance(typed, dict) and typed.get(_TAG) == REDACTED_TAG


__all__ = [
    "REDACTED_TAG",
    "is_redacted",
    "maybe_secret",
    "scrub_argv",
    "scrub_json",
    "scrub_mapping",
    "scrub_text",
]
