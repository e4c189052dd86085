"""Source snapshots (deterministic tar.gz) and safe extraction against malicious archives."""

from __future__ import annotations

import io
import os
import pathlib
import tarfile
from collections.abc import Callable

import pytest

from reproflow.capture.git import capture_git
from reproflow.capture.source import extract_source, snapshot_distribution, snapshot_source
from reproflow.errors import UnsafeArchive

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
