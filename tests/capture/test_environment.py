"""capture_environment: distributions (cross-checked with importlib.metadata), PEP 610, indexes."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import pathlib
import platform
import sys

import pytest

from reproflow.capture.environment import (
    canonical_name,
    capture_environment,
    distributions,
    environment_identity,
    index_configuration,
    local_dir,
    parse_headers,
    platform_info,
)
from reproflow.records import DirectUrl, Environment


@pytest.fixture(scope="module")
def env() -> Environment:
    return capture_environment()


def test_python_and_platform(env: Environment) -> None:
    """Interpreter and OS facts match what the running process reports."""
    assert env.python.implementation == platform.python_implementation()
    assert env.python.version == platform.python_version()
    assert (env.python.executable, env.python.prefix, env.python.base_prefix) == (sys.executable, sys.prefix, sys.base_prefix)
    assert env.platform.system == platform.system() and env.platform.machine == platform.machine()
    if sys.platform.startswith("linux") and platform.libc_ver()[0]:
        assert env.platform.libc == " ".join(platform.libc_ver())
    assert env.sys_path == sys.path


def test_every_distribution_matches_importlib_metadata(env: Environment) -> None:
    """Name, version, requirements and summary agree with importlib.metadata for every active dist."""
    active: dict[str, md.Distribution] = {}
    for d in md.distributions():
        active.setdefault(canonical_name(d.metadata["Name"]), d)
    ours = {canonical_name(d.name): d for d in env.distributions}
    assert set(ours) == set(active)
    for key, dist in active.items():
        rec = ours[key]
        assert rec.version == dist.version, key
        assert rec.requires == [r.strip() for r in (dist.requires or [])], key
        assert rec.summary == ((dist.metadata["Summary"] or "").strip() or None), key
        assert rec.installer == ((dist.read_text("INSTALLER") or "").strip() or None), key
    names = [canonical_name(d.name) for d in env.distributions]
    assert names == sorted(names)


def test_reproflow_is_recorded_as_an_editable_local_dir(env: Environment) -> None:
    """PEP 610: this checkout is an editable directory install whose folder exists."""
    rec = next(d for d in env.distributions if d.name == "reproflow")
    assert rec.direct_url is not None and rec.direct_url.kind == "dir" and rec.direct_url.editable
    folder = local_dir(rec.direct_url)
    assert folder is not None and os.path.isfile(os.path.join(folder, "pyproject.toml"))


def _dist_info(root: pathlib.Path, name: str, version: str, metadata: str = "", direct_url: dict | None = None) -> md.PathDistribution:
    folder = root / f"{name}-{version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{metadata}\n\nLong description\nLicense: not a header\n")
    (folder / "INSTALLER").write_text("uv\n")
    if direct_url is not None:
        (folder / "direct_url.json").write_text(json.dumps(direct_url))
    return md.PathDistribution(folder)


def test_pep610_origins_and_licenses(tmp_path: pathlib.Path) -> None:
    """VCS (credentials stripped), archive hash, local dir, license sources, first-on-path wins."""
    site_a, site_b = tmp_path / "a", tmp_path / "b"
    dists = [
        _dist_info(site_a, "vcs_pkg", "1.0", "License-Expression: MIT\nRequires-Dist: attrs>=22\nRequires-Dist: rich; extra == 'x'",
                   {"url": "https://user:tok3n@github.com/o/r.git", "vcs_info": {"vcs": "git", "commit_id": "abc123", "requested_revision": "main"}}),
        _dist_info(site_a, "arch-pkg", "2.0", "Classifier: License :: OSI Approved :: BSD License\nClassifier: Programming Language :: Python",
                   {"url": "file:///wheels/arch_pkg-2.0-py3-none-any.whl", "archive_info": {"hashes": {"sha256": "ff00"}}}),
        _dist_info(site_a, "dir-pkg", "0.1", "License: Apache Software License\n  Version 2.0, long text\nSummary: A thing",
                   {"url": f"file://{tmp_path}", "dir_info": {}}),
        _dist_info(site_b, "VCS.Pkg", "0.9"),  # shadowed by vcs_pkg above
    ]
    recs = {d.name: d for d in distributions(dists)}
    assert set(recs) == {"vcs_pkg", "arch-pkg", "dir-pkg"}
    vcs = recs["vcs_pkg"]
    assert vcs.version == "1.0" and vcs.license == "MIT" and vcs.requires == ["attrs>=22", "rich; extra == 'x'"]
    assert vcs.direct_url is not None
    assert (vcs.direct_url.url, vcs.direct_url.kind, vcs.direct_url.vcs, vcs.direct_url.commit_id,
            vcs.direct_url.requested_revision) == ("https://github.com/o/r.git", "vcs", "git", "abc123", "main")
    arch = recs["arch-pkg"]
    assert arch.direct_url is not None and arch.direct_url.archive_hash == "sha256=ff00"
    assert arch.license == "BSD License" and arch.license_classifiers == ["License :: OSI Approved :: BSD License"]
    dirp = recs["dir-pkg"]
    assert dirp.direct_url is not None and dirp.direct_url.kind == "dir" and not dirp.direct_url.editable
    assert dirp.license == "Apache Software License" and dirp.summary == "A thing" and dirp.installer == "uv"
    assert local_dir(dirp.direct_url) == str(tmp_path)
    assert local_dir(vcs.direct_url) is None and local_dir(arch.direct_url) is None


def test_parse_headers_stops_at_the_body() -> None:
    """Only the header block counts; folded lines join; CRLF files work."""
    text = "Name: x\r\nVersion: 1\r\nLicense: line one\r\n  line two\r\nRequires-Dist: a\r\nRequires-Dist: b\r\n\r\nName: body\r\n"
    headers = parse_headers(text)
    assert headers["name"] == ["x"] and headers["license"] == ["line one\nline two"]
    assert headers["requires-dist"] == ["a", "b"]


def test_index_configuration_from_env_and_config_files(tmp_path: pathlib.Path) -> None:
    """pip/uv index URLs and find-links from variables, pip.conf and uv.toml, credentials stripped."""
    home = tmp_path / "home"
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text(
        "[global]\nindex-url = https://u:pw@mirror.example/simple\nextra-index-url =\n    https://a.example/simple\n"
        "    https://b.example/simple\nfind-links = /opt/wheels\n"
    )
    (home / ".config" / "uv").mkdir(parents=True)
    (home / ".config" / "uv" / "uv.toml").write_text('[[index]]\nurl = "https://uv.example/simple"\n')
    environ = {
        "HOME": str(home), "XDG_CONFIG_DIRS": str(tmp_path / "none"),
        "PIP_INDEX_URL": "https://ci:s3cr3t@pypi.internal/simple",
        "UV_EXTRA_INDEX_URL": "https://x.example/simple https://y.example/simple",
        "UV_INDEX": "internal=https://tok@idx.example/simple",
        "PIP_FIND_LINKS": "file:///mnt/wheels",
    }
    indexes, links = index_configuration(environ)
    for url in ("https://pypi.internal/simple", "https://x.example/simple", "https://y.example/simple",
                "https://idx.example/simple", "https://mirror.example/simple", "https://a.example/simple",
                "https://b.example/simple", "https://uv.example/simple"):
        assert url in indexes
    assert indexes.index("https://pypi.internal/simple") < indexes.index("https://mirror.example/simple")
    assert not any("s3cr3t" in u or "pw@" in u or "tok@" in u for u in indexes)
    assert links[:2] == ["file:///mnt/wheels", "/opt/wheels"]
    # PIP_CONFIG_FILE=/dev/null switches pip's files off (as pip does)
    indexes_off, _ = index_configuration({**environ, "PIP_CONFIG_FILE": os.devnull})
    assert "https://mirror.example/simple" not in indexes_off


def test_environment_identity(env: Environment) -> None:
    """Identity is stable, ignores variables and paths, and changes with any pin or the Python."""
    again = capture_environment(environ={"ONLY": "this"})
    assert environment_identity(env) == environment_identity(again)
    bumped = env.model_copy(deep=True)
    bumped.distributions[0].version += ".post1"
    assert environment_identity(bumped) != environment_identity(env)
    other_py = env.model_copy(deep=True)
    other_py.python.version = "3.99.0"
    assert environment_identity(other_py) != environment_identity(env)
    editable = env.model_copy(deep=True)
    for d in editable.distributions:
        d.source_blob = "0" * 64  # a stored snapshot is not what the venv holds
        d.record_hashes = "0" * 64  # an editable install's RECORD lists only its hook
    local = [d for d in editable.distributions if d.direct_url and d.direct_url.kind == "dir"]
    assert local and all(d.direct_url and d.direct_url.editable for d in local)
    assert environment_identity(editable) == environment_identity(env)
    copied = editable.model_copy(deep=True)
    plain = next(d for d in copied.distributions if d.direct_url is None)
    assert environment_identity(copied) == environment_identity(env)  # from an index: name and version
    plain.direct_url = DirectUrl(url="file:///src/x", kind="dir")
    with_content = environment_identity(copied)
    assert with_content != environment_identity(env)  # another origin
    plain.record_hashes = "1" * 64  # a non-editable direct install: what it installed counts
    assert environment_identity(copied) != with_content
    moved = env.model_copy(deep=True)
    moved.sys_path = ["/elsewhere"]
    moved.python.executable = "/elsewhere/python"
    assert environment_identity(moved) == environment_identity(env)


def test_platform_info_reads_os_release(tmp_path: pathlib.Path) -> None:
    """Distribution name, id and version come from the os-release file (quotes removed)."""
    path = tmp_path / "os-release"
    path.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n# comment\n')
    info = platform_info(str(path))
    assert (info.distro, info.distro_id, info.distro_version) == ("Debian GNU/Linux 12 (bookworm)", "debian", "12")
    assert platform_info(str(tmp_path / "missing")).distro is None


def test_environment_round_trips_through_json(env: Environment) -> None:
    """The Environment record dumps and validates back to an equal record."""
    assert Environment.model_validate_json(env.model_dump_json()) == env


@pytest.mark.parametrize(
    ("pip_conf", "uv_toml", "environ", "expected"),
    [
        # extra indexes add to PyPI, for pip and for uv alike
        ("[global]\nextra-index-url = file:///mirror/simple\n", None, {},
         ["https://pypi.org/simple", "file:///mirror/simple"]),
        (None, 'extra-index-url = ["https://x.example/simple"]\n', {},
         ["https://pypi.org/simple", "https://x.example/simple"]),
        (None, '[[index]]\nurl = "https://named.example/simple"\n', {},
         ["https://pypi.org/simple", "https://named.example/simple"]),
        (None, None, {"PIP_EXTRA_INDEX_URL": "https://e.example/simple"},
         ["https://pypi.org/simple", "https://e.example/simple"]),
        # only index-url / default-index / [[index]] default = true replace it
        ("[global]\nindex-url = https://m.example/simple\nextra-index-url = https://e.example/simple\n", None, {},
         ["https://m.example/simple", "https://e.example/simple"]),
        (None, '[[index]]\nurl = "https://d.example/simple"\ndefault = true\n', {}, ["https://d.example/simple"]),
        (None, None, {"UV_DEFAULT_INDEX": "https://d.example/simple", "UV_INDEX": "https://e.example/simple"},
         ["https://d.example/simple", "https://e.example/simple"]),
        # --no-index switches the default off
        ("[global]\nno-index = true\nextra-index-url = file:///mirror/simple\n", None, {}, ["file:///mirror/simple"]),
        # nothing configured: nothing recorded (PyPI alone)
        (None, None, {}, []),
    ],
)
def test_index_configuration_keeps_the_default_index_unless_replaced(
    tmp_path: pathlib.Path, pip_conf: str | None, uv_toml: str | None, environ: dict[str, str], expected: list[str]
) -> None:
    """pip's and uv's `extra-index-url` add to PyPI; only `index-url` (or uv's default index) replaces
    it and `no-index` drops it. Recording the extras alone made exports look packages up on the
    mirror only."""
    home = tmp_path / "home"
    if pip_conf is not None:
        (home / ".config" / "pip").mkdir(parents=True)
        (home / ".config" / "pip" / "pip.conf").write_text(pip_conf)
    if uv_toml is not None:
        (home / ".config" / "uv").mkdir(parents=True)
        (home / ".config" / "uv" / "uv.toml").write_text(uv_toml)
    env = {"HOME": str(home), "XDG_CONFIG_DIRS": str(tmp_path / "none"), **environ}
    indexes, _ = index_configuration(env)
    assert indexes == expected


def test_installed_files_digest_is_what_was_installed() -> None:
    """The digest of a RECORD covers each installed file's path and hash in any order; bytecode,
    launchers outside site-packages (they name the venv's interpreter) and the installer's
    bookkeeping are left out; another file hash changes it."""
    from reproflow.capture.environment import installed_files_digest

    record = (
        "probe.py,sha256=AAA,10\n"
        '"odd,name.py",sha256=BBB,3\n'
        "probe-1.0.dist-info/METADATA,sha256=CCC,40\n"
        "probe-1.0.dist-info/RECORD,,\n"
    )
    digest = installed_files_digest(record)
    shuffled = "".join(reversed(record.splitlines(keepends=True)))
    noise = (record + "__pycache__/probe.cpython-311.pyc,sha256=XYZ,99\n../../../bin/probe,sha256=QQQ,200\n"
             "probe-1.0.dist-info/INSTALLER,sha256=uv,3\nprobe-1.0.dist-info/direct_url.json,sha256=DU,50\n"
             "probe-1.0.dist-info/REQUESTED,,\n")
    assert digest is not None and installed_files_digest(shuffled) == digest == installed_files_digest(noise)
    assert installed_files_digest(record.replace("AAA", "AAB")) != digest
    assert installed_files_digest(record.replace("odd,name", "odd,other")) != digest
    assert installed_files_digest(None) is None and installed_files_digest("") is None
