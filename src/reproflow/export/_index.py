"""Which recorded releases a package index lists: the one question uv cannot answer in bulk.

uv locks the pins (:mod:`._uvlock`), but its resolver stops at the first pin no index holds, so
finding 100 missing pins would take 100 uv runs (minutes). This reader asks each index's
PEP 503/691 project page (``file://`` folders, or ``http(s)://`` with JSON preferred) whether it
lists a file of that exact version, and only its "yes" or "no" is used; hashes and URLs still
come from uv. Anything it cannot tell (an unreachable index, uv set offline) is left to uv.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlparse

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)

_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.2"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href") if tag == "a" else None
        if href:
            self.names.append(unquote(urlparse(href).path.rsplit("/", 1)[-1]))


def _filenames(index_url: str, name: str, timeout: float) -> list[str] | None:
    """File names the index lists for a project ([] when it has none; None when it cannot say)."""
    page = urljoin(index_url.rstrip("/") + "/", canonicalize_name(name) + "/")
    parsed = urlparse(page)
    try:
        if parsed.scheme == "file":
            path = os.path.join(unquote(parsed.path), "index.html")
            if not os.path.isfile(path):
                return []
            with open(path, "rb") as fh:
                body, ctype = fh.read(), "text/html"
        elif parsed.scheme in ("http", "https"):
            if os.environ.get("UV_OFFLINE", "").lower() in ("1", "true", "yes"):
                return None  # uv will not reach it either: let uv say so
            req = urllib.request.Request(page, headers={"Accept": _ACCEPT, "User-Agent": "reproflow"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only
                body, ctype = resp.read(), resp.headers.get("Content-Type", "")
        else:
            return None
    except urllib.error.HTTPError as exc:
        return [] if exc.code == 404 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if "json" in ctype:
        try:
            return [str(f["filename"]) for f in json.loads(body).get("files", [])]
        except (ValueError, KeyError, TypeError):
            return None
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    return parser.names


def _lists(names: list[str], name: str, version: str) -> bool:
    want, cname = canonicalize_version(version), canonicalize_name(name)
    for filename in names:
        try:
            if filename.endswith(".whl"):
                fname, fver, _, _ = parse_wheel_filename(filename)
            else:
                fname, fver = parse_sdist_filename(filename)
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
        if fname == cname and canonicalize_version(fver) == want:
            return True
    return False


def listed(index_urls: list[str], pins: list[tuple[str, str]], *, timeout: float = 30.0) -> dict[str, bool | None]:
    """For each (name, version): True if some index lists a file of it, False if every index
    answered and none does, None if an index could not be asked. Keyed by normalized name."""

    def one(pin: tuple[str, str]) -> bool | None:
        unknown = False
        for index in index_urls:
            names = _filenames(index, pin[0], timeout)
            if names is None:
                unknown = True
            elif _lists(names, *pin):
                return True
        return None if unknown else False

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(one, pins))
    return {canonicalize_name(n): a for (n, _), a in zip(pins, answers)}


__all__ = ["listed"]
