"""reproflow never captures its own store, spool or cache as the user's code, wherever they are
(issue 17: the default ./.reproflow store was listed as untracked files, archived into the
source snapshot and reported by diff as a root cause)."""

from __future__ import annotations

import io
import pathlib
import shutil
import tarfile
from collections.abc import Callable, Iterator

import pytest

from reproflow.capture import clear_cache, get_context
from reproflow.store import Store

from .conftest import git

MakeRepo = Callable[..., pathlib.Path]


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


def _archived(store: Store, blob: str | None) -> list[str]:
    assert blob is not None
    with tarfile.open(fileobj=io.BytesIO(store.get_blob(blob)), mode="r:gz") as tar:
        return sorted(m.name for m in tar.getmembers() if m.isfile())


def _capture_twice(repo: pathlib.Path, store: Store) -> tuple[list[str], list[str]]:
    get_context(store, entry_file=str(repo / "flow.py"))  # the first run fills the store
    clear_cache()
    _, ctx = get_context(store, entry_file=str(repo / "flow.py"))
    return ctx.git.untracked, _archived(store, ctx.source.blob)


def test_default_store_cache_and_spool_are_never_captured(
    make_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository without any .gitignore: the default store (./.reproflow), and a cache and a
    spool folder inside the repository, appear neither in the untracked files nor in the
    snapshot of the next run."""
    repo = make_repo({"flow.py": "x = 1\n"})
    monkeypatch.chdir(repo)
    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(repo / "rfcache"))
    monkeypatch.setenv("REPROFLOW_SPOOL_DIR", str(repo / "spool"))
    (repo / "rfcache" / "envs").mkdir(parents=True)
    (repo / "rfcache" / "hashes.sqlite3").write_bytes(b"x")
    (repo / "spool" / "k").mkdir(parents=True)
    (repo / "spool" / "k" / "store.json").write_text("{}")
    (repo / "notes.txt").write_text("mine\n")
    store = Store()  # ./.reproflow
    assert store.root == str(repo / ".reproflow")

    untracked, archived = _capture_twice(repo, store)
    assert untracked == ["notes.txt"]
    assert archived == ["flow.py", "notes.txt"]


def test_a_store_anywhere_in_the_repository_is_excluded_from_status_snapshot_and_diff(
    make_repo: MakeRepo, tmp_path: pathlib.Path
) -> None:
    """A store named by path deep inside the repository, even one whose files were committed by
    mistake and then changed, leaves no trace in the untracked files, the snapshot or the diff;
    the rest of the tree is still captured (the tree is not dirty because of the store)."""
    repo = make_repo({"flow.py": "x = 1\n", "data/records/old.json": "{}\n"})
    store = Store(repo / "data" / "records")
    (repo / "data" / "records" / "old.json").write_text('{"changed": true}\n')
    (repo / "data" / "other.csv").write_text("a\n")
    _, ctx = get_context(store, entry_file=str(repo / "flow.py"))
    assert ctx.git.untracked == ["data/other.csv"]
    assert not ctx.git.dirty and ctx.git.diff_blob is None
    assert _archived(store, ctx.source.blob) == ["data/other.csv", "flow.py"]


def test_a_new_local_store_folder_marks_itself_ignored(tmp_path: pathlib.Path, make_repo: MakeRepo) -> None:
    """The folder a local store creates holds a .gitignore of `*` (as a virtual environment does),
    so `git status` in the user's repository does not list it; a folder that already held other
    files is left alone."""
    repo = make_repo({"flow.py": "x = 1\n"})
    Store(repo / ".reproflow").put_blob(b"hello")
    assert (repo / ".reproflow" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""

    theirs = repo / "results"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("k\n")
    Store(theirs).put_blob(b"hello")
    assert not (theirs / ".gitignore").exists()
    shutil.rmtree(theirs)


def test_reproflow_s_own_source_is_archived_whole() -> None:
    """reproflow installed editable (the docs' quickstart) is replayed from its stored source:
    none of its files may be taken for a secret file, or the replayed environment cannot import
    it (_redact.py and _secret_files.py name the PuTTY key header in their patterns, and were
    left out: `No module named 'reproflow.values._redact'` in every replay)."""
    from reproflow.capture.source import snapshot_distribution

    repo = pathlib.Path(__file__).resolve().parents[2]
    data = snapshot_distribution(str(repo))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = set(tar.getnames())
    sources = {p.relative_to(repo).as_posix() for p in (repo / "src" / "reproflow").rglob("*.py")}
    assert sources <= names, sorted(sources - names)
