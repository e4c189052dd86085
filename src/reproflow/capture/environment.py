"""Capture the Python environment: distributions, interpreter, platform, variables, index config.

Speed matters (this runs once per process, before the first task): every distribution's
``METADATA`` is read once and only its header block is parsed, by hand, instead of through
``importlib.metadata``'s properties, each of which re-parses the whole file with ``email``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
import socket
import sqlite3
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ..values._redact import redact_environ
from ..values._urls import strip_credentials
from ..records import DirectUrl, Distribution, Environment, PlatformInfo, PythonInfo
from .. import _forksafe
from ._digest import RACY_WINDOW_NS, hash_cache_db

_NORMALIZE = re.compile(r"[-_.]+")
#: A ``License`` header longer than this (the whole license text) is cut to its first line.
_LICENSE_MAX = 200


def canonical_name(name: str) -> str:
    """PEP 503 normalised distribution name (``Foo_Bar`` -> ``foo-bar``)."""
    return _NORMALIZE.sub("-", name).lower()


_provides: dict[str, list[str]] | None = None
_provides_lock = _forksafe.lock()


def provided_by() -> dict[str, list[str]]:
    """``importlib.metadata.packages_distributions()``, once per process: it reads every installed
    distribution's METADATA and ``top_level.txt`` or RECORD (0.1-0.5 s of CPU with 200 installed),
    so the capture's prefetch thread computes it early, a run's end only looks names up in it, and
    what each distribution provides is cached across processes (:class:`_TopLevelCache`)."""
    global _provides
    with _provides_lock:
        if _provides is None:
            _provides = _packages_distributions()
        return _provides


def _packages_distributions() -> dict[str, list[str]]:
    """What ``importlib.metadata.packages_distributions()`` returns, each distribution's part
    taken from the cache while its metadata files are unchanged."""
    import importlib.metadata as md

    declared = getattr(md, "_top_level_declared", None)
    inferred = getattr(md, "_top_level_inferred", None)
    if declared is None or inferred is None:  # another Python's importlib: no per-distribution parts
        return {k: list(v) for k, v in md.packages_distributions().items()}
    cache = _TopLevelCache()
    out: dict[str, list[str]] = {}
    for dist in md.distributions():
        path = getattr(dist, "_path", None)  # a folder, or a zip file's member (an egg): not cached
        where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
        stamp = _metadata_stamp(where) if where is not None else None
        part = cache.get(where, stamp) if where is not None and stamp is not None else None
        if part is None:
            part = (dist.metadata["Name"], sorted(declared(dist) or inferred(dist)))
            if where is not None and stamp is not None:
                cache.put(where, stamp, part)
        name, tops = part
        for top in tops:
            out.setdefault(top, []).append(name)
    cache.save()
    return out


#: The files of a distribution's metadata folder that packages_distributions() reads.
_STAMPED = ("METADATA", "PKG-INFO", "top_level.txt", "RECORD", "SOURCES.txt")


def _metadata_stamp(path: str) -> str | None:
    """The stat of a distribution's metadata folder (or egg-info file) and of the files in it that
    say its name and its top-level names, as one string; None when it cannot be trusted (missing,
    or modified within the racy window: a write in the same tick could keep its stat)."""
    now = time.time_ns()
    parts = []
    for name in ("", *_STAMPED):
        try:
            st = os.stat(os.path.join(path, name) if name else path)
        except OSError:
            if not name:
                return None
            parts.append("-")
            continue
        if now - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_WINDOW_NS:
            return None
        parts.append(f"{st.st_ino}.{st.st_dev}.{st.st_size}.{st.st_mtime_ns}.{st.st_ctime_ns}")
        if not name and not os.path.isdir(path):  # an .egg-info file is the metadata itself
            break
    return ":".join(parts)


class _TopLevelCache:
    """Each installed distribution's name and top-level names by its metadata folder and that
    folder's stamp (:func:`_metadata_stamp`), in the hash cache's SQLite file: one row a folder
    of ``sys.path`` (site-packages), rewritten when one of its distributions changed, so one
    removed or upgraded leaves nothing behind. A cache that cannot be opened only costs speed."""

    _SCHEMA = "CREATE TABLE IF NOT EXISTS top_level (site TEXT PRIMARY KEY, parts TEXT)"
    _local = types.SimpleNamespace()

    def __init__(self) -> None:
        self._sites: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, dict[str, Any]] = {}
        self._changed: set[str] = set()

    def _db(self) -> Any:
        return hash_cache_db(self._local, self._SCHEMA)

    def _site(self, site: str) -> dict[str, Any]:
        if site not in self._sites:
            found: dict[str, Any] = {}
            db = self._db()
            if db is not None:
                try:
                    row = db.execute("SELECT parts FROM top_level WHERE site = ?", (site,)).fetchone()
                    found = json.loads(row[0]) if row is not None else {}
                except (sqlite3.Error, ValueError):
                    found = {}
            self._sites[site] = found if isinstance(found, dict) else {}
        return self._sites[site]

    def get(self, path: str, stamp: str) -> tuple[Any, list[str]] | None:
        site, leaf = os.path.split(path)
        entry = self._site(site).get(leaf)
        try:
            if entry is None or entry[0] != stamp:
                return None
            name, tops = entry[1], [str(t) for t in entry[2]]
        except (TypeError, IndexError, KeyError):
            return None
        self._seen.setdefault(site, {})[leaf] = entry
        return name, tops

    def put(self, path: str, stamp: str, part: tuple[Any, list[str]]) -> None:
        site, leaf = os.path.split(path)
        self._seen.setdefault(site, {})[leaf] = [stamp, part[0], part[1]]
        self._changed.add(site)

    def save(self) -> None:
        for site, seen in self._seen.items():
            if site not in self._changed and len(seen) == len(self._site(site)):
                continue
            db = self._db()
            if db is None:
                return
            try:
                db.execute("INSERT OR REPLACE INTO top_level VALUES (?, ?)", (site, json.dumps(seen)))
            except sqlite3.Error:
                return


def imported_distributions(modules: Iterable[str] | None = None) -> list[str]:
    """Normalised names of the distributions that provide the modules imported so far
    (``sys.modules`` by default), through ``importlib.metadata.packages_distributions()``.

    Modules no distribution provides (the standard library, the user's own scripts) count for
    nothing; a top-level package two distributions share names both. An editable install's
    RECORD lists only its ``.pth`` hook, so a top-level module found in no RECORD counts for the
    distribution of the same name where one is installed.
    """
    import importlib.metadata as md

    provides = provided_by()
    stdlib = getattr(sys, "stdlib_module_names", frozenset())
    names: set[str] = set()
    for top in {m.partition(".")[0] for m in list(sys.modules if modules is None else modules)}:
        if top in provides:
            names.update(canonical_name(d) for d in provides[top])
        elif top not in stdlib and not top.startswith("_"):
            name = _by_module_name.get(top, False)
            if name is False:  # looked up once per process: each lookup walks sys.path
                try:
                    name = canonical_name(md.distribution(top).metadata["Name"])
                except (md.PackageNotFoundError, TypeError):
                    name = None
                _by_module_name[top] = name
            if name is not None:
                names.add(name)
    return sorted(names)


#: top-level module -> the distribution of the same name (None: none), for modules no RECORD lists
_by_module_name: dict[str, str | None] = {}


def capture_environment(
    environ: Mapping[str, str] | None = None,
    fingerprint: Callable[[str], str] | None = None,
) -> Environment:
    """Everything installed and configured in this Python process.

    Args:
        environ: the environment variables to record (default ``os.environ``); also where the
            pip/uv index settings and config-file locations are read from.
        fingerprint: keyed hash for redacted values (``Store.fingerprint``); see
            :func:`reproflow.values._redact.redact_environ`.

    Returns:
        An :class:`Environment` with distributions sorted by normalised name.
    """
    env = os.environ if environ is None else environ
    index_urls, find_links = index_configuration(env)
    return Environment(
        python=python_info(),
        platform=platform_info(),
        distributions=distributions(),
        env_vars=redact_environ(env, fingerprint),
        index_urls=index_urls,
        find_links=find_links,
        sys_path=list(sys.path),
    )


def distribution_pin(d: Distribution) -> list[Any]:
    """What :func:`environment_identity` counts of one distribution: ``[name, version, origin,
    content]`` (origin: PEP 610 URL, editable flag, VCS commit, archive hash, empty from an
    index; content: the installed files' digest of a non-editable direct install)."""
    origin: list[Any] = []
    content = None
    if d.direct_url is not None:
        u = d.direct_url
        origin = [u.url, u.editable, u.vcs, u.commit_id, u.archive_hash]
        if not u.editable:
            content = d.record_hashes
    return [canonical_name(d.name), d.version, origin, content]


def environment_identity(env: Environment) -> str:
    """SHA-256 identity of what a rebuilt virtual environment must contain.

    Covers the interpreter (implementation and full version) and, sorted by normalised name, each
    distribution's name, version and origin (PEP 610 URL, editable flag, VCS commit, archive
    hash): two environments with the same identity can share one built venv. A package installed
    from a file, a folder or a VCS URL (not from an index, where a name and version stand for one
    build) also counts what it installed: the digest of its ``RECORD``
    (:func:`installed_files_digest`), so a rebuilt package of the same version installed again
    changes the identity; an editable one does not (the venv only points at its folder; the
    project's code is keyed where it is used). Environment variables, paths and platform are
    left out. Computed from the environment alone, so ``reproflow status`` gets the same identity
    from the environment it runs in.
    """
    pins = [distribution_pin(d) for d in env.distributions]
    pins.sort(key=lambda p: (p[0], p[1]))
    payload = {"python": [env.python.implementation, env.python.version], "pins": pins}
    data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# Interpreter and platform
# --------------------------------------------------------------------------------------------


def python_info() -> PythonInfo:
    """The running interpreter."""
    return PythonInfo(
        implementation=platform.python_implementation(),
        version=platform.python_version(),
        executable=sys.executable,
        prefix=sys.prefix,
        base_prefix=sys.base_prefix,
        compiler=platform.python_compiler() or None,
        build=" ".join(x for x in platform.python_build() if x) or None,
    )


def platform_info(os_release: str = "/etc/os-release") -> PlatformInfo:
    """OS, kernel, machine, libc, distribution (``/etc/os-release``) and host name."""
    uname = os.uname() if hasattr(os, "uname") else None
    lib, ver = platform.libc_ver()
    release = _read_os_release(os_release)
    return PlatformInfo(
        system=platform.system(),
        release=uname.release if uname else platform.release(),
        machine=uname.machine if uname else platform.machine(),
        libc=f"{lib} {ver}".strip() or None,
        distro=release.get("PRETTY_NAME"),
        distro_id=release.get("ID"),
        distro_version=release.get("VERSION_ID"),
        hostname=socket.gethostname() or None,
    )


def _read_os_release(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            out[key.strip()] = value
    return out


# --------------------------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------------------------


def distributions(dists: Iterable[Any] | None = None) -> list[Distribution]:
    """Every installed distribution visible on ``sys.path``, first occurrence wins.

    Args:
        dists: ``importlib.metadata`` distribution objects (default: all of them).
    """
    if dists is None:
        from importlib.metadata import distributions as _all

        dists = _all()
    seen: set[str] = set()
    out: list[Distribution] = []
    for dist in dists:
        record = _distribution(dist)
        if record is None:
            continue
        key = canonical_name(record.name)
        if key in seen:
            continue  # shadowed by an earlier sys.path entry: not the one that imports
        seen.add(key)
        out.append(record)
    out.sort(key=lambda d: canonical_name(d.name))
    return out


def _distribution(dist: Any) -> Distribution | None:
    read, read_head = _readers(dist)
    text = read_head("METADATA") or read_head("PKG-INFO")
    if not text:
        return None
    headers = parse_headers(text)
    name = _first(headers, "name")
    version = _first(headers, "version")
    if not name or version is None:
        return None
    license_classifiers = [c for c in headers.get("classifier", ()) if c.startswith("License ::")]
    installer = read("INSTALLER")
    direct_url = _direct_url(read("direct_url.json"))
    installed = None
    if direct_url is not None and not direct_url.editable:
        installed = installed_files_digest(read("RECORD"))
    return Distribution(
        name=name,
        version=version,
        direct_url=direct_url,
        record_hashes=installed,
        installer=(installer.strip() or None) if installer else None,
        requires=headers.get("requires-dist", []),
        license=_license(headers, license_classifiers),
        license_classifiers=license_classifiers,
        summary=_first(headers, "summary") or None,
    )


#: Lines of a RECORD that say nothing about the installed code: who installed it and how.
_BOOKKEEPING = ("INSTALLER", "REQUESTED", "RECORD", "direct_url.json", "uv_cache.json")


def installed_files_digest(record: str | None) -> str | None:
    """SHA-256 over what a distribution installed, from its ``RECORD`` (None without one).

    Each listed file's path and hash, sorted. Left out: compiled bytecode (its bytes embed
    timestamps), files outside site-packages (``../../../bin/tool``: launchers whose first line
    names the venv's own interpreter) and the installer's bookkeeping in the ``.dist-info``
    folder (``INSTALLER``, ``REQUESTED``, ``direct_url.json``, the ``RECORD`` itself). So the
    same build installed again, by pip or uv, into this venv or another, gives the same digest,
    and a rebuilt one with other contents does not.
    """
    if not record:
        return None
    import csv

    entries = []
    for row in csv.reader(record.splitlines()):
        if not row or not row[0] or row[0].endswith((".pyc", ".pyo")) or row[0].startswith(".."):
            continue
        head, _, base = row[0].rpartition("/")
        if head.endswith(".dist-info") and base in _BOOKKEEPING:
            continue
        entries.append(f"{row[0]}\0{row[1] if len(row) > 1 else ''}")
    entries.sort()
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


#: First read of a METADATA file; the header block nearly always ends inside it.
_HEAD_CHUNK = 16384
_NOT_THERE = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def _readers(dist: Any) -> tuple[Callable[[str], str | None], Callable[[str], str | None]]:
    """(read a whole file, read a METADATA file's header block) for one distribution.

    A dist-info folder on disk is read directly, and only up to the end of METADATA's header
    block (the long description after it can be 100 kB); any other kind of distribution goes
    through ``importlib.metadata``'s ``read_text``.
    """
    path = getattr(dist, "_path", None)  # PathDistribution's folder (stable since Python 3.8)
    if path is None or not isinstance(path, os.PathLike):
        return dist.read_text, dist.read_text
    folder = os.fspath(path)

    def read(name: str) -> str | None:
        try:
            with open(os.path.join(folder, name), "rb") as fh:
                return fh.read().decode("utf-8", "replace")
        except _NOT_THERE:
            return None

    def read_head(name: str) -> str | None:
        try:
            with open(os.path.join(folder, name), "rb") as fh:
                data = fh.read(_HEAD_CHUNK)
                end = data.find(b"\n\n")
                if end < 0 and b"\r\n\r\n" not in data and len(data) == _HEAD_CHUNK:
                    data += fh.read()
        except _NOT_THERE:
            return None
        if end >= 0:
            data = data[: end + 1]
        return data.decode("utf-8", "replace")

    return read, read_head


#: The METADATA headers reproflow keeps (``License`` may continue on indented lines).
_HEADER = re.compile(
    r"^(name|version|summary|license-expression|license|requires-dist|classifier(?=:[ \t]*License ::))"
    r":[ \t]*"
    r"(.*(?:\n[ \t].*)*)$",
    re.MULTILINE | re.IGNORECASE,
)


def parse_headers(text: str) -> dict[str, list[str]]:
    """The headers reproflow uses from a METADATA file: lower-cased name -> values, in order.

    Only the header block is read (the long description follows the first blank line); folded
    continuation lines are joined with newlines. One C-level regex scan, no ``email`` parser.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    end = text.find("\n\n")
    head = text if end < 0 else text[:end]
    headers: dict[str, list[str]] = {}
    for key, value in _HEADER.findall(head):
        if "\n" in value:
            value = "\n".join(part.strip() for part in value.split("\n"))
        headers.setdefault(key.lower(), []).append(value.strip())
    return headers


def _first(headers: dict[str, list[str]], key: str) -> str | None:
    values = headers.get(key)
    return values[0] if values else None


def _license(headers: dict[str, list[str]], classifiers: list[str]) -> str | None:
    expr = _first(headers, "license-expression")
    if expr:
        return expr
    text = (_first(headers, "license") or "").strip()
    if text and text.upper() != "UNKNOWN":
        return text.split("\n", 1)[0].strip()[:_LICENSE_MAX]
    if classifiers:
        return "; ".join(c.rsplit("::", 1)[-1].strip() for c in classifiers)
    return None


def _direct_url(text: str | None) -> DirectUrl | None:
    """PEP 610 ``direct_url.json`` as a record (credentials stripped), None when absent/invalid."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return None
    url = strip_credentials(data["url"])
    if isinstance(data.get("vcs_info"), dict):
        vcs = data["vcs_info"]
        return DirectUrl(
            url=url,
            kind="vcs",
            vcs=vcs.get("vcs"),
            commit_id=vcs.get("commit_id"),
            requested_revision=vcs.get("requested_revision"),
        )
    if isinstance(data.get("archive_info"), dict):
        info = data["archive_info"]
        archive_hash = None
        hashes = info.get("hashes")
        if isinstance(hashes, dict) and hashes:
            algo = "sha256" if "sha256" in hashes else sorted(hashes)[0]
            archive_hash = f"{algo}={hashes[algo]}"
        elif isinstance(info.get("hash"), str):
            archive_hash = info["hash"].replace(":", "=", 1) if "=" not in info["hash"] else info["hash"]
        return DirectUrl(url=url, kind="archive", archive_hash=archive_hash)
    dir_info = data.get("dir_info")
    editable = bool(dir_info.get("editable", False)) if isinstance(dir_info, dict) else False
    return DirectUrl(url=url, kind="dir", editable=editable)


def local_dir(direct_url: DirectUrl | None) -> str | None:
    """The local project folder of a ``file://`` directory install (editable or not), or None."""
    if direct_url is None or direct_url.kind != "dir" or not direct_url.url.startswith("file://"):
        return None
    from urllib.parse import unquote, urlsplit

    path = unquote(urlsplit(direct_url.url).path)
    return path if path and os.path.isdir(path) else None


# --------------------------------------------------------------------------------------------
# Package indexes
# --------------------------------------------------------------------------------------------

#: PyPI, the index pip and uv read unless the configuration replaces it.
DEFAULT_INDEX = "https://pypi.org/simple"

_REPLACE_ENV = ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX")
_EXTRA_ENV = ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX")
_NO_INDEX_ENV = ("PIP_NO_INDEX", "UV_NO_INDEX")
_FIND_LINKS_ENV = ("PIP_FIND_LINKS", "UV_FIND_LINKS")
_TRUE = ("1", "true", "yes", "on")


def index_configuration(environ: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Package index URLs and find-links locations from pip/uv variables and config files.

    Reads ``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``, ``UV_INDEX_URL``, ``UV_EXTRA_INDEX_URL``,
    ``UV_DEFAULT_INDEX``, ``UV_INDEX``, ``*_NO_INDEX`` (and ``*_FIND_LINKS``), then pip.conf files
    (global, user, ``$PIP_CONFIG_FILE``, the venv's) and uv.toml files. Every URL has its
    credentials stripped.

    The default index counts as pip and uv count it: ``extra-index-url`` (and uv's ``[[index]]``
    entries) add to it, and only ``index-url`` / ``default-index`` (or ``[[index]] default =
    true``) replace it, or ``no-index`` switches it off. So with extra indexes only, PyPI is the
    first entry of the result.

    Returns:
        (index URLs, find-links locations), each de-duplicated in order of precedence: the
        default index (or the indexes replacing it) first, then the extra ones. Both are empty
        when nothing is configured (PyPI alone).
    """
    replace: list[str] = []
    extra: list[str] = []
    links: list[str] = []
    no_index = any(environ.get(k, "").strip().lower() in _TRUE for k in _NO_INDEX_ENV)
    for key in _REPLACE_ENV:
        replace.extend(_split(environ.get(key, "")))
    for key in _EXTRA_ENV:
        extra.extend(_split(environ.get(key, "")))
    for key in _FIND_LINKS_ENV:
        links.extend(_split(environ.get(key, "")))
    files = [_read_pip_conf(p) for p in _pip_config_files(environ)]
    files += [_read_uv_toml(p) for p in _uv_config_files(environ)]
    for conf in files:
        replace.extend(conf.replace)
        extra.extend(conf.extra)
        links.extend(conf.links)
        no_index = no_index or conf.no_index
    if not (replace or extra):
        default: list[str] = []
    elif replace or no_index:
        default = replace
    else:
        default = [DEFAULT_INDEX]
    indexes = _dedupe(strip_credentials(u) for u in default + extra)
    return indexes, _dedupe(strip_credentials(u) for u in links)


@dataclasses.dataclass
class _IndexConf:
    replace: list[str] = dataclasses.field(default_factory=list)  #: index-url: replaces the default
    extra: list[str] = dataclasses.field(default_factory=list)  #: extra-index-url: adds to it
    links: list[str] = dataclasses.field(default_factory=list)
    no_index: bool = False


def _split(value: str) -> list[str]:
    # uv's UV_INDEX entries may be "name=url"
    out = []
    for item in value.split():
        if "=" in item.split("://", 1)[0]:
            item = item.split("=", 1)[1]
        out.append(item)
    return out


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    return [x for x in items if x and not (x in seen or seen.add(x))]  # type: ignore[func-returns-value]


def _pip_config_files(environ: Mapping[str, str]) -> Iterator[str]:
    home = environ.get("HOME") or os.path.expanduser("~")
    xdg_dirs = environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":")
    candidates = ["/etc/pip.conf", *(os.path.join(d, "pip", "pip.conf") for d in xdg_dirs if d)]
    candidates.append(os.path.join(environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "pip", "pip.conf"))
    candidates.append(os.path.join(home, ".pip", "pip.conf"))
    candidates.append(os.path.join(sys.prefix, "pip.conf"))
    config_file = environ.get("PIP_CONFIG_FILE")
    if config_file == os.devnull:
        return
    if config_file:
        candidates.append(config_file)
    for path in _dedupe(candidates):
        if os.path.isfile(path):
            yield path


def _uv_config_files(environ: Mapping[str, str]) -> Iterator[str]:
    if environ.get("UV_NO_CONFIG"):
        return
    home = environ.get("HOME") or os.path.expanduser("~")
    candidates = [os.path.join(environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "uv", "uv.toml")]
    candidates += [os.path.join(d, "uv", "uv.toml") for d in environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":") if d]
    candidates.append("/etc/uv/uv.toml")
    if environ.get("UV_CONFIG_FILE"):
        candidates.insert(0, environ["UV_CONFIG_FILE"])
    for path in _dedupe(candidates):
        if os.path.isfile(path):
            yield path


def _read_pip_conf(path: str) -> _IndexConf:
    import configparser

    parser = configparser.RawConfigParser()
    conf = _IndexConf()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return conf
    for section in ("global", "install", "download", "wheel"):
        if not parser.has_section(section):
            continue
        for key in ("index-url", "index_url"):
            conf.replace.extend(parser.get(section, key, fallback="").split())
        for key in ("extra-index-url", "extra_index_url"):
            conf.extra.extend(parser.get(section, key, fallback="").split())
        for key in ("find-links", "find_links"):
            conf.links.extend(parser.get(section, key, fallback="").split())
        for key in ("no-index", "no_index"):
            conf.no_index = conf.no_index or parser.get(section, key, fallback="").strip().lower() in _TRUE
    return conf


def _read_uv_toml(path: str) -> _IndexConf:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    conf = _IndexConf()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, ValueError):
        return conf

    def strings(value: Any) -> list[str]:
        items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        return [x for x in items if isinstance(x, str)]

    conf.replace += strings(data.get("index-url")) + strings(data.get("default-index"))
    conf.extra += strings(data.get("extra-index-url"))
    for entry in data.get("index", []) if isinstance(data.get("index"), list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            (conf.replace if entry.get("default") is True else conf.extra).append(entry["url"])
    conf.links = strings(data.get("find-links"))
    conf.no_index = data.get("no-index") is True
    return conf


__all__ = [
    "canonical_name",
    "capture_environment",
    "distribution_pin",
    "distributions",
    "environment_identity",
    "installed_files_digest",
    "index_configuration",
    "local_dir",
    "parse_headers",
    "platform_info",
    "python_info",
]
