"""uv and this machine's index configuration: reuse pip's or uv's own, never hard-code."""

from __future__ import annotations

import os
from pathlib import Path

from reproflow.replay._uv import find_uv, index_config


def test_find_uv_through_its_module() -> None:
    """uv is found through the uv package, not PATH."""
    path = find_uv()
    assert os.path.isfile(path) and os.access(path, os.X_OK)


def test_pip_conf_is_translated(tmp_path: Path) -> None:
    """pip.conf's indexes and find-links become uv flags, with pip's best-match strategy."""
    conf = tmp_path / ".config" / "pip" / "pip.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\nextra-index-url = file:///a/simple file:///b/simple\n")
    cfg = index_config({"XDG_CONFIG_DIRS": str(tmp_path / "nowhere")}, home=str(tmp_path))
    assert cfg.args == [
        "--index-url", "https://mirror.example/simple",
        "--extra-index-url", "file:///a/simple",
        "--extra-index-url", "file:///b/simple",
        "--index-strategy", "unsafe-best-match",
    ]
    assert str(conf) in cfg.source


def test_pip_env_vars_override_files(tmp_path: Path) -> None:
    """PIP_FIND_LINKS / PIP_INDEX_URL win over pip.conf, as in pip."""
    conf = tmp_path / ".pip" / "pip.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[install]\nfind-links = /from/file\n")
    cfg = index_config({"PIP_FIND_LINKS": "/wheels", "XDG_CONFIG_DIRS": str(tmp_path / "x")}, home=str(tmp_path))
    assert cfg.find_links == ["/wheels"]
    assert "PIP_FIND_LINKS" in cfg.source


def test_uv_configuration_is_left_to_uv(tmp_path: Path) -> None:
    """When uv has its own configuration (UV_* or uv.toml), replay adds no flags."""
    conf = tmp_path / ".config" / "pip" / "pip.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\n")
    cfg = index_config({"UV_INDEX_URL": "https://uv.example/simple", "XDG_CONFIG_DIRS": str(tmp_path / "x")}, home=str(tmp_path))
    assert cfg.args == [] and "UV_INDEX_URL" in cfg.source
    uv_toml = tmp_path / ".config" / "uv" / "uv.toml"
    uv_toml.parent.mkdir(parents=True)
    uv_toml.write_text('index-url = "https://uv.example/simple"\n')
    cfg = index_config({"XDG_CONFIG_DIRS": str(tmp_path / "x")}, home=str(tmp_path))
    assert cfg.args == [] and str(uv_toml) in cfg.source


def test_nothing_configured(tmp_path: Path) -> None:
    """No configuration at all: uv's defaults."""
    cfg = index_config({"XDG_CONFIG_DIRS": str(tmp_path / "x"), "PIP_CONFIG_FILE": os.devnull}, home=str(tmp_path))
    assert cfg.args == [] and cfg.source == "uv defaults"
