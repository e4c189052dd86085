"""Scrub secrets out of free values before they are stored: parameters, argv, results, errors.

Environment variables have their own redaction (by name and value, with fingerprints, in
``_redact``); this covers everything else a record keeps verbatim. Credentials are stripped from
URLs and detected secrets are replaced by ``[REDACTED]``. Hashes are computed on the real values
first, so a changed secret still shows up as a changed parameter hash.
"""

from __future__ import annotations

from typing import Any

#: Strings shorter than this cannot hold a credential worth detecting (and are most strings).
_MIN_LEN = 8


def scrub_text(text: str) -> str:
    if len(text) < _MIN_LEN:
        return text
    from ._redact import redact_text

    return redact_text(text)


def scrub_json(data: Any) -> Any:
    """A copy of JSON data with every string scrubbed (keys too)."""
    if isinstance(data, str):
        return scrub_text(data)
    if isinstance(data, list):
        return [scrub_json(v) for v in data]
    if isinstance(data, dict):
        return {scrub_text(k) if isinstance(k, str) else k: scrub_json(v) for k, v in data.items()}
    return data


__all__ = ["scrub_json", "scrub_text"]
