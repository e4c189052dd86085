"""Source snapshots (deterministic tar.gz) and safe extraction against malicious archives."""

from __future__ import annotations

import io
import os
import pathlib
import tarfile
from collections.abc import Callable

import pytest

from reproflow.capture.git import capture_git
from reproflow.capture import source as source_mod
from reproflow.capture.source import (extract_source, snapshot_distribution, snapshot_source,
                                      store_distribution_snapshot)
from reproflow.errors import UnsafeArchive
from reproflow.store import Store

from .conftest import git

MakeRepo = Callable[..., pathlib.Path]


def _members(archive: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def _read(archive: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        fh = tar.extractfile(name)
        assert fh is not None
        return fh.read()


# --------------------------------------------------------------------------------------------
# Snapshots
# --------------------------------------------------------------------------------------------


def test_git_snapshot_has_working_tree_and_untracked_not_ignored(make_repo: MakeRepo) -> None:
    """Git mode: tracked files as edited, untracked-not-ignored files; no ignored or deleted files."""
    repo = make_repo({"flow.py": "x = 1\n", "gone.py": "pass\n", ".gitignore": "*.log\n", "pkg/m.py": "m\n"})
    (repo / "flow.py").write_text("x = 2  # edited\n")
    (repo / "gone.py").unlink()
    (repo / "new_module.py").write_text("NEW = 1\n")
    (repo / "run.log").write_text("ignored\n")
    state, _ = capture_git(repo)
    snap, archive = snapshot_source(str(repo), git=state, entry_file=str(repo / "flow.py"))
    assert archive is not None
    assert snap.kind == "git" and snap.root == str(repo)
    assert sorted(_members(archive)) == [".gitignore", "flow.py", "new_module.py", "pkg/m.py"]
    assert _read(archive, "flow.py") == b"x = 2  # edited\n"
    assert snap.files == 4 and snap.bytes == sum(len((repo / n).read_bytes()) for n in _members(archive))


def test_snapshot_is_deterministic(make_repo: MakeRepo) -> None:
    """Same content => same bytes, whatever the mtimes; members carry mtime 0, uid/gid 0, no names."""
    repo = make_repo({"a.py": "a\n", "b/c.py": "c\n", "run.sh": "#!/bin/sh\n"})
    os.chmod(repo / "run.sh", 0o755)
    state, _ = capture_git(repo)
    _, first = snapshot_source(str(repo), git=state, entry_file=None)
    os.utime(repo / "a.py", (1_000_000, 1_000_000))
    _, second = snapshot_source(str(repo), git=state, entry_file=None)
    assert first is not None and first == second
    assert first[4:8] == b"\0\0\0\0"  # gzip header mtime
    members = _members(first)
    assert list(members) == sorted(members)
    for m in members.values():
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
    assert members["run.sh"].mode == 0o755 and members["a.py"].mode == 0o644
    (repo / "a.py").write_text("changed\n")
    assert snapshot_source(str(repo), git=state, entry_file=None)[1] != first


def test_size_caps_skip_and_note(make_repo: MakeRepo) -> None:
    """Files over the per-file cap and past the total cap are skipped and named."""
    repo = make_repo({"big.bin": b"x" * 2000, "a.py": "a" * 300, "b.py": "b" * 300, "c.py": "c" * 300})
    state, _ = capture_git(repo)
    snap, archive = snapshot_source(str(repo), git=state, entry_file=None, max_file_bytes=1000, max_total_bytes=700)
    assert archive is not None
    assert sorted(_members(archive)) == ["a.py", "b.py"]
    assert "over" in snap.skipped["big.bin"]
    assert "total size limit" in snap.skipped["c.py"]
    assert snap.skipped_total == 2


def test_secret_files_are_never_archived(make_repo: MakeRepo) -> None:
    """.env, private keys, .netrc are skipped even when tracked; .env.example is kept."""
    files = {".env": "TOKEN=x\n", ".env.local": "A=b\n", ".env.example": "TOKEN=\n", "certs/server.pem": "k",
             "id_rsa": "k", ".netrc": "machine x", "flow.py": "pass\n"}
    repo = make_repo(files)
    state, _ = capture_git(repo)
    snap, archive = snapshot_source(str(repo), git=state, entry_file=None)
    assert archive is not None
    assert sorted(_members(archive)) == [".env.example", "flow.py"]
    assert set(snap.skipped) == {".env", ".env.local", "certs/server.pem", "id_rsa", ".netrc"}


def test_files_mode_without_git(tmp_path: pathlib.Path) -> None:
    """No git: the entry file's folder, Python and project/config files only, no venvs or caches."""
    proj = tmp_path / "proj"
    for name, text in {
        "flow.py": "pass\n", "pyproject.toml": "[project]\n", "requirements-dev.txt": "x\n",
        "conf/settings.yaml": "a: 1\n", "pkg/__init__.py": "", "pkg/sub/mod.py": "pass\n",
        "data/table.csv": "1,2\n", "notes.txt": "n\n", "__pycache__/flow.cpython-311.pyc": "x",
        ".venv/lib/site.py": "x", "myenv/pyvenv.cfg": "home=/x\n", "myenv/lib/y.py": "y",
        "node_modules/a.js": "x", "pkg.egg-info/PKG-INFO": "x",
    }.items():
        (proj / name).parent.mkdir(parents=True, exist_ok=True)
        (proj / name).write_text(text)
    snap, archive = snapshot_source(str(tmp_path), git=None, entry_file=str(proj / "flow.py"))
    assert archive is not None and snap.kind == "files" and snap.root == str(proj)
    assert sorted(_members(archive)) == [
        "conf/settings.yaml", "flow.py", "pkg/__init__.py", "pkg/sub/mod.py", "pyproject.toml",
        "requirements-dev.txt",
    ]


def test_nothing_to_archive(tmp_path: pathlib.Path) -> None:
    """A folder without source files: kind 'none', a reason, no archive."""
    (tmp_path / "data.csv").write_text("1\n")
    snap, archive = snapshot_source(str(tmp_path), git=None, entry_file=None)
    assert archive is None and snap.kind == "none" and snap.absent_reason


def test_symlinks_inside_kept_outside_skipped(make_repo: MakeRepo, tmp_path: pathlib.Path) -> None:
    """A relative symlink inside the root is archived as a link; one leaving the root is skipped."""
    repo = make_repo({"real.py": "pass\n"})
    os.symlink("real.py", repo / "alias.py")
    os.symlink(str(tmp_path), repo / "outside")
    os.symlink("../../etc", repo / "up")
    state, _ = capture_git(repo)
    snap, archive = snapshot_source(str(repo), git=state, entry_file=None)
    assert archive is not None
    members = _members(archive)
    assert members["alias.py"].issym() and members["alias.py"].linkname == "real.py"
    assert "outside" not in members and "up" not in members
    assert set(snap.skipped) == {"outside", "up"}


def test_extract_round_trip(make_repo: MakeRepo, tmp_path: pathlib.Path) -> None:
    """extract_source restores the archived files, links and exec bits."""
    repo = make_repo({"flow.py": "x\n", "pkg/m.py": "m\n", "run.sh": "#!/bin/sh\n"})
    os.chmod(repo / "run.sh", 0o755)
    os.symlink("pkg/m.py", repo / "link.py")
    state, _ = capture_git(repo)
    _, archive = snapshot_source(str(repo), git=state, entry_file=None)
    assert archive is not None
    dest = tmp_path / "restored"
    extract_source(archive, str(dest))
    assert (dest / "flow.py").read_text() == "x\n" and (dest / "pkg/m.py").read_text() == "m\n"
    assert os.readlink(dest / "link.py") == "pkg/m.py"
    assert os.stat(dest / "run.sh").st_mode & 0o100


def test_snapshot_distribution_excludes_artifacts(tmp_path: pathlib.Path) -> None:
    """A local project folder (no git): sources kept; .git, venvs, caches, build output, .reproflow out."""
    proj = tmp_path / "proj"
    for name in ("pyproject.toml", "src/pkg/__init__.py", "src/pkg/_ext.c", "README.md", "data/small.json",
                 ".git/config", ".venv/pyvenv.cfg", "venv2/pyvenv.cfg", "src/pkg/__pycache__/x.pyc",
                 "build/lib/pkg/__init__.py", "dist/pkg-1.0.whl", "src/pkg.egg-info/PKG-INFO",
                 "src/pkg/_ext.cpython-311-x86_64-linux-gnu.so", ".reproflow/runs/x.json", ".env"):
        (proj / name).parent.mkdir(parents=True, exist_ok=True)
        (proj / name).write_text("x")
    archive = snapshot_distribution(str(proj))
    assert sorted(_members(archive)) == ["README.md", "data/small.json", "pyproject.toml",
                                         "src/pkg/__init__.py", "src/pkg/_ext.c"]
    assert snapshot_distribution(str(proj)) == archive


def test_snapshot_distribution_uses_gitignore(make_repo: MakeRepo) -> None:
    """In a git work tree the distribution snapshot follows git's file list (.gitignore applies)."""
    repo = make_repo({"pyproject.toml": "[project]\n", ".gitignore": "scratch/\n", "src/p.py": "p\n"})
    (repo / "scratch").mkdir()
    (repo / "scratch" / "tmp.py").write_text("junk\n")
    (repo / "src" / "q.py").write_text("q\n")
    assert sorted(_members(snapshot_distribution(str(repo)))) == [".gitignore", "pyproject.toml", "src/p.py", "src/q.py"]


# --------------------------------------------------------------------------------------------
# Unchanged folders are not archived again
# --------------------------------------------------------------------------------------------


@pytest.fixture
def snap_cache(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """A fresh REPROFLOW_CACHE_DIR; returns a function counting the files read into archives."""
    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(tmp_path / "cache"))
    reads = [0]
    real_add = source_mod._add

    def counting_add(*args: object, **kwargs: object) -> None:
        reads[0] += 1
        real_add(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(source_mod, "_add", counting_add)
    return lambda: reads[0]


def _settle() -> None:
    """Let the racy window pass: a file changed within it is never taken from the cache."""
    import time

    time.sleep(source_mod.RACY_WINDOW_NS / 1e9 * 1.5)


def test_an_unchanged_tree_is_not_archived_again(make_repo: MakeRepo, tmp_path: pathlib.Path,
                                                 snap_cache: Callable[[], int]) -> None:
    """With the store as sink: the first snapshot archives and stores; a second of the same files
    reads none of them and gives the same blob and the same record; an edit that keeps the size
    and puts the mtime back (only the ctime tells) is archived again, and its content is in."""
    repo = make_repo({"flow.py": "x = 1\n", "pkg/m.py": "m\n", ".env": "TOKEN=1\n"})
    (repo / ".env").write_text("TOKEN=1\n")  # untracked secret file: listed as skipped
    state, _ = capture_git(repo)
    store = Store(tmp_path / "store")
    _settle()
    first, data = snapshot_source(str(repo), git=state, entry_file=None, sink=store)
    assert data is None and first.blob is not None and store.has_blob(first.blob)
    assert snap_cache() == 3 and first.files == 2 and ".env" in first.skipped
    second, _ = snapshot_source(str(repo), git=state, entry_file=None, sink=store)
    assert snap_cache() == 3, "an unchanged tree was read again"
    assert second == first
    # the same size and mtime, other bytes
    st = os.stat(repo / "flow.py")
    (repo / "flow.py").write_text("x = 2\n")
    os.utime(repo / "flow.py", ns=(st.st_atime_ns, st.st_mtime_ns))
    _settle()
    third, _ = snapshot_source(str(repo), git=state, entry_file=None, sink=store)
    assert snap_cache() == 6 and third.blob != first.blob
    assert _read(store.get_blob(third.blob), "flow.py") == b"x = 2\n"
    # a store without the archive (another store, the same cache) gets it archived and stored
    other = Store(tmp_path / "other")
    fourth, _ = snapshot_source(str(repo), git=state, entry_file=None, sink=other)
    assert snap_cache() == 9 and fourth.blob == third.blob and other.has_blob(third.blob)


def test_a_file_changed_within_the_racy_window_is_never_taken_from_the_cache(
        make_repo: MakeRepo, tmp_path: pathlib.Path, snap_cache: Callable[[], int]) -> None:
    """A file written just now may change again within the same clock tick without changing its
    stat: its tree is archived every time until the window has passed."""
    repo = make_repo({"flow.py": "x = 1\n"})
    state, _ = capture_git(repo)
    store = Store(tmp_path / "store")
    (repo / "flow.py").write_text("x = 3\n")
    first, _ = snapshot_source(str(repo), git=state, entry_file=None, sink=store)
    second, _ = snapshot_source(str(repo), git=state, entry_file=None, sink=store)
    assert snap_cache() == 2 and second.blob == first.blob
    _settle()
    snapshot_source(str(repo), git=state, entry_file=None, sink=store)
    snapshot_source(str(repo), git=state, entry_file=None, sink=store)
    assert snap_cache() == 3


def test_a_distribution_snapshot_is_stored_once_and_follows_its_files(
        tmp_path: pathlib.Path, snap_cache: Callable[[], int]) -> None:
    """store_distribution_snapshot gives the digest of snapshot_distribution's bytes; unchanged, it
    reads nothing; a file added is in the next one. The source snapshot of the same folder (other
    names) keeps its own entry: neither pushes the other out."""
    proj = tmp_path / "proj"
    for name in ("pyproject.toml", "src/pkg/__init__.py", "notes.txt"):
        (proj / name).parent.mkdir(parents=True, exist_ok=True)
        (proj / name).write_text(name)
    store = Store(tmp_path / "store")
    _settle()
    digest = store_distribution_snapshot(str(proj), store)
    assert store.get_blob(digest) == snapshot_distribution(str(proj))
    reads = snap_cache()
    snap, _ = snapshot_source(str(proj), git=None, entry_file=str(proj / "x.py"), sink=store)
    assert snap.files == 2  # the source snapshot keeps sources only (no notes.txt)
    reads = snap_cache()
    assert store_distribution_snapshot(str(proj), store) == digest
    snapshot_source(str(proj), git=None, entry_file=str(proj / "x.py"), sink=store)
    assert snap_cache() == reads
    (proj / "src/pkg/extra.py").write_text("E = 1\n")
    _settle()
    changed = store_distribution_snapshot(str(proj), store)
    assert changed != digest and "src/pkg/extra.py" in _members(store.get_blob(changed))


# --------------------------------------------------------------------------------------------
# Malicious archives
# --------------------------------------------------------------------------------------------


def _tar(*members: tuple[str, str, str]) -> bytes:
    """Build a tar.gz from (name, type, payload-or-linkname) triples; types: file, dir, sym, lnk, chr, fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            data = b""
            if kind == "file":
                data = payload.encode()
                info.size = len(data)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "lnk":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            tar.addfile(info, io.BytesIO(data) if kind == "file" else None)
    return buf.getvalue()


MALICIOUS = {
    "absolute path": [("/tmp/evil.py", "file", "x")],
    "dot-dot": [("../evil.py", "file", "x")],
    "dot-dot inside": [("a/../../evil.py", "file", "x")],
    "absolute symlink": [("ok.py", "file", "x"), ("etc", "sym", "/etc")],
    "symlink up": [("up", "sym", "../..")],
    "symlink chain": [("b", "sym", "."), ("a", "sym", "b/..")],
    "write through symlink": [("l", "sym", "sub/../.."), ("l/evil.py", "file", "x")],
    "hardlink up": [("h", "lnk", "../outside.txt")],
    "hardlink absolute": [("h", "lnk", "/etc/passwd")],
    "char device": [("null", "chr", "")],
    "fifo": [("pipe", "fifo", "")],
    "link loop": [("a", "sym", "b"), ("b", "sym", "a"), ("a/x", "file", "x")],
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_archives_are_refused_before_writing(case: str, tmp_path: pathlib.Path) -> None:
    """Each escaping member raises UnsafeArchive, and nothing at all is written."""
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchive):
        extract_source(_tar(*MALICIOUS[case]), str(dest))
    assert not dest.exists() or list(dest.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["dest"])


def test_harmless_links_are_accepted(tmp_path: pathlib.Path) -> None:
    """Links that stay inside (sibling, parent-then-down, hard link to a member) extract fine."""
    archive = _tar(
        ("pkg/mod.py", "file", "m"),
        ("docs/readme.md", "sym", "../pkg/mod.py"),
        ("alias", "sym", "pkg"),
        ("copy.py", "lnk", "pkg/mod.py"),
    )
    extract_source(archive, str(tmp_path / "d"))
    assert (tmp_path / "d/docs/readme.md").read_text() == "m"
    assert (tmp_path / "d/copy.py").read_text() == "m"
    assert (tmp_path / "d/alias/mod.py").read_text() == "m"


def test_garbage_is_refused(tmp_path: pathlib.Path) -> None:
    """Bytes that are not a tar archive raise UnsafeArchive, not a tarfile error."""
    with pytest.raises(UnsafeArchive):
        extract_source(b"not a tar at all", str(tmp_path / "d"))


def test_git_snapshot_of_subfolder_root(make_repo: MakeRepo) -> None:
    """A root below the work tree archives only that folder, with names relative to it."""
    repo = make_repo({"a/flow.py": "f\n", "b/other.py": "o\n"})
    state, _ = capture_git(repo)
    snap, archive = snapshot_source(str(repo / "a"), git=state, entry_file=None)
    assert archive is not None and sorted(_members(archive)) == ["flow.py"] and snap.kind == "git"
    git(repo, "status")  # the repository is untouched
