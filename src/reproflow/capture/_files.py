"""Streaming SHA-256 of files, directories and fsspec URLs, with a stat-keyed cache.

* Files are read in 1 MiB chunks into one reused buffer (``readinto``): about ``hashlib``'s own
  speed, several times coreutils ``sha256sum`` (DESIGN.md, measured here).
* A directory hashes as a tree: the sorted list of ``<relative posix name>\\0<file sha256>\\n``
  lines, hashed again. The same files give the same tree hash locally and on object stores.
* An unchanged file is never hashed twice: results are cached by (path, device, inode, size,
  mtime_ns, ctime_ns) in memory and in a small SQLite file shared across runs
  (``$REPROFLOW_CACHE_DIR``, default ``~/.cache/reproflow``). A file whose mtime is within
  :data:`RACY_WINDOW_NS` of the moment it was hashed is not cached ("racily clean", as git calls
  it): a write in the same clock tick could keep its stat unchanged.
* A file under :data:`SMALL_FILE` bytes is cached in memory only: reading and hashing it costs
  no more than a SQLite lookup and a later write of its entry (1 KiB: 8 µs, a lookup 4-5 µs
  alone, measured), and a racily clean file is not looked up at all (it cannot be there). A task
  that writes small files then pays their bytes and one stat each.
* A file of up to 256 KiB whose bytes are in the page cache, on a local file system, is read
  without letting the GIL go (``_heldio.py``): in a flow each system call that lets it go hands
  it to another of Prefect's task threads and back.
"""

from __future__ import annotations

import atexit
import errno
import hashlib
import os
import re
import sqlite3
import stat
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

from ._digest import EMPTY_TREE, RACY_WINDOW_NS, cache_dir, hash_cache_db, tree_digest
from ._heldio import read_small
from ._locks import held_descriptor, maybe_locked, read_held
from ..values._urls import strip_credentials, url_scheme
from ..records import MAX_DIR_ENTRIES, DataRef
from .. import _forksafe

CHUNK = 1 << 20
#: How far a file's time stamps may lag the clock: the kernel stamps them from a coarse clock,
#: a tick (1-10 ms) behind ``time.time_ns``, so a file written just after a moment may carry a
#: time a little before it. Who compares a file's time with a moment allows this much.
FILE_TIME_SLACK_NS = 50_000_000
SMALL_FILE = 16 << 10
PROGRESS_MIN_BYTES = 512 << 20

_mem: dict[tuple[Any, ...], str] = {}
_mem_lock = _forksafe.lock()
#: One SQLite connection per process, shared by every thread under ``_db_lock``: Prefect's
#: thread pool starts a thread per task run, and a connection per thread cost a connect, two
#: pragmas and a CREATE TABLE per task (about 1 ms of each file task's CPU, measured).
_local = types.SimpleNamespace()
_db_lock = _forksafe.rlock()
#: Cache entries not yet in SQLite, written in one transaction (one WAL commit, not one per
#: file) when there are enough, when the memory cache is cleared, and at interpreter exit.
_pending: list[tuple[Any, ...]] = []
PENDING_MAX = 256


def _db() -> sqlite3.Connection | None:
    """The local-file hash cache (SQLite connections are not shareable across threads)."""
    return hash_cache_db(
        _local,
        "CREATE TABLE IF NOT EXISTS h (path TEXT PRIMARY KEY, dev INT, ino INT, size INT,"
        " mtime INT, ctime INT, sha256 TEXT)",
    )


def _key(path: str, st: os.stat_result) -> tuple[Any, ...]:
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _on_disk(st: os.stat_result, now_ns: int) -> bool:
    """Whether a file's hash belongs in the on-disk cache: not small, not racily clean."""
    return st.st_size >= SMALL_FILE and now_ns - st.st_mtime_ns >= RACY_WINDOW_NS


def _cached(path: str, st: os.stat_result, on_disk: bool = True) -> str | None:
    key = _key(path, st)
    hit = _mem.get(key)
    if hit is not None or not on_disk:
        return hit
    with _db_lock:
        conn = _db()
        if conn is None:
            return None
        try:
            row = conn.execute(
                "SELECT sha256 FROM h WHERE path=? AND dev=? AND ino=? AND size=? AND mtime=? AND ctime=?",
                key,
            ).fetchone()
        except sqlite3.Error:
            return None
    if row:
        with _mem_lock:
            _mem[key] = row[0]
        return str(row[0])
    return None


def _remember(path: str, st: os.stat_result, digest: str, started_ns: int) -> None:
    if started_ns - st.st_mtime_ns < RACY_WINDOW_NS:
        return  # racily clean: a write in the same tick could leave the stat unchanged
    key = _key(path, st)
    with _mem_lock:
        _mem[key] = digest
    if st.st_size < SMALL_FILE:
        return  # hashing it again is as cheap as the lookup
    with _db_lock:
        _pending.append((*key, digest))
        if len(_pending) >= PENDING_MAX:
            flush_cache()


def flush_cache() -> None:
    """Write the pending cache entries to SQLite, in one transaction."""
    with _db_lock:
        rows, _pending[:] = list(_pending), []
        if not rows:
            return
        conn = _db()
        if conn is None:
            return
        try:
            with conn:  # one transaction
                conn.execute("BEGIN")
                conn.executemany("INSERT OR REPLACE INTO h VALUES (?,?,?,?,?,?,?)", rows)
        except sqlite3.Error:
            pass  # the cache only costs speed


atexit.register(flush_cache)


def _reset_after_fork() -> None:
    _pending.clear()  # the parent writes its own (the locks are unlocked in the child by _forksafe)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def clear_memory_cache() -> None:
    """Forget in-process cache entries (the on-disk cache stays, with what was pending)."""
    flush_cache()
    with _mem_lock:
        _mem.clear()


def sha256_file(path: str | os.PathLike[str], *, progress: bool | None = None) -> tuple[str, int]:
    """SHA-256 hex digest and size of a local file, streamed; cached by stat."""
    p = os.path.abspath(os.fspath(path))
    return _sha256_stat(p, os.stat(p), progress)


def special_file_reason(st: os.stat_result) -> str:
    """Why a path that is no regular file or folder (a named pipe, a device, a socket) is not
    hashed: its bytes are a stream, which reading would consume (a pipe's data then never reach
    the task) or never end (``/dev/zero``), or block on (a pipe with no writer, a terminal)."""
    mode = st.st_mode
    what = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "no regular file")
    return (f"{what}: a stream, not stored bytes; reading it to hash it would take its data from the task, "
            "or wait or read without end, so it is not read")


def _sha256_stat(p: str, st: os.stat_result, progress: bool | None = None) -> tuple[str, int]:
    """:func:`sha256_file` of an absolute path whose ``os.stat`` the caller just took.

    Raises:
        OSError: the path is no regular file (see :func:`special_file_reason`): never read.
    """
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, special_file_reason(st), p)
    started = time.time_ns()
    on_disk = _on_disk(st, started)
    hit = _cached(p, st, on_disk)
    if hit is not None:
        return hit, st.st_size
    fd = held_descriptor(st) if maybe_locked(p, st) else None
    if fd is not None:  # a sqlite database (or a locked file) this process has open: closing a descriptor drops its locks
        h = hashlib.sha256()
        read_held(fd, CHUNK, h.update)
        digest = h.hexdigest()
    else:
        digest = _stream(p, st.st_size, progress, st)
    # Remembered under the stat taken before the read, with no second stat to confirm it (one
    # syscall fewer per file hashed: issue 16). A write after that stat moves the file's mtime
    # and ctime to now, and its key (ctime included, which nothing can set back) then never
    # matches the remembered one again; the file was not modified within RACY_WINDOW_NS before
    # it (else it is not remembered), so a write cannot leave its mtime unchanged either. git
    # keeps the stat it took before reading a file the same way.
    _remember(p, st, digest, started)
    return digest, st.st_size


#: gzip's magic bytes and its one compression method (deflate): RFC 1952, section 2.3
_GZIP_MAGIC = b"\x1f\x8b\x08"


def gzip_sha256(path: str) -> str | None:
    """For a gzip file, the sha256 of its bytes with the header's MTIME (bytes 4 to 7: when it
    was compressed, which ``gzip.open`` and pandas set to the clock) zeroed; None for a file
    that is not gzip. Two files with the same one differ in that time stamp alone."""
    with open(path, "rb", buffering=0) as fh:
        head = fh.read(10)
    if len(head) < 10 or head[:3] != _GZIP_MAGIC:
        return None
    return _sha256_zeroed(path, [(4, 8)])


#: zip's local file header and central directory header signatures (APPNOTE.TXT 4.3.7, 4.3.12)
_ZIP_LOCAL = b"PK\x03\x04"
_ZIP_CENTRAL = b"PK\x01\x02"
#: extra fields that hold times, and which bytes of their data are times: the extended
#: timestamp (0x5455, after its flags byte), NTFS (0x000a, all of it), Info-ZIP Unix (0x5855,
#: access and modification time)
_ZIP_TIME_EXTRA = {0x5455: (1, None), 0x000A: (0, None), 0x5855: (0, 8)}
#: the formats whose files record when they were written, by the suffix of their name
UNTIMED_FORMATS = {".zip": "zip", ".npz": "zip", ".pdf": "pdf", ".svg": "svg"}
#: the dates a PDF's document information (PDF 32000-1, 14.3.3) and its XMP metadata hold
_PDF_DATES = re.compile(rb"/(?:CreationDate|ModDate)\s*\(([^)]*)\)"
                        rb"|<xmp:(?:CreateDate|ModifyDate|MetadataDate)>([^<]*)</xmp:"
                        rb"|xmp:(?:CreateDate|ModifyDate|MetadataDate)=\"([^\"]*)\"")
#: the date in an SVG's Dublin Core metadata (matplotlib, Inkscape)
_SVG_DATES = re.compile(rb"<dc:date>([^<]*)</dc:date>")
#: an output is read a second time for its times (gzip's, zip's, a PDF's or an SVG's, searched
#: in memory for the last two) only up to this size: a larger one has none kept
UNTIMED_MAX = 256 << 20


def untimed_format(uri: str) -> str | None:
    """``zip``, ``pdf`` or ``svg`` for a local file named as one (``.npz`` is a zip), else None.
    A slice, not ``os.path.splitext``: every output a task writes is asked (every suffix is four
    characters)."""
    if "://" in uri:
        return None
    return UNTIMED_FORMATS.get(uri[-4:].lower())


def untimed_sha256(path: str) -> str | None:
    """For a file whose format records when it was written (see :func:`untimed_format`), the
    sha256 of its bytes with those times overwritten by zeros, in place (no byte moves): two
    files with the same one differ in those times alone. None for a file of no such format, one
    that is not what its name says, or one that holds no time."""
    fmt = untimed_format(path)
    if fmt == "zip":
        spans = _zip_times(path)
    elif fmt in ("pdf", "svg"):
        spans = _text_times(path, _PDF_DATES if fmt == "pdf" else _SVG_DATES)
    else:
        return None
    return _sha256_zeroed(path, spans) if spans else None  # none found: nothing to leave out


def _text_times(path: str, pattern: re.Pattern[bytes]) -> list[tuple[int, int]] | None:
    """The file ranges of the dates ``pattern`` finds (its groups), read in memory."""
    with open(path, "rb", buffering=0) as fh:
        if os.fstat(fh.fileno()).st_size > UNTIMED_MAX:
            return None
        data = fh.read()
    head = data[:1024].lstrip()
    if pattern is _PDF_DATES and not head.startswith(b"%PDF-") or pattern is _SVG_DATES and b"<svg" not in data[:4096]:
        return None
    return [m.span(g) for m in pattern.finditer(data) for g in range(1, (m.lastindex or 0) + 1) if m.group(g) is not None]


def _zip_extra_times(extra_at: int, extra: bytes) -> list[tuple[int, int]]:
    """The file ranges of the times in an extra field block that starts at ``extra_at``."""
    out, i = [], 0
    while i + 4 <= len(extra):
        tag = int.from_bytes(extra[i:i + 2], "little")
        size = int.from_bytes(extra[i + 2:i + 4], "little")
        span = _ZIP_TIME_EXTRA.get(tag)
        if span is not None:
            start, end = span
            stop = size if end is None else min(end, size)
            if stop > start:
                out.append((extra_at + i + 4 + start, extra_at + i + 4 + stop))
        i += 4 + size
    return out


def _zip_times(path: str) -> list[tuple[int, int]] | None:
    """The file ranges of every time a zip archive holds (zipfile's ``writestr`` given a name and
    pandas stamp each member with the clock, ``shutil.make_archive`` with the file's mtime): each
    member's modification time and date, in its local header and in the central directory,
    and the times of the extra fields that carry them. None for a file zipfile cannot read."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            start_dir = int(getattr(zf, "start_dir"))
    except (zipfile.BadZipFile, OSError, AttributeError, ValueError, NotImplementedError, EOFError):
        return None
    zero: list[tuple[int, int]] = []
    with open(path, "rb", buffering=0) as fh:
        for info in infos:
            fh.seek(info.header_offset)
            head = fh.read(30)
            if len(head) < 30 or head[:4] != _ZIP_LOCAL:
                return None
            zero.append((info.header_offset + 10, info.header_offset + 14))
            n, m = int.from_bytes(head[26:28], "little"), int.from_bytes(head[28:30], "little")
            at = info.header_offset + 30 + n
            fh.seek(at)
            zero += _zip_extra_times(at, fh.read(m))
        fh.seek(start_dir)
        at = start_dir
        for _ in infos:
            head = fh.read(46)
            if len(head) < 46 or head[:4] != _ZIP_CENTRAL:
                return None
            zero.append((at + 12, at + 16))
            n, m, k = (int.from_bytes(head[j:j + 2], "little") for j in (28, 30, 32))
            rest = fh.read(n + m + k)
            zero += _zip_extra_times(at + 46 + n, rest[n:n + m])
            at += 46 + n + m + k
    return zero


def _sha256_zeroed(path: str, spans: list[tuple[int, int]]) -> str:
    """The sha256 of a file's bytes with the byte ranges ``spans`` read as zeros, streamed."""
    zero = sorted(spans)
    h = hashlib.sha256()
    pos, i = 0, 0
    buf = bytearray(CHUNK)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            chunk = buf[:n]
            end = pos + n
            while i < len(zero) and zero[i][1] <= pos:
                i += 1
            j = i
            while j < len(zero) and zero[j][0] < end:
                a, b = max(zero[j][0], pos), min(zero[j][1], end)
                if b > a:
                    chunk[a - pos:b - pos] = bytes(b - a)
                j += 1
            h.update(chunk)
            pos = end
    return h.hexdigest()


def _stream(path: str, size: int, progress: bool | None, st: os.stat_result | None = None) -> str:
    show = progress if progress is not None else (size >= PROGRESS_MIN_BYTES and _interactive())
    if size < CHUNK and not show:
        held = read_small(path, st) if st is not None else None  # the GIL held, where that cannot wait
        if held is not None:
            return hashlib.sha256(held).hexdigest()
        # One open, one read and one close: a file object would add an fstat and a second
        # read to find the end, and each call lets another of Prefect's task threads run.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            data = os.read(fd, size + 1)
            if len(data) == size:
                return hashlib.sha256(data).hexdigest()
            h = hashlib.sha256(data)  # it changed since its stat: read to its end
            while chunk := os.read(fd, CHUNK):
                h.update(chunk)
            return h.hexdigest()
        finally:
            os.close(fd)
    h = hashlib.sha256()
    buf = bytearray(min(CHUNK, size + 1))
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        if not show:
            while n := fh.readinto(buf):
                h.update(view[:n])
        else:
            from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                transient=True,
            ) as bar:
                tid = bar.add_task(f"sha256 {os.path.basename(path)}", total=size)
                while n := fh.readinto(buf):
                    h.update(view[:n])
                    bar.advance(tid, n)
    return h.hexdigest()


def _interactive() -> bool:
    import sys

    return bool(getattr(sys.stderr, "isatty", lambda: False)()) and os.environ.get("CI") != "true"


#: errors of ``stat`` that say no file is at a path: none there (ENOENT), a parent that is a
#: file (ENOTDIR), a name no file system holds (ENAMETOOLONG), a symbolic link loop (ELOOP)
_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP})


def walk_files(root: str) -> Iterator[tuple[str, str]]:
    """(relative posix name, absolute path) of every regular file below root, sorted."""
    out: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                mode = os.stat(full).st_mode
            except OSError:  # gone, a dangling link, a link loop (ELOOP): no file's content
                continue
            if stat.S_ISREG(mode):
                out.append((os.path.relpath(full, root).replace(os.sep, "/"), full))
    out.sort()
    yield from out


def hash_local(path: str | os.PathLike[str], *, skip: Callable[[str], bool] | None = None) -> DataRef:
    """DataRef of a local file or directory (``kind="missing"`` if it does not exist).

    ``skip``: for a directory, files left out of its tree (given their absolute path)."""
    return hash_local_signed(path, skip=skip)[0]


def hash_local_signed(path: str | os.PathLike[str], *, skip: Callable[[str], bool] | None = None,
                      dirs: bool = True, broad: Callable[[str], str | None] | None = None,
                      **fields: Any) -> tuple[DataRef, tuple[Any, ...] | None]:
    """:func:`hash_local`, and for a file its :func:`stat_signature` from the stat the hash was
    keyed by (one stat fewer for a caller that watches the file); None for a folder or a
    missing path (ask :func:`stat_signature`). ``fields``: more of the DataRef's fields (its
    ``param``, ``declared``), set as it is built. ``dirs=False``: a folder is not walked; its
    DataRef has kind ``directory`` and no hash (for a caller that looks inside it itself).
    ``broad``: asked of a folder only (no cost for a file); the reason it gives, where it gives
    one, is why the folder is not one value to hash (see ``recorder._attempt._Attempt._broad_folder``): it
    is recorded ``unhashed`` with that reason, never walked."""
    p = abspath(os.fspath(path))
    try:
        st = os.stat(p)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return DataRef(uri=p, kind="missing", **fields), None
        raise
    if stat.S_ISDIR(st.st_mode) and not dirs:
        return DataRef(uri=p, kind="directory", **fields), None
    if broad is not None and stat.S_ISDIR(st.st_mode):
        reason = broad(p)
        if reason is not None:
            return DataRef(uri=p, kind="unhashed", reason=reason, **fields), None
    if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        return DataRef(uri=p, kind="unhashed", reason=special_file_reason(st), **fields), None
    if stat.S_ISDIR(st.st_mode):
        entries: list[tuple[str, str]] = []
        total = 0
        for rel, full in walk_files(p):
            if skip is not None and skip(full):
                continue
            digest, size = sha256_file(full)
            entries.append((rel, digest))
            total += size
        names = sorted(rel for rel, _ in entries) if len(entries) <= MAX_DIR_ENTRIES else None
        return DataRef(uri=p, kind="directory", sha256=tree_digest(entries), size=total, n_files=len(entries),
                       entries=names, **fields), None
    digest, size = _sha256_stat(p, st)
    return DataRef(uri=p, kind="file", sha256=digest, size=size, **fields), _key(p, st)


#: ``os.path.abspath`` leaves a path alone when it is absolute and already normal: no empty,
#: ``.`` or ``..`` part and no trailing separator (what ``pathlib`` gives). Only POSIX is checked
#: here; elsewhere every path goes through ``os.path.abspath``.
_POSIX = os.sep == "/" and os.altsep is None


def abspath(path: str) -> str:
    """``os.path.abspath(path)`` for a ``str``, without its work when ``path`` is already
    absolute and normal (every path a task is passed as a ``Path``, each looked up several
    times per task run: issue 16)."""
    if _POSIX and path[:1] == "/" and "//" not in path and "/." not in path and path[-1:] != "/":
        return path
    return os.path.abspath(path)


def is_local(uri: str) -> bool:
    if uri[:1] == "/":  # an absolute path (no scheme starts with a slash)
        return True
    scheme = url_scheme(uri)
    return scheme is None or scheme in ("file", "local")


def local_path(uri: str) -> str:
    if uri[:1] == "/":
        return uri
    if uri.startswith("file://"):
        return uri[len("file://"):]
    if uri.startswith("local://"):
        return uri[len("local://"):]
    return uri


def hash_path(uri: str | os.PathLike[str], storage_options: dict[str, Any] | None = None, *,
              dirs: bool = True) -> DataRef:
    """DataRef of a local path or any fsspec URL (remote objects stream through fsspec).
    ``dirs=False``: a folder or prefix is not walked (kind ``directory``, no hash)."""
    if isinstance(uri, os.PathLike):
        return hash_local_signed(uri, dirs=dirs)[0]
    if is_local(uri):
        return hash_local_signed(local_path(uri), dirs=dirs)[0]
    from ._remote import hash_remote

    ref = hash_remote(uri, storage_options=storage_options, dirs=dirs)
    ref.uri = strip_credentials(ref.uri)
    return ref


def stat_signature(uri: str | os.PathLike[str]) -> tuple[Any, ...] | None:
    """A cheap fingerprint of a local path's stat (None for remote or missing paths)."""
    p = os.fspath(uri)
    if not is_local(p):
        return None
    p = abspath(local_path(p))
    try:
        st = os.stat(p)
    except OSError:  # missing, or no file can be there (see _ABSENT), or not to be looked at (EACCES)
        return None
    if stat.S_ISDIR(st.st_mode):
        sig: list[Any] = []
        for rel, full in walk_files(p):
            try:
                s = os.stat(full)
            except OSError:
                continue
            # ctime too: tarfile and shutil.copy2 rewrite a file and set its mtime back
            sig.append((rel, s.st_size, s.st_mtime_ns, s.st_ino, s.st_ctime_ns))
        return ("dir", tuple(sig))
    return _key(p, st)


def changed_in_tree(before: tuple[Any, ...] | None, after: tuple[Any, ...] | None) -> tuple[list[str], list[str]] | None:
    """The files a folder gained or changed, and the files it lost, between two
    :func:`stat_signature` results of the same folder (relative posix names, sorted); None when
    either signature is not a folder's."""
    if not (before and after and before[0] == "dir" and after[0] == "dir"):
        return None
    old = {entry[0]: entry[1:] for entry in before[1]}
    new = {entry[0]: entry[1:] for entry in after[1]}
    written = sorted(rel for rel, sig in new.items() if old.get(rel) != sig)
    removed = sorted(rel for rel in old if rel not in new)
    return written, removed


__all__ = ["EMPTY_TREE", "SMALL_FILE", "changed_in_tree", "gzip_sha256", "hash_local", "hash_local_signed", "hash_path", "sha256_file", "stat_signature", "UNTIMED_MAX", "tree_digest", "untimed_format", "untimed_sha256", "walk_files"]
