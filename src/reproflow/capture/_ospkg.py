"""Who owns a file on this machine (Debian's dpkg database, RPM), and an ELF file's SONAME.

Both answers are kept in a small SQLite cache beside the hash cache (``system.sqlite3``):

* ELF facts are keyed by the file's SHA-256 (a pure function of its bytes), so pyelftools is
  imported and run only for a library this machine never saw before.
* dpkg's answers come from an index of every shared object and program it installed (about
  3,000 files, 120 kB here), built once per state of its database (the ``status`` file is
  rewritten by every install and removal). RPM's are kept per path and state of its database.

dpkg's database is read directly: every ``/var/lib/dpkg/info/*.list`` (one line per installed
path) for the owner, ``/var/lib/dpkg/status`` for its version. ``dpkg -S`` would cost a process
per file and knows nothing more. On a merged-/usr system a list names ``/lib/x86_64-linux-gnu/
libc.so.6`` while the process maps ``/usr/lib/...``: list lines are compared by real path.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sqlite3
import subprocess
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional

from ._digest import cache_dir, open_cache_db
from .. import _forksafe

#: (package, version, architecture) of an owner
Owner = tuple[str, str, Optional[str]]
#: runs ``rpm`` with arguments, returns (exit code, stdout)
RpmRunner = Callable[[Sequence[str]], tuple[int, str]]

_local = types.SimpleNamespace()
_lock = _forksafe.rlock()


def _db() -> sqlite3.Connection | None:
    return open_cache_db(_local, str(cache_dir() / "system.sqlite3"),
                         "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")  # fmt: skip


def _get(keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with _lock:
        conn = _db()
        if conn is None or not keys:
            return out
        try:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                q = "SELECT k, v FROM kv WHERE k IN (%s)" % ",".join("?" * len(chunk))
                out.update((k, json.loads(v)) for k, v in conn.execute(q, chunk))
        except (sqlite3.Error, ValueError):
            return {}
    return out


def _put(items: dict[str, Any]) -> None:
    with _lock:
        conn = _db()
        if conn is None or not items:
            return
        try:
            with conn:
                conn.execute("BEGIN")
                conn.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", [(k, json.dumps(v)) for k, v in items.items()])
        except sqlite3.Error:
            pass  # the cache only costs speed


# ----------------------------------------------------------------------------------- ELF


def elf_facts(files: Iterable[tuple[str, str]]) -> dict[str, tuple[Optional[str], Optional[str]]]:
    """``{sha256: (soname, e_type)}`` for ``(path, sha256)`` pairs of ELF files, cached by sha256."""
    wanted = {sha: path for path, sha in files}
    cached = _get([f"elf:{sha}" for sha in wanted])
    out: dict[str, tuple[Optional[str], Optional[str]]] = {}
    new: dict[str, Any] = {}
    for sha, path in wanted.items():
        hit = cached.get(f"elf:{sha}")
        if isinstance(hit, list) and len(hit) == 2:
            out[sha] = (hit[0], hit[1])
            continue
        facts = read_elf(path)
        out[sha] = facts
        new[f"elf:{sha}"] = list(facts)
    _put(new)
    return out


def read_elf(path: str) -> tuple[Optional[str], Optional[str]]:
    """(DT_SONAME, e_type) of an ELF file, read with pyelftools; (None, None) when unreadable."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as fh:
            elf = ELFFile(fh)
            soname = None
            for seg in elf.iter_segments(type="PT_DYNAMIC"):
                for tag in seg.iter_tags("DT_SONAME"):
                    soname = str(tag.soname)
                break
            return soname, str(elf.header.e_type)
    except (OSError, ELFError, ValueError, KeyError, AttributeError):
        return None, None


# ----------------------------------------------------------------------------------- dpkg


def _signature(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"


def dpkg_owners(paths: Iterable[str], root: str = "/var/lib/dpkg") -> dict[str, Owner] | None:
    """The dpkg package owning each path (paths no package owns are left out); None without dpkg."""
    index = _dpkg_index(root)
    if index is None:
        return None
    files, versions = index
    out: dict[str, Owner] = {}
    for path in paths:
        for line, pkg in files.get(path.rpartition("/")[2], ()):
            if line == path or os.path.realpath(line) == path:
                info = versions.get(pkg)
                if info is not None:
                    out[path] = (pkg.partition(":")[0], info[0], info[1])
                    break
    return out


#: which installed files the index keeps: shared objects and programs (what a process maps)
_INDEXED = re.compile(r"\.so(\.[0-9.]+)?$|/s?bin/[^/]+$")
_index_memo: dict[str, tuple[dict[str, list[list[str]]], dict[str, list[Any]]]] = {}


def _dpkg_index(root: str) -> tuple[dict[str, list[list[str]]], dict[str, list[Any]]] | None:
    """``({file name: [[installed path, "pkg[:arch]"], ...]}, {"pkg[:arch]": [version, arch]})``
    for every shared object and program dpkg installed: built once per state of the database
    (its ``status`` file's signature) on this machine and kept in the cache."""
    sig = _signature(os.path.join(root, "status"))
    if sig is None:
        return None
    key = f"dpkgidx:{root}:{sig}"
    hit = _index_memo.get(key)
    if hit is not None:
        return hit
    cached = _get([key]).get(key)
    if isinstance(cached, list) and len(cached) == 2 and all(isinstance(x, dict) for x in cached):
        _index_memo[key] = (cached[0], cached[1])
        return _index_memo[key]
    files: dict[str, list[list[str]]] = {}
    for listing in sorted(glob.glob(os.path.join(root, "info", "*.list"))):
        pkg = os.path.basename(listing)[: -len(".list")]
        try:
            with open(listing, "rb") as fh:
                data = fh.read().decode("utf-8", "surrogateescape")
        except OSError:
            continue
        for line in data.split("\n"):
            if _INDEXED.search(line):
                files.setdefault(line.rpartition("/")[2], []).append([line, pkg])
    versions = _dpkg_status(os.path.join(root, "status"), {pkg for entries in files.values() for _, pkg in entries})
    result = (files, {k: list(v) for k, v in versions.items()})
    with _lock:
        conn = _db()
        if conn is not None:
            try:  # older states of the database are of no more use
                conn.execute("DELETE FROM kv WHERE k LIKE ? AND k != ?", (f"dpkgidx:{root}:%", key))
            except sqlite3.Error:
                pass
    _put({key: list(result)})
    _index_memo[key] = result
    return result


def _dpkg_status(path: str, wanted: set[str]) -> dict[str, tuple[str, Optional[str]]]:
    """``{"pkg" and "pkg:arch": (version, arch)}`` of installed packages named in ``wanted``."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return {}
    names = {w.partition(":")[0] for w in wanted}
    out: dict[str, tuple[str, Optional[str]]] = {}
    for para in text.split("\n\n"):
        if not para.startswith("Package: "):
            para = para.lstrip("\n")
            if not para.startswith("Package: "):
                continue
        name = para[9:para.find("\n")] if "\n" in para else para[9:]
        if name not in names:
            continue
        fields: dict[str, str] = {}
        for line in para.split("\n"):
            key, sep, value = line.partition(": ")
            if sep and not key.startswith(" "):
                fields[key] = value.strip()
        if not fields.get("Status", "").endswith(" installed") or not fields.get("Version"):
            continue
        arch = fields.get("Architecture")
        out[f"{name}:{arch}"] = (fields["Version"], arch)
        out.setdefault(name, (fields["Version"], arch))
    return out


# ----------------------------------------------------------------------------------- RPM


def _run_rpm(args: Sequence[str]) -> tuple[int, str]:
    proc = subprocess.run(["rpm", *args], capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout


def rpm_owners(paths: Iterable[str], runner: RpmRunner | None = None,
               db: str = "/var/lib/rpm") -> dict[str, Owner] | None:  # fmt: skip
    """The RPM package owning each path (``rpm -qf``); None when rpm is not installed."""
    if runner is None:
        if shutil.which("rpm") is None:
            return None
        runner = _run_rpm
    sig = _signature(db) or "none"
    paths = list(dict.fromkeys(paths))
    prefix = f"rpm:{db}:{sig}:"
    cached = _get([prefix + p for p in paths])
    out: dict[str, Owner] = {}
    new: dict[str, Any] = {}
    for p in paths:
        hit = cached.get(prefix + p, False)
        if hit is False:
            try:
                code, text = runner(["-qf", "--qf", "%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n", p])
            except (OSError, subprocess.SubprocessError):
                return out
            fields = text.split("\n", 1)[0].split("\t") if code == 0 else []
            hit = fields if len(fields) == 3 and all(fields) else None
            new[prefix + p] = hit
        if isinstance(hit, list) and len(hit) == 3:
            out[p] = (str(hit[0]), str(hit[1]), hit[2] or None)
    _put(new)
    return out


__all__ = ["Owner", "dpkg_owners", "elf_facts", "read_elf", "rpm_owners"]
