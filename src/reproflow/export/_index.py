"""A small reader of PEP 503/691 "simple" package indexes: which files exist for name==version.

Lock files need each artifact's URL and hash, which an installed environment does not keep;
the index that served it does. ``file://`` indexes (a folder of ``<name>/index.html``) and
``http(s)://`` ones (JSON preferred, HTML accepted) are both read.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import unquote, urldefrag, urljoin, urlparse

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)

from .._urls import strip_credentials
from ..errors import ExportError

_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.2"


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    hashes: dict[str, str] = field(default_factory=dict)
    requires_python: str | None = None
    size: int | None = None
    yanked: bool = False

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            a = dict(attrs)
            if a.get("href"):
                self.links.append((str(a["href"]), a))


def _fetch(url: str, timeout: float) -> tuple[bytes, str, str]:
    """(body, content type, final URL) of a project page."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = unquote(parsed.path)
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
            url = urljoin(url if url.endswith("/") else url + "/", "index.html")
        with open(path, "rb") as fh:
            return fh.read(), "text/html", url
    req = urllib.request.Request(url, headers={"Accept": _ACCEPT, "User-Agent": "reproflow"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only
        return resp.read(), resp.headers.get("Content-Type", ""), resp.geturl()


def project_files(index_url: str, name: str, *, timeout: float = 30.0) -> list[IndexFile]:
    """Every file the index lists for a project (empty when the project is not there)."""
    base = index_url.rstrip("/") + "/"
    page = urljoin(base, canonicalize_name(name) + "/")
    try:
        body, ctype, final = _fetch(page, timeout)
    except FileNotFoundError:
        return []
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise ExportError(
            f"package index {strip_credentials(index_url)!r} answered {exc.code} for {name!r}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ExportError(
            f"cannot reach package index {strip_credentials(index_url)!r} ({exc}); pass a "
            "reachable one with --index-url (a file:// folder works offline)"
        ) from None
    files: list[IndexFile] = []
    if "json" in ctype:
        data = json.loads(body)
        for f in data.get("files", []):
            url = urljoin(final, f["url"])
            files.append(
                IndexFile(
                    filename=f["filename"],
                    url=url,
                    hashes=dict(f.get("hashes", {})),
                    requires_python=f.get("requires-python"),
                    size=f.get("size"),
                    yanked=bool(f.get("yanked")),
                )
            )
        return files
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    for href, attrs in parser.links:
        absolute, frag = urldefrag(urljoin(final, href))
        hashes = {}
        if "=" in frag:
            algo, digest = frag.split("=", 1)
            hashes[algo] = digest
        filename = unquote(urlparse(absolute).path.rsplit("/", 1)[-1])
        files.append(
            IndexFile(
                filename=filename,
                url=absolute,
                hashes=hashes,
                requires_python=attrs.get("data-requires-python"),
                yanked="data-yanked" in attrs,
            )
        )
    return files


def release_files(index_urls: list[str], name: str, version: str) -> tuple[str, list[IndexFile]] | None:
    """(index URL, files) of the first index holding ``name==version`` wheels or sdist."""
    want = canonicalize_version(version)
    cname = canonicalize_name(name)
    for index in index_urls:
        found: list[IndexFile] = []
        for f in project_files(index, name):
            try:
                if f.is_wheel:
                    fname, fver, _, _ = parse_wheel_filename(f.filename)
                else:
                    fname, fver = parse_sdist_filename(f.filename)
            except (InvalidWheelFilename, InvalidSdistFilename):
                continue
            if fname == cname and canonicalize_version(fver) == want and "sha256" in f.hashes:
                found.append(f)
        if found:
            return index, found
    return None


__all__ = ["IndexFile", "project_files", "release_files"]
