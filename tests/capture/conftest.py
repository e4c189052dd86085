"""Fixtures for the capture tests: real git repositories in temporary folders."""

from __future__ import annotations

import os
import pathlib
import subprocess
from collections.abc import Callable

import pytest

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: pathlib.Path, *args: str) -> str:
    """Run git in ``repo`` (isolated from the user's config) and return its stdout."""
    env = {**os.environ, **_GIT_ENV, "HOME": str(repo.parent), "XDG_CONFIG_HOME": str(repo.parent)}
    for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(key, None)
    out = subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return out.stdout.decode()


@pytest.fixture
def make_repo(tmp_path: pathlib.Path) -> Callable[..., pathlib.Path]:
    """Create a git repository with some files, committed unless ``commit=False``."""
    counter = {"n": 0}

    def make(files: dict[str, str | bytes] | None = None, *, commit: bool = True) -> pathlib.Path:
        counter["n"] += 1
        repo = tmp_path / f"repo{counter['n']}"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        for name, content in (files or {"flow.py": "print('hello')\n"}).items():
            path = repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        if commit:
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "initial")
        return repo

    return make
