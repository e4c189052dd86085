"""Rebuild a recorded environment with uv: a fresh venv, exact pins, local sources, VCS commits.

The environment is built in a folder keyed by a hash of what it will hold (the validated pins,
local sources by content, and the Python it is built with; never the record's own
``environment_hash``, which is untrusted) under the env cache
(``$REPROFLOW_CACHE_DIR/envs``, default ``~/.cache/reproflow/envs``), never inside the store.
A marker file is written only after a complete, successful build; a folder without it is a
broken earlier attempt and is rebuilt. A file lock keeps two replays from building the same
environment at once. A second replay of the same run finds the marker and starts at once.

What gets installed, each with ``--no-deps`` (the record already lists every distribution):

* ordinary distributions: ``name==version`` from this machine's index configuration
  (:mod:`reproflow.replay._uv`);
* VCS distributions: ``name @ git+URL@COMMIT`` from their PEP 610 record;
* local and editable distributions: their stored source snapshot, extracted through
  :func:`reproflow.capture.source.extract_source` and installed (not editable) from that folder;
* a local archive that still exists with its recorded hash: that file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import EnvironmentBuildError, PinNotResolvable
from ..records import Distribution, Environment
from ..store import Store
from ._python import InterpreterChoice
from ._uv import IndexConfig

MARKER = "reproflow-env.json"

Progress = Callable[[str, int, int], None]  # (description, completed, total)


def env_cache_root(environ: dict[str, str] | None = None) -> Path:
    """``$REPROFLOW_CACHE_DIR/envs``, default ``~/.cache/reproflow/envs``."""
    env = os.environ if environ is None else environ
    base = env.get("REPROFLOW_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "reproflow")
    return Path(base) / "envs"


@dataclass
class PinSpec:
    """How one recorded distribution will be installed."""

    name: str
    version: str
    kind: Literal["index", "vcs", "local", "archive"]
    requirement: str  #: what uv is given ("name==1.0", "name @ git+...", a folder or file path)
    source_blob: str | None = None
    note: str | None = None


@dataclass
class EnvPlan:
    """The install plan for one recorded environment."""

    python_version: str
    implementation: str
    pins: list[PinSpec] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  #: what cannot be rebuilt as recorded
    refused: list[str] = field(default_factory=list)  #: unsafe record fields: the replay must not run

    @property
    def by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.pins:
            out[p.kind] = out.get(p.kind, 0) + 1
        return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _file_path(url: str) -> str | None:
    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(url).path)
    return None


#: PEP 508 distribution names (what ``packaging`` accepts, anchored: nothing an installer reads
#: as an option or a URL fits).
_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
_VCS = {"git", "hg", "svn", "bzr"}
_VCS_URL = re.compile(r"^(?:(?:git|hg|svn|bzr)\+)?(?:https?|ssh|git|file|svn|bzr)://[^\s@#?][^\s#?]*$")
_VCS_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")


def pin_problem(dist: Distribution) -> str | None:
    """Why a recorded distribution is unsafe to hand to the installer, or None.

    A record may come from someone else's store: a name such as ``--index-url=http://...`` or a
    version such as ``1.0 --pre`` must never reach ``uv pip install`` (it would be read as an
    option), and a VCS URL or commit must be a plain URL and ref.
    """
    from packaging.version import InvalidVersion, Version

    if not _NAME.match(dist.name):
        return f"distribution name {dist.name!r} is not a valid PEP 508 name"
    try:
        Version(dist.version)
    except InvalidVersion:
        return f"{dist.name}: version {dist.version!r} is not a valid PEP 440 version"
    du = dist.direct_url
    if du is not None and du.vcs:
        if du.vcs not in _VCS:
            return f"{dist.name}: unknown VCS {du.vcs!r}"
        if not _VCS_URL.match(du.url):
            return f"{dist.name}: VCS URL {du.url!r} is not a plain URL"
        if du.commit_id and not _VCS_REF.match(du.commit_id):
            return f"{dist.name}: VCS commit {du.commit_id!r} is not a plain revision"
    elif du is not None:
        from urllib.parse import urlparse

        from ..values._untrusted import local_path_problem, text_problem

        try:
            urlparse(du.url)
        except ValueError:
            return f"{dist.name}: URL {du.url[:200]!r} is not a URL"
        problem = text_problem(du.url, f"{dist.name}: URL")
        if not problem and du.url.startswith("file://"):
            problem = local_path_problem(_file_path(du.url), f"{dist.name}: local path")
        if problem:
            return problem
    if dist.source_blob is not None and not re.fullmatch(r"[0-9a-f]{64}", dist.source_blob):
        return f"{dist.name}: stored source digest {dist.source_blob[:80]!r} is not a SHA-256 hex digest"
    return None


def _archive_matches(path: str, archive_hash: str) -> bool:
    """Whether the file hashes as PEP 610's ``archive_info.hash`` (``algo=hex``) says."""
    import hashlib

    algo, _, expected = archive_hash.partition("=")
    try:
        h = hashlib.new(algo.lower())
    except (ValueError, TypeError):
        return False
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return bool(expected) and h.hexdigest() == expected.lower()


def plan_environment(env: Environment, store: Store | None = None) -> EnvPlan:
    """Decide how each recorded distribution is installed; list what cannot be rebuilt, and
    refuse (``EnvPlan.refused``) what is unsafe to install.

    Args:
        env: the recorded environment.
        store: when given, local distributions' source blobs are checked for presence.
    """
    plan = EnvPlan(python_version=env.python.version, implementation=env.python.implementation)
    for dist in sorted(env.distributions, key=lambda d: _norm(d.name)):
        problem = pin_problem(dist)
        if problem is not None:
            plan.refused.append(problem)
            continue
        plan.pins.append(_pin_for(dist, plan, store))
    return plan


def _pin_for(dist: Distribution, plan: EnvPlan, store: Store | None) -> PinSpec:
    du = dist.direct_url
    if du is not None and du.vcs:
        if not du.commit_id:
            plan.problems.append(f"{dist.name}: VCS install without a recorded commit; installing {du.url} at its default branch")
        ref = f"@{du.commit_id}" if du.commit_id else ""
        url = du.url if du.url.startswith(f"{du.vcs}+") else f"{du.vcs}+{du.url}"
        return PinSpec(dist.name, dist.version, "vcs", f"{dist.name} @ {url}{ref}")
    if du is not None and du.url.startswith("file://"):
        path = _file_path(du.url) or du.url
        if dist.source_blob:
            if store is not None and not store.has_blob(dist.source_blob):
                plan.problems.append(f"{dist.name}: its stored source snapshot sha256:{dist.source_blob[:12]} is missing from the store")
            return PinSpec(dist.name, dist.version, "local", path, source_blob=dist.source_blob,
                           note="editable" if du.editable else "local directory")
        if du.archive_hash and os.path.isabs(path) and os.path.isfile(path):
            if _archive_matches(path, du.archive_hash):
                return PinSpec(dist.name, dist.version, "archive", path, note=du.archive_hash)
            plan.refused.append(f"{dist.name}: the archive {path} does not hash as recorded ({du.archive_hash[:24]}...)")
            return PinSpec(dist.name, dist.version, "index", f"{dist.name}=={dist.version}", note="archive changed")
        plan.problems.append(
            f"{dist.name} {dist.version}: local {'editable ' if du.editable else ''}install from {path} has no "
            "stored source snapshot; trying the index instead"
        )
        return PinSpec(dist.name, dist.version, "index", f"{dist.name}=={dist.version}", note="local source not stored")
    return PinSpec(dist.name, dist.version, "index", f"{dist.name}=={dist.version}")


@dataclass
class BuiltEnv:
    """A ready environment."""

    path: Path
    python: str  #: the venv's interpreter
    python_version: str
    reused: bool
    seconds: float
    n_pins: int
    warning: str | None = None


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _pin_lines(plan: EnvPlan) -> list[str]:
    return [p.requirement if p.kind != "local" else f"{p.name}=={p.version} (local sha256:{p.source_blob})"
            for p in plan.pins]


def env_key(plan: EnvPlan, python_version: str) -> str:
    """The cache folder name: a hash of what the folder will hold (the validated pins, local
    sources by their content hash, and the Python version it is built with).

    Never the record's own ``environment_hash``: a record is untrusted input, so a crafted hash
    (``..``, ``.``) must not name a folder, and a record that claims another run's hash with a
    changed package list must not land in (or be served from) that run's environment.
    """
    ident = json.dumps({"python": python_version, "pins": _pin_lines(plan)}, sort_keys=True)
    return "env-" + hashlib.sha256(ident.encode()).hexdigest()[:40]


def cached_env(root: Path, key: str) -> BuiltEnv | None:
    """A complete environment in the cache for this key, or None."""
    folder = root / key
    marker = folder / MARKER
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    python = _venv_python(folder / "venv")
    if not python.exists():
        return None
    return BuiltEnv(folder, str(python), str(meta.get("python_version", "")), True, 0.0, int(meta.get("n_pins", 0)))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock, builds are still atomic per marker
            yield
            return
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _run_uv(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=3600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentBuildError(f"could not run uv ({exc}); reinstall it with `pip install -U uv`") from exc


def _failed_pins(stderr: str, pins: list[PinSpec]) -> list[str]:
    """The pins a uv error message names (by normalized distribution name)."""
    text = _norm(stderr)
    named = [p for p in pins if re.search(rf"(?<![a-z0-9-]){re.escape(_norm(p.name))}(?![a-z0-9])", text)]
    return [p.requirement if p.kind != "local" else f"{p.name} (local source)" for p in named]


def _extract_local(store: Store, pin: PinSpec, dest: Path) -> Path:
    from ..capture.source import extract_source

    assert pin.source_blob is not None
    data = store.get_blob(pin.source_blob)
    dest.mkdir(parents=True, exist_ok=True)
    extract_source(data, dest)
    return _project_dir(dest)


def _project_dir(dest: Path) -> Path:
    """The folder holding pyproject.toml/setup.py: the archive root or its single subfolder."""
    markers = ("pyproject.toml", "setup.py", "setup.cfg")
    if any((dest / m).exists() for m in markers):
        return dest
    subdirs = [p for p in dest.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and any((subdirs[0] / m).exists() for m in markers):
        return subdirs[0]
    return dest


def build_environment(
    env: Environment,
    *,
    choice: InterpreterChoice,
    store: Store,
    uv_bin: str,
    index: IndexConfig,
    cache_root: Path | None,
    work_dir: Path,
    progress: Progress | None = None,
    plan: EnvPlan | None = None,
) -> BuiltEnv:
    """Build (or reuse) the recorded environment.

    Args:
        env: the recorded environment.
        choice: the interpreter to build with.
        store: where local distributions' source snapshots live.
        uv_bin: the uv binary.
        index: index arguments for ``uv pip install``.
        cache_root: the env cache folder; ``None`` builds in ``work_dir`` with no reuse.
        work_dir: the replay's work folder (used when there is no cache).
        progress: called with (description, completed, total) as steps finish.
        plan: a precomputed :func:`plan_environment` result.

    Raises:
        PinNotResolvable: uv could not install one or more recorded pins.
        EnvironmentBuildError: the venv could not be created.
    """
    plan = plan or plan_environment(env, store)
    key = env_key(plan, choice.interpreter.version)
    report = progress or (lambda *_: None)
    if cache_root is None:
        folder = work_dir / "env"
        return _build(env, plan, folder, choice, store, uv_bin, index, report)
    hit = cached_env(cache_root, key)
    if hit is not None:
        hit.warning = choice.warning
        return hit
    with _locked(cache_root / f".{key}.lock"):
        hit = cached_env(cache_root, key)  # built by another replay while we waited
        if hit is not None:
            hit.warning = choice.warning
            return hit
        folder = cache_root / key
        if folder.exists():
            shutil.rmtree(folder)  # no marker: an interrupted or failed build
        try:
            return _build(env, plan, folder, choice, store, uv_bin, index, report)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise


def _build(
    env: Environment,
    plan: EnvPlan,
    folder: Path,
    choice: InterpreterChoice,
    store: Store,
    uv_bin: str,
    index: IndexConfig,
    report: Progress,
) -> BuiltEnv:
    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    venv = folder / "venv"
    uv_env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", VIRTUAL_ENV=str(venv))
    uv_env.pop("PYTHONPATH", None)
    uv_env.pop("PYTHONPYCACHEPREFIX", None)  # the bytecode belongs in the environment's own __pycache__
    local = [p for p in plan.pins if p.kind == "local"]
    total = 2 + len(local)
    report("create venv", 0, total)
    proc = _run_uv([uv_bin, "venv", "--quiet", "--no-project", "--python", choice.interpreter.path, str(venv)], uv_env)
    if proc.returncode != 0:
        raise EnvironmentBuildError(
            f"uv venv with {choice.interpreter.path} failed: {_first_error(proc.stderr)}; pass another interpreter with --python PATH"
        )
    python = str(_venv_python(venv))
    report("extract local sources", 1, total)
    local_dirs: list[str] = []
    for i, pin in enumerate(local):
        local_dirs.append(str(_extract_local(store, pin, folder / "src" / _norm(pin.name))))
        report(f"extract {pin.name}", 2 + i, total)
    remote = [p for p in plan.pins if p.kind != "local"]
    report(f"install {len(plan.pins)} pins", 1 + len(local), total)
    base = [uv_bin, "pip", "install", "--no-deps", "--quiet", "--python", python, *index.args]
    # Compile bytecode once, at build time: uv does not by default, and where
    # PYTHONDONTWRITEBYTECODE is set no run ever writes it, so every replay compiled Prefect &
    # co. from source (`import prefect` 2.8-3.0 s instead of 1.65-1.8 s here).
    base.append("--compile-bytecode")
    if remote:
        proc = _run_uv([*base, "--", *[p.requirement for p in remote]], uv_env)
        if proc.returncode != 0:
            raise PinNotResolvable.for_pins(_failed_pins(proc.stderr, remote), _first_error(proc.stderr))
    if local_dirs:
        proc = _run_uv([*base, "--", *local_dirs], uv_env)
        if proc.returncode != 0:
            raise PinNotResolvable.for_pins(
                _failed_pins(proc.stderr, local) or [f"{p.name} (local source)" for p in local],
                _first_error(proc.stderr),
            )
    seconds = time.perf_counter() - t0
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text(marker_text(plan, choice, env))
    os.replace(tmp, folder / MARKER)  # the marker appears only after a complete build
    report("environment ready", total, total)
    return BuiltEnv(folder, python, choice.interpreter.version, False, seconds, len(plan.pins), choice.warning)


def marker_text(plan: EnvPlan, choice: InterpreterChoice, env: Environment) -> str:
    """The marker's content: what the folder holds, and nothing that changes between builds.

    No build time or duration (those go to the replay's timings): two builds of the same
    recorded environment with the same interpreter write byte-identical markers, so the env
    cache folder can be compared, copied or hashed without a clock leaking in.
    """
    meta = {
        "python": choice.interpreter.path,
        "python_version": choice.interpreter.version,
        "recorded_python": env.python.version,
        "n_pins": len(plan.pins),
        "pins": _pin_lines(plan),
    }
    return json.dumps(meta, indent=2, sort_keys=True) + "\n"


def _first_error(stderr: str) -> str:
    """The informative part of uv's error output, on one line."""
    lines = [ln.strip(" ×╰─▶│") for ln in stderr.splitlines()]
    lines = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith(("hint:", "help:"))]
    return " ".join(lines)[:400] or "no message"


__all__ = [
    "BuiltEnv",
    "EnvPlan",
    "MARKER",
    "PinSpec",
    "build_environment",
    "cached_env",
    "env_cache_root",
    "env_key",
    "marker_text",
    "plan_environment",
]
