"""URL helpers: strip credentials, tell fsspec URLs from plain strings."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Query parameters that carry credentials in presigned or tokenised URLs.
_SECRET_QUERY = re.compile(
    r"(?i)^(x-amz-(security-token|signature|credential)|x-goog-(signature|credential)|"
    r"sig|signature|token|access_token|api[_-]?key|key|password|passwd|secret|auth|"
    r"client_secret|sas|se|sp|sv)$"
)

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
#: ``scheme://user:password@host`` where the password may hold ``/``, ``#`` or ``?`` unencoded
#: (a URL parser then reads the rest as path or fragment and misses the credentials): from the
#: scheme to the first ``@`` that is followed by a host.
USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^\s:/@\"'<>`]*:(?P<pw>[^\s@\"'<>`]+)@(?=[\w\[])")
#: ``host:8080/path@v1`` is a port, not a password
PORT = re.compile(r"\d{1,5}(?:[/?#]|$)")

#: Schemes a string argument may carry to be treated as a data reference.
_DATA_SCHEMES = frozenset(
    {"file", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory", "hdfs",
     "webhdfs", "http", "https", "ftp", "sftp", "ssh", "hf", "oci", "oss", "local"}
)


def strip_credentials(url: str) -> str:
    """Remove ``user:password@`` and credential-like query parameters from a URL.

    >>> strip_credentials("https://user:tok@github.com/o/r.git")
    'https://github.com/o/r.git'
    >>> strip_credentials("s3://bucket/key?X-Amz-Signature=abc&v=1")
    's3://bucket/key?v=1'
    """
    if "://" not in url:
        # scp-like git remotes: user@host:path keeps the user (no secret), drop "user:pw@"
        m = re.match(r"^([^@/:]+):([^@/]+)@(.+)$", url)
        return f"{m.group(1)}@{m.group(3)}" if m else url
    m = USERINFO.match(url)
    if m and not PORT.match(m.group("pw")):
        url = m.group("scheme") + url[m.end():]
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        # keep a bare user name for ssh-style URLs (git@host), drop anything with a secret
        netloc = host if ":" in userinfo or parts.scheme not in ("ssh", "git+ssh") else netloc
    query = parts.query
    if query:
        kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if not _SECRET_QUERY.match(k)]
        query = urlencode(kept)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_scheme(value: str) -> str | None:
    """The scheme of an fsspec-style URL (``s3`` for ``s3://b/k``), or None."""
    m = _SCHEME.match(value)
    return m.group(1).lower() if m else None


def looks_like_data_url(value: str) -> bool:
    """Whether a string argument is an fsspec URL that should be hashed as data."""
    scheme = url_scheme(value)
    if scheme is None:
        return False
    # "simplecache::s3://..." chains are fine too: check the first protocol
    return scheme.split("::")[0] in _DATA_SCHEMES


__all__ = ["looks_like_data_url", "strip_credentials", "url_scheme"]
