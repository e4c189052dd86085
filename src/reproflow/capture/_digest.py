"""The pieces file hashing and remote hashing share: the hash cache's place and connection, and
the tree hash of a folder (kept here so neither imports the other)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import types
from pathlib import Path
from typing import Any


#: A file whose mtime (or ctime) is this close to the moment it was read is "racily clean", as
#: git calls it: a write in the same clock tick of the file system could leave its stat unchanged,
#: so nothing keyed by that stat is cached.
RACY_WINDOW_NS = 100_000_000  # 0.1 s

_cache_dir_memo: tuple[str | None, str | None, Path] | None = None


def cache_dir() -> Path:
    """``$REPROFLOW_CACHE_DIR``, else ``~/.cache/reproflow`` (worked out again only when either
    variable changed: every hash-cache lookup asks)."""
    global _cache_dir_memo
    raw, home = os.environ.get("REPROFLOW_CACHE_DIR"), os.environ.get("HOME")
    memo = _cache_dir_memo
    if memo is not None and memo[0] == raw and memo[1] == home:
        return memo[2]
    found = Path(raw or os.path.join(os.path.expanduser("~"), ".cache", "reproflow"))
    _cache_dir_memo = (raw, home, found)
    return found


def open_cache_db(local: threading.local, path: str, schema: str) -> sqlite3.Connection | None:
    """A per-thread, per-process SQLite connection to a hash cache (``local`` holds it), with
    ``schema`` created; None when the cache cannot be opened (a read-only home or a locked
    cache only costs speed)."""
    conn = getattr(local, "conn", None)
    if conn is not None and getattr(local, "path", None) == path and getattr(local, "pid", None) == os.getpid():
        return conn
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(schema)
    except (sqlite3.Error, OSError):
        return None
    local.conn, local.path, local.pid = conn, path, os.getpid()
    return conn


def hash_cache_db(local: threading.local, schema: str) -> sqlite3.Connection | None:
    """:func:`open_cache_db` on the hash cache's file, ``hashes.sqlite3`` in :func:`cache_dir`:
    local file hashes, and the source-snapshot and distribution caches of a process's capture."""
    return open_cache_db(local, str(cache_dir() / "hashes.sqlite3"), schema)


class FingerprintRows:
    """One table of the hash cache's SQLite file: a JSON value a key, valid while its fingerprint
    holds, the row replaced when it changes (so a key has one row however often what it names
    changes): a source folder's last archive (``capture.source``), a task function's findings
    (``checks``). ``max_rows``: the least recently written go past it (a ``seen`` column), for
    keys that may never be asked for again. A cache that cannot be opened, read or written only
    costs speed."""

    def __init__(self, table: str, key: str, value: str, max_rows: int | None = None) -> None:
        self._table, self._key, self._value, self.max_rows = table, key, value, max_rows
        seen = ", seen REAL" if max_rows is not None else ""
        self._schema = f"CREATE TABLE IF NOT EXISTS {table} ({key} TEXT PRIMARY KEY, fingerprint TEXT, {value} TEXT{seen})"
        self._local = types.SimpleNamespace()

    def get(self, key: str, fingerprint: str) -> Any:
        """The value kept under ``key`` with this fingerprint, decoded; None when there is none."""
        db = hash_cache_db(self._local, self._schema)
        if db is None:
            return None
        try:
            row = db.execute(f"SELECT fingerprint, {self._value} FROM {self._table} WHERE {self._key} = ?",
                             (key,)).fetchone()
            return json.loads(row[1]) if row is not None and row[0] == fingerprint else None
        except (sqlite3.Error, ValueError):
            return None

    def put(self, key: str, fingerprint: str, value: Any) -> None:
        db = hash_cache_db(self._local, self._schema)
        if db is None:
            return
        try:
            if self.max_rows is None:
                db.execute(f"INSERT OR REPLACE INTO {self._table} VALUES (?, ?, ?)", (key, fingerprint, json.dumps(value)))
                return
            db.execute(f"INSERT OR REPLACE INTO {self._table} VALUES (?, ?, ?, ?)",
                       (key, fingerprint, json.dumps(value), time.time()))
            (rows,) = db.execute(f"SELECT COUNT(*) FROM {self._table}").fetchone()
            if rows > self.max_rows:
                db.execute(f"DELETE FROM {self._table} WHERE {self._key} IN "
                           f"(SELECT {self._key} FROM {self._table} ORDER BY seen LIMIT ?)", (rows - self.max_rows,))
        except sqlite3.Error:
            pass


#: The tree hash of an empty folder (no files): ``tree_digest([])``, which is also the SHA-256
#: of zero bytes, so compare it only with a ``kind="directory"`` reference.
EMPTY_TREE = hashlib.sha256(b"").hexdigest()


def tree_digest(entries: list[tuple[str, str]]) -> str:
    """The tree hash of (relative name, file sha256) pairs; shared with remote hashing."""
    h = hashlib.sha256()
    for rel, digest in sorted(entries):
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + digest.encode() + b"\n")
    return h.hexdigest()
