"""capture_git against real git repositories in temporary folders."""

from __future__ import annotations

import functools
import pathlib
import subprocess
from collections.abc import Callable

import pytest

from reproflow.capture.git import capture_git, subprocess_runner

from .conftest import git

MakeRepo = Callable[..., pathlib.Path]


def test_clean_repository(make_repo: MakeRepo) -> None:
    """A clean work tree: commit, branch, tags at HEAD, stripped remote; not dirty, no diff."""
    repo = make_repo()
    git(repo, "tag", "v1.0")
    git(repo, "tag", "also-here")
    git(repo, "remote", "add", "origin", "https://alice:s3cretpw@github.com/o/r.git")
    state, diff = capture_git(repo)
    assert state.available and state.absent_reason is None
    assert state.commit == git(repo, "rev-parse", "HEAD").strip()
    assert state.root == str(repo)
    assert state.branch == "main"
    assert state.tags == ["also-here", "v1.0"]
    assert state.remote_url == "https://github.com/o/r.git"
    assert not state.dirty and diff is None and state.diff_stat is None
    assert state.untracked == [] and state.untracked_total == 0


def test_dirty_repository_diff_reproduces_the_working_tree(make_repo: MakeRepo, tmp_path: pathlib.Path) -> None:
    """Unstaged and staged edits are dirty; the diff applied to the commit gives the working tree."""
    repo = make_repo({"flow.py": "x = 1\n", "lib/util.py": "def f():\n    return 1\n"})
    (repo / "flow.py").write_text("x = 2\n")
    (repo / "lib/new.py").write_text("NEW = True\n")
    git(repo, "add", "lib/new.py")
    state, diff = capture_git(repo)
    assert state.available and state.dirty
    assert diff is not None and b"+x = 2" in diff and b"lib/new.py" in diff
    assert state.diff_stat is not None and "2 files changed" in state.diff_stat

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    (clone / "fix.patch").write_bytes(diff)
    git(clone, "apply", "fix.patch")
    assert (clone / "flow.py").read_text() == "x = 2\n"
    assert (clone / "lib/new.py").read_text() == "NEW = True\n"


def test_binary_change_is_in_the_diff(make_repo: MakeRepo) -> None:
    """`--binary`: a changed binary file comes as a git binary patch, not 'Binary files differ'."""
    repo = make_repo({"blob.bin": bytes(range(256))})
    (repo / "blob.bin").write_bytes(bytes(reversed(range(256))))
    state, diff = capture_git(repo)
    assert state.dirty and diff is not None and b"GIT binary patch" in diff


def test_untracked_files_listed_ignored_files_not(make_repo: MakeRepo) -> None:
    """Untracked files (non-ASCII names unquoted) are listed; ignored ones are not; tracked tree stays clean."""
    repo = make_repo({"flow.py": "pass\n", ".gitignore": "*.log\n"})
    (repo / "données.py").write_text("pass\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "a.py").write_text("pass\n")
    (repo / "debug.log").write_text("noise\n")
    state, diff = capture_git(repo)
    assert state.untracked == ["données.py", "sub/a.py"]
    assert state.untracked_total == 2
    assert not state.dirty and diff is None


def test_rename_is_dirty_and_parsed(make_repo: MakeRepo) -> None:
    """A staged rename (a two-path status entry) is dirty and does not confuse the parser."""
    repo = make_repo({"old.py": "pass\n"})
    git(repo, "mv", "old.py", "new.py")
    (repo / "extra.py").write_text("pass\n")
    state, diff = capture_git(repo)
    assert state.dirty and diff is not None
    assert state.untracked == ["extra.py"]


def test_repository_without_commits(make_repo: MakeRepo) -> None:
    """`git init` with nothing committed: not available, with the reason, never an error."""
    repo = make_repo(commit=False)
    state, diff = capture_git(repo)
    assert not state.available and diff is None
    assert state.absent_reason == "repository has no commits yet"
    assert state.untracked == ["flow.py"]


def test_not_a_repository(tmp_path: pathlib.Path) -> None:
    """A plain folder: available=False with 'not a git repository'."""
    (tmp_path / "plain").mkdir()
    state, diff = capture_git(tmp_path / "plain")
    assert (state.available, state.absent_reason, diff) == (False, "not a git repository", None)


def test_git_not_installed(make_repo: MakeRepo) -> None:
    """No git on PATH (runner with an empty PATH): available=False, 'git is not installed'."""
    repo = make_repo()
    runner = functools.partial(subprocess_runner, environ={"PATH": ""})
    state, diff = capture_git(repo, runner=runner)
    assert not state.available and diff is None
    assert state.absent_reason is not None and "git is not installed" in state.absent_reason


def test_missing_path(tmp_path: pathlib.Path) -> None:
    """A path that does not exist is reported, not raised."""
    state, _ = capture_git(tmp_path / "nope")
    assert not state.available and state.absent_reason is not None and "path not found" in state.absent_reason


def test_subfolder_and_file_paths_find_the_root(make_repo: MakeRepo) -> None:
    """A file or subfolder inside the work tree resolves to the repository root."""
    repo = make_repo({"pkg/mod.py": "pass\n"})
    assert capture_git(repo / "pkg")[0].root == str(repo)
    assert capture_git(repo / "pkg" / "mod.py")[0].root == str(repo)


def test_detached_head_has_no_branch(make_repo: MakeRepo) -> None:
    """Detached HEAD: the commit is recorded, the branch is None."""
    repo = make_repo()
    git(repo, "checkout", "-q", "--detach")
    state, _ = capture_git(repo)
    assert state.available and state.branch is None and state.commit


def test_first_remote_when_no_origin(make_repo: MakeRepo) -> None:
    """Without an 'origin' remote, the first remote is used; scp-style URLs keep their user."""
    repo = make_repo()
    git(repo, "remote", "add", "upstream", "git@github.com:o/r.git")
    assert capture_git(repo)[0].remote_url == "git@github.com:o/r.git"


def test_oversized_diff_is_left_out(make_repo: MakeRepo) -> None:
    """A diff over the limit is not returned; the state says why."""
    repo = make_repo()
    (repo / "flow.py").write_text("print('changed')\n")
    state, diff = capture_git(repo, max_diff_bytes=10)
    assert state.dirty and diff is None
    assert state.diff_omitted is not None and "limit" in state.diff_omitted


def test_git_dir_in_environment_is_ignored(make_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIT_DIR pointing at another repository does not redirect the capture."""
    repo_a = make_repo({"a.py": "pass\n"})
    repo_b = make_repo({"b.py": "pass\n"})
    monkeypatch.setenv("GIT_DIR", str(repo_b / ".git"))
    state, _ = capture_git(repo_a)
    assert state.root == str(repo_a)
    assert state.commit == git(repo_a, "rev-parse", "HEAD").strip()


def test_runner_is_injectable(make_repo: MakeRepo) -> None:
    """Every git call goes through the runner: a recording runner sees them, all with the safe env."""
    repo = make_repo()
    (repo / "flow.py").write_text("changed\n")
    calls: list[list[str]] = []

    def recording(args: list[str], cwd: str) -> object:
        calls.append(list(args))
        return subprocess_runner(args, cwd)

    state, diff = capture_git(repo, runner=recording)  # type: ignore[arg-type]
    assert state.dirty and diff is not None
    assert sorted(c[0] for c in calls) == ["config", "diff", "rev-parse", "status", "tag"]
    env = subprocess.run(["env"], capture_output=True, env=__import__("reproflow.capture.git", fromlist=["git_env"]).git_env(), check=True).stdout.decode()
    assert "GIT_OPTIONAL_LOCKS=0" in env
