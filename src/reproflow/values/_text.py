"""Text made safe to write: file names that are not UTF-8 in documents people read, and the
message of an exception whose ``__str__`` fails.

Python decodes a file name's bytes that are not UTF-8 as lone surrogates (``os.fsdecode``:
the Latin-1 ``caf\\xe9.txt`` becomes ``'caf\\udce9.txt'``), which no UTF-8 document can hold.
Records keep them (JSON escapes them; see ``store.canonical_json``); a report or an export
shows each such byte as ``\\xNN``, the way ``ls --quoting-style=c`` would.
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def utf8_text(text: str) -> str:
    """``text``, each lone surrogate in it written as ``\\xNN`` (the byte it stands for) or
    ``\\uNNNN``; the same string when it is UTF-8 already."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub(_escape, text)
    return text


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, also for an exception whose ``__str__`` raises (which ``str`` would pass
    on: recording the user's error must not replace it with another)."""
    try:
        return str(exc)
    except Exception as inner:  # noqa: BLE001 - any __str__ may fail
        return f"<{type(exc).__name__}: str() raised {type(inner).__name__}>"


__all__ = ["exception_text", "utf8_text"]
