"""uv, found through its own Python package, and this machine's package-index configuration.

uv reads its own configuration (``UV_*`` variables, ``uv.toml`` in the user and system config
folders) by itself, and then replay adds nothing. Where uv has none but pip is configured
(``pip.conf`` files, ``PIP_INDEX_URL`` / ``PIP_EXTRA_INDEX_URL`` / ``PIP_FIND_LINKS``), replay
passes pip's indexes and find-links to uv, with ``--index-strategy unsafe-best-match`` (pip's own
behaviour: every index is searched for the exact pin), so a replay resolves pins from the same
places a ``pip install`` on this machine would. Nothing is hard-coded.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import EnvironmentBuildError

#: uv settings that mean "uv is configured here": leave its configuration alone.
_UV_INDEX_VARS = (
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_CONFIG_FILE",
)


def find_uv() -> str:
    """The uv binary shipped by the ``uv`` package (a dependency of reproflow)."""
    try:
        from uv import find_uv_bin
    except ImportError as exc:  # pragma: no cover - uv is a hard dependency
        raise EnvironmentBuildError(
            "the uv package is not installed; reinstall reproflow (`pip install reproflow`) to get it"
        ) from exc
    try:
        return str(find_uv_bin())
    except FileNotFoundError as exc:  # pragma: no cover - a broken uv wheel
        raise EnvironmentBuildError(f"the uv package has no binary ({exc}); reinstall it with `pip install -U uv`") from exc


@dataclass
class IndexConfig:
    """Extra ``uv pip install`` arguments and where they came from (for the plan)."""

    args: list[str] = field(default_factory=list)
    source: str = "uv defaults"
    index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)


def _uv_config_files(env: Mapping[str, str], home: str) -> list[str]:
    xdg_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    xdg_dirs = (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":")
    files = [os.path.join(xdg_home, "uv", "uv.toml")]
    files += [os.path.join(d, "uv", "uv.toml") for d in xdg_dirs if d]
    files.append("/etc/uv/uv.toml")
    return [f for f in files if os.path.isfile(f)]


def _pip_config_files(env: Mapping[str, str], home: str) -> list[str]:
    """pip's configuration files in pip's own order (later files override earlier ones)."""
    if env.get("PIP_CONFIG_FILE") == os.devnull:
        return []
    xdg_dirs = (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":")
    xdg_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files = [os.path.join(d, "pip", "pip.conf") for d in reversed(xdg_dirs) if d]
    files.append("/etc/pip.conf")
    files.append(os.path.join(home, ".pip", "pip.conf"))
    files.append(os.path.join(xdg_home, "pip", "pip.conf"))
    if env.get("PIP_CONFIG_FILE"):
        files.append(env["PIP_CONFIG_FILE"])
    return [f for f in files if os.path.isfile(f)]


def _split(value: str) -> list[str]:
    return [v for v in value.split() if v]


def index_config(environ: Mapping[str, str] | None = None, home: str | None = None) -> IndexConfig:
    """The index configuration a replay's ``uv pip install`` should use on this machine.

    Args:
        environ: environment variables (default ``os.environ``).
        home: the home folder (default ``~``).
    """
    env = os.environ if environ is None else environ
    home = home or os.path.expanduser("~")
    uv_vars = [v for v in _UV_INDEX_VARS if env.get(v)]
    uv_files = _uv_config_files(env, home)
    if uv_vars or uv_files:
        return IndexConfig(source="uv configuration: " + ", ".join(uv_vars + uv_files))

    settings: dict[str, str] = {}
    used: list[str] = []
    for path in _pip_config_files(env, home):
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                for key in ("index-url", "extra-index-url", "find-links", "no-index"):
                    if parser.has_option(section, key):
                        settings[key] = parser.get(section, key)
                        used.append(path)
    for key in ("index-url", "extra-index-url", "find-links", "no-index"):
        var = "PIP_" + key.upper().replace("-", "_")
        if env.get(var):
            settings[key] = env[var]
            used.append(var)
    if not settings:
        return IndexConfig()

    args: list[str] = []
    cfg = IndexConfig(source="pip configuration: " + ", ".join(dict.fromkeys(used)))
    if settings.get("no-index", "").strip().lower() in ("1", "true", "yes", "on"):
        args.append("--no-index")
    if settings.get("index-url"):
        args += ["--index-url", settings["index-url"].strip()]
        cfg.index_urls.append(settings["index-url"].strip())
    for url in _split(settings.get("extra-index-url", "")):
        args += ["--extra-index-url", url]
        cfg.index_urls.append(url)
    for link in _split(settings.get("find-links", "")):
        args += ["--find-links", link]
        cfg.find_links.append(link)
    if len(cfg.index_urls) + len(cfg.find_links) > 0 and not env.get("UV_INDEX_STRATEGY"):
        args += ["--index-strategy", "unsafe-best-match"]
    cfg.args = args
    return cfg


__all__ = ["IndexConfig", "find_uv", "index_config"]
