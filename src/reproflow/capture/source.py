"""Snapshot the code needed to run again, as a deterministic tar.gz; extract one safely.

* In a git repository: every tracked file *as it is in the working tree* (so uncommitted edits are
  in) plus untracked files that are not ignored (``git ls-files --cached --others
  --exclude-standard``).
* Without git: the entry file's folder, recursively, keeping Python sources, project/requirements
  files and small config files, skipping virtual environments, caches and build output.
* Local or editable distributions: :func:`snapshot_distribution` archives the project folder.

Archives are byte-for-byte reproducible with a given zlib (sorted names, mtime 0, uid/gid 0, no
user names, gzip header mtime 0), so an unchanged tree always has the same SHA-256 and is stored once. Files over
5 MiB, files past a 50 MiB total, and files that hold secrets by name (``.env``, ``*.pem``,
``id_rsa``, ``.netrc``, ``credentials.json``...) or by content (private keys, service-account
JSON, tokens; see :mod:`reproflow.capture._secret_files`) are left out and listed in
``SourceSnapshot.skipped``.

Given a blob sink (the store), a snapshot is built only when its files changed: the stat of every
file (size, mtime, ctime, inode, mode) and the list of names are fingerprinted, and a folder whose
fingerprint is the one last archived, with that archive already in the store, costs one stat a
file instead of reading, scanning and compressing it again (an editable project of 500 files:
about 3 ms instead of 250). The fingerprint of each source root is kept in the hash cache's SQLite
file; a file modified within :data:`RACY_WINDOW_NS` of the snapshot leaves it uncached.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import stat
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .._version import __version__
from ..errors import UnsafeArchive
from ..records import GitState, SourceSnapshot
from ._digest import RACY_WINDOW_NS, FingerprintRows
from ._secret_files import is_secret_file, secret_reason
from .git import GitRunner, exclude_pathspecs, outside, subprocess_runner

MAX_FILE_BYTES = 5 << 20
MAX_TOTAL_BYTES = 50 << 20
#: At most this many skipped names are listed (``skipped_total`` counts them all).
MAX_SKIPPED_LISTED = 200
#: gzip level: 2 compresses source about 3x faster than the default 6 for ~15% more bytes, and
#: capture time matters more than store size (an unchanged tree is stored once anyway).
_GZIP_LEVEL = 2
#: A walk without git stops after this many directory entries (a script run from ``~``...).
MAX_WALK_ENTRIES = 50_000

#: Folders never walked into.
_EXCLUDED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".venv", "venv", ".env", "__pycache__", "node_modules", ".reproflow",
        ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", "build",
        "dist", ".eggs", ".ipynb_checkpoints", "site-packages", ".idea", ".vscode", ".cache",
    }
)
#: Build artifacts left out of distribution snapshots (they are rebuilt from source).
_ARTIFACT_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".o", ".a", ".dylib", ".dll", ".whl")
#: File names kept when snapshotting a folder without git.
_SOURCE_SUFFIXES = (".py", ".pyi", ".pyx", ".pxd", ".toml", ".cfg", ".ini", ".yaml", ".yml",
                    ".json", ".conf", ".lock", ".ipynb", ".sql", ".md", ".rst")
_SOURCE_NAMES = frozenset({"Pipfile", "Makefile", "MANIFEST.in", ".python-version", "Dockerfile",
                           "setup.py", "setup.cfg", "pyproject.toml"})
_SOURCE_PREFIXES = ("requirements", "constraints")


class BlobSink(Protocol):
    """Where a snapshot goes (a :class:`reproflow.store.Store`): content-addressed blobs."""

    def has_blob(self, digest: str) -> bool: ...

    def put_blob(self, data: bytes) -> str: ...


@dataclass
class _Archive:
    data: bytes | None
    files: int = 0
    size: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    skipped_total: int = 0
    #: the archive's digest, once stored in a sink (``data`` is None when it was there already)
    digest: str | None = None

    def skip(self, name: str, reason: str) -> None:
        self.skipped_total += 1
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped[name] = reason


def snapshot_source(
    root: str,
    *,
    git: GitState | None,
    entry_file: str | None,
    runner: GitRunner = subprocess_runner,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    exclude: Sequence[str] = (),
    sink: BlobSink | None = None,
) -> tuple[SourceSnapshot, bytes | None]:
    """Archive the code under ``root`` (see the module docstring for what is kept).

    Args:
        root: the source root; names in the archive are relative to it.
        git: the captured git state; a usable one selects git mode.
        entry_file: the flow's file; without git, its folder is archived (else ``root``).
        runner: runs git (see :mod:`reproflow.capture.git`).
        max_file_bytes: larger files are skipped.
        max_total_bytes: files past this total are skipped.
        exclude: folders (absolute paths) never archived, wherever they are: reproflow's own
            store, spool and caches.
        sink: where to store the archive (the store); an unchanged folder whose archive is
            there already is not archived again (see the module docstring).

    Returns:
        The snapshot record and the tar.gz bytes, or None when there was nothing to archive.
        With a ``sink`` the archive is stored, ``blob`` set and None returned for the bytes;
        without one ``blob`` is left for the caller to fill after storing.
    """
    root = os.path.abspath(root)
    names: list[str] | None = None
    kind = "files"
    if git is not None and git.available and os.path.isdir(root):
        names = _git_names(root, runner, exclude)
        if names is not None:
            kind = "git"
    if names is None:
        if entry_file:
            root = os.path.dirname(os.path.abspath(entry_file))
        if not os.path.isdir(root):
            return SourceSnapshot(kind="none", root=root, absent_reason=f"folder not found: {root}"), None
        names, walk_note = _walk(root, _is_source_file)
    else:
        walk_note = None
    names = outside(root, names, exclude)
    archive = _build(root, names, max_file_bytes, max_total_bytes, sink)
    if walk_note:
        archive.skip(".", walk_note)
    snap = SourceSnapshot(
        kind=kind,  # type: ignore[arg-type]
        root=root,
        files=archive.files,
        bytes=archive.size,
        skipped=archive.skipped,
        skipped_total=archive.skipped_total,
    )
    if archive.files == 0:
        snap.kind = "none"
        snap.absent_reason = "no source files found"
        return snap, None
    if sink is not None:
        snap.blob = archive.digest
        return snap, None
    return snap, archive.data


def snapshot_distribution(
    dist_root: str,
    *,
    runner: GitRunner = subprocess_runner,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> bytes:
    """A deterministic tar.gz of a local (editable) distribution's project folder.

    Uses git's file list when the folder is in a work tree (so ``.gitignore`` applies), else walks
    it; either way leaves out ``.git``, virtual environments, ``__pycache__``, build output
    (``build/``, ``dist/``, ``*.egg-info``, compiled extensions), ``.reproflow`` and secret files.
    """
    dist_root = os.path.abspath(dist_root)
    data = _build(dist_root, _distribution_names(dist_root, runner), max_file_bytes, max_total_bytes).data
    assert data is not None  # built without a sink
    return data


def store_distribution_snapshot(dist_root: str, sink: BlobSink, *, runner: GitRunner = subprocess_runner) -> str:
    """:func:`snapshot_distribution` stored in ``sink``; returns its digest. A folder unchanged
    since its archive was stored is not archived again (see the module docstring)."""
    dist_root = os.path.abspath(dist_root)
    archive = _build(dist_root, _distribution_names(dist_root, runner), MAX_FILE_BYTES, MAX_TOTAL_BYTES, sink,
                     "distribution")
    if archive.digest is None:  # nothing to archive: the empty archive, as without a sink
        assert archive.data is not None
        return sink.put_blob(archive.data)
    return archive.digest


def _distribution_names(dist_root: str, runner: GitRunner) -> list[str]:
    names = _git_names(dist_root, runner)
    if names is None:
        names, _ = _walk(dist_root, lambda name: True)
    return [n for n in names if _keep_in_distribution(n)]


def _keep_in_distribution(name: str) -> bool:
    parts = name.split("/")
    if any(p in _EXCLUDED_DIRS or p.endswith(".egg-info") for p in parts[:-1]):
        return False
    return not name.endswith(_ARTIFACT_SUFFIXES)


def _is_source_file(name: str) -> bool:
    base = posixpath.basename(name)
    return (
        base in _SOURCE_NAMES
        or base.endswith(_SOURCE_SUFFIXES)
        or (base.startswith(_SOURCE_PREFIXES) and base.endswith(".txt"))
    )


def _git_names(root: str, runner: GitRunner, exclude: Sequence[str] = ()) -> list[str] | None:
    """Tracked plus untracked-not-ignored files under ``root`` (relative to it), or None."""
    specs = exclude_pathspecs(root, exclude)
    try:
        result = runner(["ls-files", "-z", "--cached", "--others", "--exclude-standard",
                         *(["--", *specs] if specs else [])], root)
    except OSError:
        return None
    if result.returncode != 0:
        return None
    names = {n.decode("utf-8", "surrogateescape") for n in result.stdout.split(b"\0") if n}
    return sorted(names)


def _walk(root: str, keep: Callable[[str], bool]) -> tuple[list[str], str | None]:
    """Relative names of files under ``root`` that ``keep`` accepts, skipping excluded folders."""
    names: list[str] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        dirnames[:] = sorted(
            d for d in dirnames
            if d not in _EXCLUDED_DIRS
            and not d.endswith(".egg-info")
            and not os.path.exists(os.path.join(dirpath, d, "pyvenv.cfg"))
        )
        for fname in filenames:
            seen += 1
            if seen > MAX_WALK_ENTRIES:
                return sorted(names), f"stopped after {MAX_WALK_ENTRIES} files: the folder is too large"
            name = rel + fname
            if keep(name):
                names.append(name)
    return sorted(names), None


def _tarinfo(name: str, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _build(root: str, names: Iterable[str], max_file: int, max_total: int, sink: BlobSink | None = None,
           purpose: str = "source") -> _Archive:
    """The archive of ``names`` under ``root``; with a ``sink``, stored there (``digest`` set),
    and not built at all when the files are unchanged since their archive was stored (the cache
    keeps one archive per root and ``purpose``: a folder both snapshotted as the source root and
    installed from keeps both)."""
    ordered = sorted(set(names))
    key = fingerprint = None
    if sink is not None:
        key = f"{purpose}:{root}"
        fingerprint, racy = _fingerprint(root, ordered, max_file, max_total, time.time_ns())
        hit = _snapshots.find(key, fingerprint)
        if hit is not None and hit.digest is not None and sink.has_blob(hit.digest):
            return hit
        if racy:
            fingerprint = None
    buf = io.BytesIO()
    archive = _Archive(data=b"")
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ordered:
            _add(tar, root, name, archive, max_file, max_total)
    # one compress call over the whole tar (no name, mtime 0 in the gzip header)
    archive.data = gzip.compress(buf.getvalue(), compresslevel=_GZIP_LEVEL, mtime=0)
    if sink is not None and archive.files:
        archive.digest = sink.put_blob(archive.data)
        if key is not None and fingerprint is not None:
            _snapshots.keep(key, fingerprint, archive)
    return archive


def _fingerprint(root: str, names: list[str], max_file: int, max_total: int, started_ns: int) -> tuple[str, bool]:
    """(the fingerprint of ``names`` under ``root`` as they are on disk, whether a file is racily
    clean). The fingerprint covers what :func:`_add` decides by: each name, its
    lstat (type and mode, size, mtime, ctime, inode, device), the limits and reproflow's version.
    The content of a file changes its ctime, which no user call can set back."""
    h = hashlib.sha256(f"{__version__}\0{max_file}\0{max_total}\n".encode())
    racy = False
    for name in names:
        if is_secret_file(name):  # never read: its stat does not matter
            h.update(name.encode("utf-8", "surrogateescape") + b"\0s\n")
            continue
        try:
            st = os.lstat(os.path.join(root, *name.split("/")))
        except OSError:
            h.update(name.encode("utf-8", "surrogateescape") + b"\0-\n")
            continue
        if started_ns - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_WINDOW_NS:
            racy = True
        h.update(f"{name}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\0{st.st_dev}\n"
                 .encode("utf-8", "surrogateescape"))
    return h.hexdigest(), racy


class _SnapshotCache:
    """The last archived fingerprint of each source root, with its archive's digest and what
    :class:`SourceSnapshot` says of it, in the hash cache's SQLite file: one row a root."""

    def __init__(self) -> None:
        self._rows = FingerprintRows("snapshots", "root", "meta")

    def find(self, root: str, fingerprint: str) -> _Archive | None:
        meta = self._rows.get(root, fingerprint)
        if meta is None:
            return None
        try:
            return _Archive(data=None, files=int(meta["files"]), size=int(meta["size"]),
                            skipped={str(k): str(v) for k, v in dict(meta["skipped"]).items()},
                            skipped_total=int(meta["skipped_total"]), digest=str(meta["digest"]))
        except (ValueError, TypeError, KeyError):
            return None

    def keep(self, root: str, fingerprint: str, archive: _Archive) -> None:
        self._rows.put(root, fingerprint, {"digest": archive.digest, "files": archive.files, "size": archive.size,
                                           "skipped": archive.skipped, "skipped_total": archive.skipped_total})


_snapshots = _SnapshotCache()


def _add(tar: tarfile.TarFile, root: str, name: str, archive: _Archive, max_file: int, max_total: int) -> None:
    if is_secret_file(name):
        archive.skip(name, "secret file (by name)")
        return
    path = os.path.join(root, *name.split("/"))
    try:
        st = os.lstat(path)
    except OSError:
        return  # deleted in the working tree: the diff records that
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if posixpath.isabs(target) or resolved == ".." or resolved.startswith("../"):
            archive.skip(name, "symlink pointing outside the source root")
            return
        info = _tarinfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        info.mode = 0o777
        tar.addfile(info)
        archive.files += 1
        return
    if stat.S_ISDIR(st.st_mode):
        archive.skip(name, "directory (git submodule?)")
        return
    if not stat.S_ISREG(st.st_mode):
        archive.skip(name, "not a regular file")
        return
    if st.st_size > max_file:
        archive.skip(name, f"over {max_file >> 20} MiB ({st.st_size} bytes)")
        return
    if archive.size + st.st_size > max_total:
        archive.skip(name, f"total size limit of {max_total >> 20} MiB reached")
        return
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_file + 1)
    except OSError as exc:
        archive.skip(name, f"unreadable: {exc.strerror or exc}")
        return
    if len(data) > max_file:  # grew since lstat
        archive.skip(name, f"over {max_file >> 20} MiB")
        return
    reason = secret_reason(name, data)
    if reason is not None:
        archive.skip(name, reason)
        return
    info = _tarinfo(name, len(data))
    info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    tar.addfile(info, io.BytesIO(data))
    archive.files += 1
    archive.size += len(data)


# --------------------------------------------------------------------------------------------
# Safe extraction
# --------------------------------------------------------------------------------------------

_MAX_LINK_DEPTH = 40


def extract_source(archive: bytes, dest: str, *, label: str = "source archive") -> None:
    """Extract a snapshot into ``dest``, refusing anything that would land outside it.

    Every member is checked before anything is written: absolute names, ``..`` components,
    symlinks or hard links that resolve outside ``dest`` (following the archive's own links),
    and device files, FIFOs or other special members all raise
    :class:`reproflow.errors.UnsafeArchive`. Extraction then also runs through tarfile's
    ``data`` filter where Python has it (it re-checks against what is already on disk).

    Args:
        archive: the tar.gz (or plain tar) bytes.
        dest: target folder (created if missing); best empty.
        label: how the archive is named in an error message.
    """
    try:
        tar = tarfile.open(fileobj=io.BytesIO(archive), mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UnsafeArchive(f"cannot read {label}: {exc}; the store may be damaged") from exc
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise UnsafeArchive(f"cannot read {label}: {exc}; the store may be damaged") from exc
        links = {_clean(m.name, label): m.linkname for m in members if m.issym()}
        for m in members:
            name = _clean(m.name, label)
            if m.isdev() or m.isfifo() or not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                raise UnsafeArchive.for_member(label, m.name)
            # the member's own folder must not pass through a link that leaves dest
            _resolve(posixpath.dirname(name), links, label, m.name)
            if m.issym():
                if posixpath.isabs(m.linkname):
                    raise UnsafeArchive.for_member(label, m.name)
                _resolve(posixpath.join(posixpath.dirname(name), m.linkname), links, label, m.name)
            elif m.islnk():
                _resolve(_clean(m.linkname, label, m.name), links, label, m.name)
        os.makedirs(dest, exist_ok=True)
        try:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # pragma: no cover - Python without PEP 706 (3.10.11 and older)
                tar.extractall(dest)  # noqa: S202 - every member was validated above
        except tarfile.TarError as exc:  # FilterError and friends
            raise UnsafeArchive(f"refusing to extract {label}: {exc}") from exc
        except OSError as exc:  # a name this file system cannot hold (too long, ...), a full disk
            raise UnsafeArchive(f"cannot extract {label} into {dest}: {exc.strerror or exc}") from exc


def _clean(name: str, label: str, member: str | None = None) -> str:
    """A member name as a relative POSIX path without ``..``; raise otherwise."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive.for_member(label, member or name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts or any(len(p.encode("utf-8", "surrogateescape")) > 255 for p in parts):
        raise UnsafeArchive.for_member(label, member or name)
    return "/".join(parts)


def _resolve(path: str, links: dict[str, str], label: str, member: str, depth: int = 0) -> list[str]:
    """Resolve ``path`` (relative to dest) through the archive's symlinks; raise if it leaves dest."""
    if depth > _MAX_LINK_DEPTH:
        raise UnsafeArchive.for_member(label, member)
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not out:
                raise UnsafeArchive.for_member(label, member)
            out.pop()
            continue
        out.append(part)
        target = links.get("/".join(out))
        if target is not None:
            if posixpath.isabs(target):
                raise UnsafeArchive.for_member(label, member)
            out = _resolve(posixpath.join(*out[:-1], target) if len(out) > 1 else target,
                           links, label, member, depth + 1)
    return out


__all__ = [
    "MAX_FILE_BYTES",
    "MAX_TOTAL_BYTES",
    "extract_source",
    "is_secret_file",
    "snapshot_distribution",
    "snapshot_source",
    "store_distribution_snapshot",
]
