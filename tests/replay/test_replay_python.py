"""Interpreter discovery for replay: real interpreters, real subprocesses, no uv python find."""

from __future__ import annotations

import os
import platform
import stat
import sys
from pathlib import Path

import pytest

from reproflow.errors import PythonNotAvailable
from reproflow.replay._python import candidate_paths, choose_interpreter, probe


def _shim(tmp_path: Path, name: str, code: int = 127) -> str:
    """A pyenv-like shim that fails the way pyenv's do for a version not selected."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\necho 'pyenv: {name}: command not found' >&2\nexit {code}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_exact_version_is_chosen() -> None:
    """The running interpreter's own version is found exactly, with no warning."""
    choice = choose_interpreter(platform.python_version(), platform.python_implementation(), candidates=[sys.executable])
    assert choice.exact
    assert choice.warning is None
    assert choice.interpreter.version == platform.python_version()


def test_nearest_patch_release_with_warning() -> None:
    """A missing patch release falls back to the same major.minor and says so."""
    major, minor, _ = platform.python_version_tuple()
    wanted = f"{major}.{minor}.99"
    choice = choose_interpreter(wanted, "CPython", candidates=[sys.executable])
    assert not choice.exact
    assert choice.interpreter.version == platform.python_version()
    assert choice.warning is not None and wanted in choice.warning and "nearest" in choice.warning


def test_shims_drop_out_and_missing_version_raises(tmp_path: Path) -> None:
    """Shims exiting 127 are skipped; no interpreter of that major.minor is a one-line error."""
    shim = _shim(tmp_path, "python3.4")
    assert probe(shim) is None
    with pytest.raises(PythonNotAvailable) as info:
        choose_interpreter("3.4.10", "CPython", candidates=[shim, sys.executable])
    message = str(info.value)
    assert "Python 3.4.10 is not available" in message and "--python" in message
    assert "\n" not in message


def test_uv_lister_is_consulted_only_without_an_exact_hit(tmp_path: Path) -> None:
    """uv's installed list (slow: it probes shims) is only asked when the exact version is absent."""
    asked: list[bool] = []

    def lister() -> list[str]:
        asked.append(True)
        return [sys.executable]

    choose_interpreter(platform.python_version(), "CPython", candidates=[sys.executable], uv_lister=lister)
    assert asked == []
    choice = choose_interpreter(platform.python_version(), "CPython", candidates=[], uv_lister=lister)
    assert asked == [True] and choice.exact


def test_explicit_python_mismatch_warns() -> None:
    """--python PATH is used as given; a version mismatch is a warning, not an error."""
    choice = choose_interpreter("3.4.1", "CPython", explicit=sys.executable)
    assert choice.interpreter.path == sys.executable
    assert not choice.exact and choice.warning and "3.4.1" in choice.warning


def test_explicit_python_that_does_not_run(tmp_path: Path) -> None:
    """A --python that cannot run is PythonNotAvailable naming that path."""
    with pytest.raises(PythonNotAvailable, match="python3.9"):
        choose_interpreter("3.9.1", explicit=_shim(tmp_path, "python3.9"))


def test_candidate_paths_read_pyenv_versions(tmp_path: Path) -> None:
    """pyenv's versions folder is searched (PYENV_ROOT honoured), without running pyenv."""
    bindir = tmp_path / "pyenv" / "versions" / "3.9.18" / "bin"
    bindir.mkdir(parents=True)
    os.symlink(sys.executable, bindir / "python3")
    paths = candidate_paths({"PYENV_ROOT": str(tmp_path / "pyenv")}, home=str(tmp_path))
    assert str(bindir / "python3") in paths or any(os.path.samefile(p, sys.executable) for p in paths)
    assert paths[0] == str(bindir / "python3")
