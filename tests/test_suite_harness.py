"""The suite's own housekeeping (tests/suite_cache.py, used by tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

from suite_cache import prune_bytecode_cache


def test_bytecode_cache_drops_the_mirrors_of_gone_temporary_folders(tmp_path: Path) -> None:
    """The shared bytecode cache keeps the .pyc files of folders that still exist (and within
    pytest's own root, of the pytest-N folders it kept); those of removed folders go."""
    real, prefix = tmp_path / "tmp", tmp_path / "cache"
    for folder in ("repo", "pytest-of-me/pytest-7"):
        (real / folder).mkdir(parents=True)
    mirror = prefix / str(real).lstrip("/")
    for folder in ("repo", "gone-repo", "pytest-of-me/pytest-7", "pytest-of-me/pytest-6", "pytest-of-other/pytest-1"):
        (mirror / folder).mkdir(parents=True)
        (mirror / folder / "flow.cpython-311.pyc").write_bytes(b"pyc")
    prune_bytecode_cache(str(prefix), str(real))
    left = sorted(p.relative_to(mirror).as_posix() for p in mirror.rglob("*.pyc"))
    assert left == ["pytest-of-me/pytest-7/flow.cpython-311.pyc", "repo/flow.cpython-311.pyc"]
