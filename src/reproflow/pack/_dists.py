"""The distribution files (wheels, or sdists where no wheel exists) of a recorded environment.

Files are fetched once with pip's own ``pip download --no-deps`` (run through ``uv tool run``
with the interpreter the replay would build with, so the wheels carry that interpreter's tags)
into reproflow's cache, ``$REPROFLOW_CACHE_DIR/dists/<python>-<platform>``; a later pack of the
same pins finds them there and downloads nothing. uv's own cache holds wheels unzipped, not the
files themselves, so it cannot give them back byte for byte.

What an offline ``uv pip install --no-index --find-links DIR`` also needs is here too: the build
requirements (``[build-system] requires``, resolved with ``uv pip compile``) of every local
source snapshot and sdist, because uv builds those in an isolated environment from the same
find-links folder.
"""

from __future__ import annotations

import io
import os
import platform
import re
import subprocess
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import EnvironmentBuildError
from ..replay._uv import IndexConfig

#: pip's legacy default for a project without ``[build-system]`` (PEP 518), plus ``wheel``,
#: which older setuptools asks for when building a wheel.
_DEFAULT_BUILD_REQUIRES = ["setuptools>=40.8.0", "wheel"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_dist_filename(filename: str) -> tuple[str, str] | None:
    """(normalized name, version) of a wheel or sdist file name, or None for anything else."""
    from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename

    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        elif filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return _norm(str(name)), str(version)


def dists_cache_dir(python_version: str, environ: Mapping[str, str] | None = None) -> Path:
    """``$REPROFLOW_CACHE_DIR/dists/<python>-<platform>`` (default ``~/.cache/reproflow``)."""
    env = os.environ if environ is None else environ
    base = env.get("REPROFLOW_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "reproflow")
    key = f"py{python_version}-{platform.system().lower()}-{platform.machine().lower()}"
    return Path(base) / "dists" / key


def _pip_index_args(index: IndexConfig, environ: Mapping[str, str]) -> list[str]:
    """pip's index arguments for the configuration uv would use.

    With pip configured (``index.args`` came from pip's files and variables) pip reads that
    configuration itself. With uv configured by variables, the same locations are given to pip.
    """
    if index.args:
        return []  # pip's own configuration: pip reads it as it is
    args: list[str] = []
    default = environ.get("UV_DEFAULT_INDEX") or environ.get("UV_INDEX_URL")
    if environ.get("UV_NO_INDEX", "").lower() in ("1", "true", "yes"):
        args.append("--no-index")
    if default:
        args += ["--index-url", default]
    for var in ("UV_INDEX", "UV_EXTRA_INDEX_URL"):
        for url in (environ.get(var) or "").split():
            args += ["--extra-index-url", url.split("=", 1)[1] if "=" in url.split("://", 1)[0] else url]
    for link in (environ.get("UV_FIND_LINKS") or "").replace(",", " ").split():
        args += ["--find-links", link]
    return args


def _run(cmd: list[str], env: Mapping[str, str], timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=dict(env), check=False, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentBuildError(f"could not run {cmd[0]} ({exc}); reinstall uv with `pip install -U uv`") from exc


def _first_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.strip().startswith(("WARNING", "hint:"))]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return " ".join((errors or lines)[-3:])[:400] or "no message"


def _cached(folder: Path) -> dict[tuple[str, str], Path]:
    out: dict[tuple[str, str], Path] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        parsed = parse_dist_filename(p.name)
        if parsed is not None and p.is_file():
            # a wheel wins over an sdist of the same pin
            if parsed not in out or p.name.endswith(".whl"):
                out[parsed] = p
    return out


def download(
    pins: Iterable[tuple[str, str]],
    *,
    python: str,
    python_version: str,
    uv_bin: str,
    index: IndexConfig,
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[tuple[str, str], Path], list[str]]:
    """Find or fetch one file per ``(name, version)`` pin.

    Returns:
        (pin -> file in the dists cache, the pins no index gave, as ``name==version``).
    """
    env = dict(os.environ if environ is None else environ)
    folder = dists_cache_dir(python_version, env)
    wanted = sorted({(_norm(n), v) for n, v in pins})
    have = _cached(folder)
    missing = [p for p in wanted if p not in have]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [uv_bin, "tool", "run", "--quiet", "--python", python, *index.args, "--from", "pip",
               "pip", "download", "--no-deps", "--disable-pip-version-check", "--progress-bar", "off", "--quiet",
               "--dest", str(folder), *_pip_index_args(index, env), "--", *[f"{n}=={v}" for n, v in missing]]
        env.pop("PYTHONPATH", None)
        env.setdefault("UV_PYTHON_DOWNLOADS", "never")
        proc = _run(cmd, env)
        if proc.returncode != 0 and len(missing) > 1:
            # one pin no index has fails the whole call: fetch one by one to name it
            for n, v in missing:
                _run([*cmd[: cmd.index("--") + 1], f"{n}=={v}"], env)
        elif proc.returncode != 0:
            have = _cached(folder)
            if missing[0] not in have:
                return {p: have[p] for p in wanted if p in have}, [f"{missing[0][0]}=={missing[0][1]} ({_first_line(proc.stderr)})"]
        have = _cached(folder)
    found = {p: have[p] for p in wanted if p in have}
    return found, [f"{n}=={v}" for n, v in wanted if (n, v) not in found]


def build_requires_of_tree(folder: Path) -> list[str]:
    """``[build-system] requires`` of a source tree (pip's default when it says nothing)."""
    return _requires_from_pyproject((folder / "pyproject.toml").read_bytes() if (folder / "pyproject.toml").is_file() else None)


def build_requires_of_sdist(path: Path) -> list[str]:
    """``[build-system] requires`` of an sdist (``<name>-<version>/pyproject.toml`` inside it)."""
    data: bytes | None = None
    try:
        if path.name.endswith(".zip"):
            import zipfile

            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/pyproject.toml")]
                data = zf.read(names[0]) if names else None
        else:
            with tarfile.open(path, "r:*") as tf:
                for m in tf.getmembers():
                    if m.isfile() and m.name.count("/") == 1 and m.name.endswith("/pyproject.toml"):
                        fh = tf.extractfile(m)
                        data = fh.read() if fh else None
                        break
    except (OSError, tarfile.TarError, ValueError, EOFError):
        data = None
    return _requires_from_pyproject(data)


def _requires_from_pyproject(data: bytes | None) -> list[str]:
    if data is None:
        return list(_DEFAULT_BUILD_REQUIRES)
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]
        except ImportError:
            return list(_DEFAULT_BUILD_REQUIRES)
    try:
        doc = tomllib.load(io.BytesIO(data))
    except (ValueError, UnicodeDecodeError):
        return list(_DEFAULT_BUILD_REQUIRES)
    system = doc.get("build-system")
    if not isinstance(system, dict) or not isinstance(system.get("requires"), list):
        return list(_DEFAULT_BUILD_REQUIRES)
    reqs = [str(r) for r in system["requires"] if isinstance(r, str)]
    if "setuptools" in str(system.get("build-backend", "setuptools")) and not any(_norm(r).startswith("wheel") for r in reqs):
        reqs.append("wheel")
    return reqs


def resolve_build_requires(requires: list[str], *, python_version: str, uv_bin: str, index: IndexConfig,
                           environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The exact closure of build requirements, resolved by ``uv pip compile`` for this Python."""
    if not requires:
        return []
    env = dict(os.environ if environ is None else environ)
    env.pop("PYTHONPATH", None)
    cmd = [uv_bin, "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--python-version", python_version,
           *index.args, "-"]
    try:
        proc = subprocess.run(cmd, input="\n".join(sorted(set(requires))) + "\n", capture_output=True, text=True,
                              env=env, check=False, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentBuildError(f"could not run uv ({exc}); reinstall it with `pip install -U uv`") from exc
    if proc.returncode != 0:
        raise EnvironmentBuildError(
            f"could not resolve the build requirements {', '.join(sorted(set(requires)))}: {_first_line(proc.stderr)}; "
            "check the index configuration, or pack with --no-wheels"
        )
    out: list[tuple[str, str]] = []
    for line in proc.stdout.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, _, version = line.partition("==")
            out.append((_norm(name.split("[", 1)[0].strip()), version.split(";", 1)[0].strip()))
    return out


__all__ = [
    "build_requires_of_sdist",
    "build_requires_of_tree",
    "dists_cache_dir",
    "download",
    "parse_dist_filename",
    "resolve_build_requires",
]
