"""Find a Python interpreter for a recorded version, without downloading one.

``uv python find`` trips on pyenv shims that exit 127, and uv cannot fetch interpreters on
machines without its download host, so replay looks for interpreters itself and hands uv a path:

1. ``--python PATH`` when given (used as is, whatever its version, with a warning on mismatch);
2. pyenv's versions folder (``$PYENV_ROOT/versions/*/bin/python3``, default ``~/.pyenv``);
3. ``/usr/bin/python3*``, ``/usr/local/bin/python3*``, ``/opt/*/bin/python3*``;
4. the interpreter running reproflow (and its base interpreter);
5. only when none of those has the exact version: uv's own list of installed interpreters.

Every candidate is run once (``python -I -S -c``, ~10 ms) to read its real version and
implementation; shims and broken links simply drop out. The exact recorded version wins; else
the nearest patch release of the same major.minor, with a warning; else
:class:`~reproflow.errors.PythonNotAvailable`.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import PythonNotAvailable

_PROBE = (
    "import sys, platform;"
    "print(platform.python_version(), sys.implementation.name, sys.executable)"
)


@dataclass(frozen=True)
class Interpreter:
    """A Python interpreter found on this machine."""

    path: str
    version: str  #: "3.11.7"
    implementation: str = "cpython"  #: sys.implementation.name

    @property
    def major_minor(self) -> tuple[int, int]:
        parts = _version_tuple(self.version)
        return parts[0], parts[1]


@dataclass
class InterpreterChoice:
    """The interpreter picked for a recorded version, and how well it matches."""

    interpreter: Interpreter
    requested: str
    exact: bool
    warning: str | None = None
    searched: list[str] = field(default_factory=list)


def _version_tuple(version: str) -> tuple[int, int, int]:
    nums: list[int] = []
    for part in version.split(".")[:3]:
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        nums.append(int(digits) if digits else 0)
    while len(nums) < 3:
        nums.append(0)
    return nums[0], nums[1], nums[2]


def candidate_paths(environ: dict[str, str] | None = None, home: str | None = None) -> list[str]:
    """Interpreter paths worth probing, most specific first (no uv, no subprocess)."""
    env = os.environ if environ is None else environ
    home = home or os.path.expanduser("~")
    pyenv_root = env.get("PYENV_ROOT") or os.path.join(home, ".pyenv")
    patterns = [
        os.path.join(pyenv_root, "versions", "*", "bin", "python3"),
        os.path.join(pyenv_root, "versions", "*", "bin", "pypy3"),
        "/usr/bin/python3.*",
        "/usr/bin/python3",
        "/usr/local/bin/python3.*",
        "/usr/local/bin/python3",
        "/opt/*/bin/python3",
        "/opt/python*/bin/python3",
    ]
    paths: list[str] = []
    for pattern in patterns:
        for p in sorted(glob.glob(pattern)):
            if p.endswith(("-config", "m-config")) or not os.access(p, os.X_OK) or os.path.isdir(p):
                continue
            paths.append(p)
    paths.append(sys.executable)
    base = getattr(sys, "_base_executable", None)
    if base:
        paths.append(base)
    return _dedupe(paths)


def _dedupe(paths: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for p in paths:
        key = os.path.realpath(p)
        if key in seen:
            continue
        seen.add(key)
        out.append(p)
    return out


def probe(path: str, timeout: float = 10.0) -> Interpreter | None:
    """Run an interpreter once to read its version; None when it does not run (e.g. a shim)."""
    try:
        proc = subprocess.run(
            [path, "-I", "-S", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    parts = proc.stdout.split()
    if len(parts) < 2:
        return None
    return Interpreter(path=path, version=parts[0], implementation=parts[1].lower())


def probe_all(paths: list[str]) -> list[Interpreter]:
    """Probe interpreters concurrently (each is a ~10 ms subprocess)."""
    if not paths:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(paths))) as pool:
        found = list(pool.map(probe, paths))
    return [i for i in found if i is not None]


def uv_installed_paths(uv_bin: str) -> list[str]:
    """Interpreter paths from ``uv python list --only-installed`` (shims included; probe them)."""
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never")
    try:
        proc = subprocess.run(
            [uv_bin, "python", "list", "--only-installed", "--output-format", "json", "--no-progress"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode != 0:
        return []
    try:
        rows = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        return []
    return [str(r["path"]) for r in rows if isinstance(r, dict) and r.get("path")]


def _normalize_impl(name: str) -> str:
    name = name.lower()
    return {"cpython": "cpython", "pypy": "pypy"}.get(name, name)


def choose_interpreter(
    version: str,
    implementation: str = "CPython",
    *,
    explicit: str | None = None,
    candidates: list[str] | None = None,
    uv_lister: Callable[[], list[str]] | None = None,
) -> InterpreterChoice:
    """Pick the interpreter to rebuild a recorded environment with.

    Args:
        version: the recorded full version, e.g. ``"3.11.7"``.
        implementation: the recorded implementation name (``"CPython"``).
        explicit: a path given with ``--python``; used whatever its version.
        candidates: paths to probe instead of :func:`candidate_paths` (for tests).
        uv_lister: returns more paths when the exact version was not found (uv's installed list).

    Raises:
        PythonNotAvailable: no interpreter of the same implementation and major.minor exists.
    """
    want = _version_tuple(version)
    impl = _normalize_impl(implementation)
    if explicit:
        found = probe(explicit)
        if found is None:
            raise PythonNotAvailable.for_version(version, [explicit])
        exact = found.version == version and _normalize_impl(found.implementation) == impl
        warning = None
        if not exact:
            warning = (
                f"--python {explicit} is {found.implementation} {found.version}, the run was recorded "
                f"with {implementation} {version}: results may differ"
            )
        return InterpreterChoice(found, version, exact, warning, [explicit])

    paths = candidates if candidates is not None else candidate_paths()
    searched = list(paths)
    interpreters = [i for i in probe_all(paths) if _normalize_impl(i.implementation) == impl]
    if not any(_version_tuple(i.version) == want for i in interpreters) and uv_lister is not None:
        extra = [p for p in uv_lister() if p not in paths]
        searched += extra
        interpreters += [i for i in probe_all(_dedupe(extra)) if _normalize_impl(i.implementation) == impl]

    exact_hits = [i for i in interpreters if _version_tuple(i.version) == want]
    if exact_hits:
        return InterpreterChoice(exact_hits[0], version, True, None, searched)
    same_minor = [i for i in interpreters if i.major_minor == want[:2]]
    if same_minor:
        best = min(same_minor, key=lambda i: (abs(_version_tuple(i.version)[2] - want[2]), -_version_tuple(i.version)[2]))
        warning = (
            f"Python {version} is not on this machine; using {best.version} ({best.path}), the "
            f"nearest {want[0]}.{want[1]} release: results may differ"
        )
        return InterpreterChoice(best, version, False, warning, searched)
    raise PythonNotAvailable.for_version(version, _short_list(searched))


def _short_list(paths: list[str]) -> list[str]:
    dirs = _dedupe(os.path.dirname(p) for p in paths)
    return dirs[:8] + ([f"... {len(dirs) - 8} more"] if len(dirs) > 8 else [])


__all__ = ["Interpreter", "InterpreterChoice", "candidate_paths", "choose_interpreter", "probe", "uv_installed_paths"]
