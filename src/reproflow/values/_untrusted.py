"""Checks of record fields that reach a path, a command line or a generated file.

A record may come from someone else's store (issue 11): every field replay or export turns into
a path, a word of a command, or a line of a Dockerfile is checked here first. Each check returns
``None`` when the value is fine, else one line saying what is wrong with it (the caller raises
:class:`reproflow.errors.UnsafeRecord` with it). Pure functions: no I/O.
"""

from __future__ import annotations

import os
import re

#: characters that end or bend a line, or hide what a line says: ASCII controls (NUL, newline,
#: carriage return, escape, ...), DEL, Unicode line and paragraph separators, and the
#: bidirectional overrides/isolates (an RTL override makes ``exe.txt`` read as ``txt.exe``)
_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: a URL scheme
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: a git object name: hex, as git prints it (abbreviated from 4 characters, SHA-1 or SHA-256)
_COMMIT = re.compile(r"^[0-9a-f]{4,64}$")
#: a Python version as ``platform.python_version()`` prints it ("3.11.7", "3.13.0rc1", "3.14.0a1+")
_PYVERSION = re.compile(r"^[0-9]{1,3}\.[0-9]{1,3}(?:\.[0-9]{1,4})?(?:(?:a|b|rc)[0-9]{1,3})?\+?$")
#: an implementation name ("CPython", "PyPy")
_WORD = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
#: a dotted module name
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
#: a qualified name inside a module ("flow", "Outer.method", "outer.<locals>.inner")
_QUALNAME = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|<locals>|<lambda>)(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|<locals>|<lambda>))*$")
#: a CUDA version as NVML reports it
_CUDA = re.compile(r"^[0-9]{1,3}\.[0-9]{1,3}(?:\.[0-9]{1,3})?$")


def show(value: object) -> str:
    """A value as an error message may quote it: repr, cut to 120 characters."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def text_problem(value: object, what: str) -> str | None:
    """A free-text field written into a generated file or a message (a flow name, an OS name):
    a string without control characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f"{what} {show(value)} is not text"
    if _CONTROL.search(value):
        return f"{what} {show(value)} holds a control character (a newline, NUL, escape or direction override)"
    return None


def word_problem(value: object, what: str) -> str | None:
    """A word that goes on a command line: text with no space, quote or shell character, and not
    starting with ``-`` (it would be read as an option)."""
    problem = text_problem(value, what)
    if problem or value is None:
        return problem
    assert isinstance(value, str)
    if not value or value.startswith("-") or re.search(r"[\s'\"`$;&|<>(){}*?!\\]", value):
        return f"{what} {show(value)} is not a plain word (empty, an option, or holds spaces, quotes or shell characters)"
    return None


def url_problem(value: object, what: str) -> str | None:
    """A URL handed to an installer or written into a generated file: ``scheme://...`` with no
    space, quote or shell character."""
    problem = word_problem(value, what)
    if problem or value is None:
        return problem
    assert isinstance(value, str)
    if not _SCHEME.match(value):
        return f"{what} {show(value)} is not a URL (scheme://...)"
    return None


def _too_long(path: str) -> bool:
    """A name no common file system holds: a component over 255 bytes, or over 4096 in all."""
    data = path.encode("utf-8", "surrogatepass")
    return len(data) > 4096 or any(len(part) > 255 for part in data.replace(b"\\", b"/").split(b"/"))


def local_path_problem(value: object, what: str) -> str | None:
    """A recorded local path (or ``file://``/``local://`` URL) that replay will read, write or
    make: absolute, no ``..`` component, no control character. Other URLs (``s3://...``) pass
    when they hold no control character (fsspec reads them; nothing is made from them)."""
    problem = text_problem(value, what)
    if problem or value is None:
        return problem
    assert isinstance(value, str)
    path = value
    for scheme in ("file://", "local://"):
        if path.startswith(scheme):
            path = path[len(scheme):]
            break
    else:
        if _SCHEME.match(value):
            return None if not re.search(r"\s", value) else f"{what} {show(value)} holds white space"
    if not path or not os.path.isabs(path):
        return f"{what} {show(value)} is not an absolute path"
    if _too_long(path):
        return f"{what} {show(value)} is longer than a file system allows"
    if ".." in path.replace("\\", "/").split("/"):
        return f"{what} {show(value)} climbs out with '..'"
    return None


def relative_path_problem(value: object, what: str) -> str | None:
    """A path relative to the restored code: no ``..`` component, not absolute, not an option."""
    problem = text_problem(value, what)
    if problem or value is None:
        return problem
    assert isinstance(value, str)
    if not value or value.startswith("-") or os.path.isabs(value) or value.startswith("\\"):
        return f"{what} {show(value)} is not a relative path inside the recorded code"
    if ".." in value.replace("\\", "/").split("/"):
        return f"{what} {show(value)} climbs out with '..'"
    if _too_long(value):
        return f"{what} {show(value)} is longer than a file system allows"
    return None


def commit_problem(value: object, what: str = "git commit") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _COMMIT.match(value):
        return f"{what} {show(value)} is not a git object name (hexadecimal)"
    return None


def python_version_problem(value: object, what: str = "Python version") -> str | None:
    if not isinstance(value, str) or not _PYVERSION.match(value):
        return f"{what} {show(value)} is not a Python version (such as 3.11.7)"
    return None


def implementation_problem(value: object, what: str = "Python implementation") -> str | None:
    if not isinstance(value, str) or not _WORD.match(value):
        return f"{what} {show(value)} is not an implementation name (such as CPython)"
    return None


def cuda_problem(value: object, what: str = "CUDA version") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _CUDA.match(value):
        return f"{what} {show(value)} is not a version (such as 12.4)"
    return None


def function_problem(value: object, what: str) -> str | None:
    """``module:qualname`` of a recorded function (``?...`` means none was recorded)."""
    if value is None or (isinstance(value, str) and value.startswith("?") and not _CONTROL.search(value)):
        return None
    if not isinstance(value, str):
        return f"{what} {show(value)} is not module:qualname"
    module, sep, qual = value.partition(":")
    if not sep or not _MODULE.match(module) or not _QUALNAME.match(qual):
        return f"{what} {show(value)} is not module:qualname"
    return None


def module_problem(value: object, what: str = "flow module", *, qualname: bool = True) -> str | None:
    """``package.module`` or ``package.module:function`` of a recorded flow (``package.module``
    alone with ``qualname=False``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f"{what} {show(value)} is not a module name"
    module, sep, qual = value.partition(":")
    if sep and not qualname:
        return f"{what} {show(value)} is not a module name (package.module)"
    if not _MODULE.match(module) or (sep and not _QUALNAME.match(qual)):
        return f"{what} {show(value)} is not a module name (package.module:function)"
    return None


def hashseed_problem(value: object) -> str | None:
    """``PYTHONHASHSEED``: ``random`` or an integer from 0 to 4294967295 (what Python accepts)."""
    if value is None:
        return None
    if isinstance(value, str) and (value == "random" or (value.isdigit() and value.isascii()
                                                        and len(value) <= 10 and int(value) <= 4294967295)):
        return None
    return f"PYTHONHASHSEED {show(value)} is not 'random' or an integer from 0 to 4294967295"


__all__ = [
    "commit_problem", "cuda_problem", "function_problem", "hashseed_problem", "implementation_problem",
    "local_path_problem", "module_problem", "python_version_problem", "relative_path_problem", "show",
    "text_problem", "url_problem", "word_problem",
]
