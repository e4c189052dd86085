"""SHA-256 of remote data (S3, GCS, any fsspec URL), streamed, with a version-keyed cache.

* An object streams through fsspec in large blocks (16 MiB reads, no read-ahead cache), so
  hashing costs one pass over the bytes and constant memory.
* A prefix ("directory") hashes as a tree, exactly as local folders do
  (:func:`reproflow.capture._files.tree_digest`): the same files give the same tree hash on disk, on
  S3 and on GCS. Small objects of a tree are fetched concurrently (``fs.cat`` on async
  backends), large ones stream one by one.
* An unchanged object is never read twice: digests are cached by (endpoint, URL, version, size),
  where the version is the object's ETag, generation or version id (a modification time only
  when the backend offers nothing stronger), persisted in SQLite under ``$REPROFLOW_CACHE_DIR``
  (default ``~/.cache/reproflow``), shared by runs and processes.
* An S3 object uploaded with ``ChecksumAlgorithm="SHA256"`` already carries its full-object
  SHA-256; that checksum is used without reading the object.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import Any

from ..values._urls import strip_credentials
from ..records import DataRef
from .. import _forksafe

BLOCK = 16 << 20
#: Objects of a tree up to this size are fetched together (concurrently on async backends).
SMALL = 8 << 20
_BATCH_BYTES = 128 << 20
#: A version known only by its modification time is not cached while this fresh (seconds).
RACY_WINDOW_S = 2.0
_STRONG_KEYS = ("generation", "versionid", "version_id", "etag", "md5hash", "crc32c", "content_md5")
_TIME_KEYS = ("lastmodified", "last_modified", "mtime", "updated", "created")

_mem: dict[str, str] = {}
_mem_lock = _forksafe.lock()
_local = threading.local()


def cache_path() -> str:
    from ._digest import cache_dir

    return str(cache_dir() / "remote-hashes.sqlite3")


def _db() -> sqlite3.Connection | None:
    from ._digest import open_cache_db

    return open_cache_db(_local, cache_path(), "CREATE TABLE IF NOT EXISTS r (key TEXT PRIMARY KEY, sha256 TEXT, size INT, at REAL)")


def clear_memory_cache() -> None:
    """Forget in-process entries (the on-disk cache stays)."""
    with _mem_lock:
        _mem.clear()


def _cache_get(key: str) -> str | None:
    with _mem_lock:
        hit = _mem.get(key)
    if hit is not None:
        return hit
    conn = _db()
    if conn is None:
        return None
    try:
        row = conn.execute("SELECT sha256 FROM r WHERE key=?", (key,)).fetchone()
    except sqlite3.Error:
        return None
    if row:
        with _mem_lock:
            _mem[key] = str(row[0])
        return str(row[0])
    return None


def _cache_put(key: str, digest: str, size: int) -> None:
    with _mem_lock:
        _mem[key] = digest
    conn = _db()
    if conn is None:
        return
    try:
        conn.execute("INSERT OR REPLACE INTO r VALUES (?,?,?,?)", (key, digest, size, time.time()))
    except sqlite3.Error:
        pass


# ------------------------------------------------------------------------------------------------
# Versions and cache keys
# ------------------------------------------------------------------------------------------------


def _lower(info: dict[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in info.items()}


def version_token(info: dict[str, Any]) -> tuple[str, bool] | None:
    """(token, strong) naming this version of an object, or None when the backend gives none.

    Strong tokens (ETag, generation, version id, content MD5/CRC) change with the content;
    a modification time alone is weak (two writes within its resolution look alike).
    """
    low = _lower(info)
    parts = [f"{k}={low[k]}" for k in _STRONG_KEYS if low.get(k) not in (None, "")]
    if parts:
        return ";".join(parts), True
    for k in _TIME_KEYS:
        v = low.get(k)
        if v not in (None, ""):
            return f"{k}={v}", False
    return None


def _timestamp(value: Any) -> float | None:
    import datetime as dt

    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _endpoint(fs: Any) -> str:
    """Where the filesystem talks to, so two servers' same-named objects never share a cache key."""
    for attr in ("endpoint_url", "_endpoint", "_emulator_location", "endpoint"):
        value = getattr(fs, attr, None)
        if isinstance(value, str) and value:
            return strip_credentials(value)
    kwargs = getattr(fs, "client_kwargs", None)
    if isinstance(kwargs, dict) and kwargs.get("endpoint_url"):
        return strip_credentials(str(kwargs["endpoint_url"]))
    env = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if env and _is_s3(fs):
        return strip_credentials(env)
    return ""


def _is_s3(fs: Any) -> bool:
    """Whether ``fs`` is s3fs (or a subclass registered under another protocol)."""
    return hasattr(fs, "call_s3") and any(c.__module__.startswith("s3fs") for c in type(fs).__mro__)


def _cache_key(fs: Any, path: str, info: dict[str, Any]) -> str | None:
    token = version_token(info)
    if token is None:
        return None
    value, strong = token
    if not strong:
        stamp = _timestamp(_lower(info).get(value.split("=", 1)[0]))
        if stamp is None or time.time() - stamp < RACY_WINDOW_S:
            return None
    proto = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return json.dumps([_endpoint(fs), proto, path, value, int(info.get("size") or 0)])


# ------------------------------------------------------------------------------------------------
# Hashing
# ------------------------------------------------------------------------------------------------


def _s3_checksum(fs: Any, path: str, info: dict[str, Any]) -> str | None:
    """The full-object SHA-256 an S3 upload may carry (hex), without reading the object."""
    if not _is_s3(fs):
        return None
    algos = info.get("ChecksumAlgorithm")
    if algos is not None and "SHA256" not in algos:
        return None  # listings say which checksum an object has: skip the extra request
    try:
        bucket, key, version = fs.split_path(path)
        extra = {"VersionId": version} if version else {}
        head = fs.call_s3("head_object", Bucket=bucket, Key=key, ChecksumMode="ENABLED", **extra)
    except Exception:  # noqa: BLE001 - an optional shortcut; reading the object still works
        return None
    value = head.get("ChecksumSHA256")
    if not value or head.get("ChecksumType") not in (None, "FULL_OBJECT"):
        return None  # composite (per-part) checksums are not the content's SHA-256
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return raw.hex() if len(raw) == 32 else None


def _stream(fs: Any, path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with fs.open(path, "rb", block_size=BLOCK, cache_type="none") as fh:
        while True:
            chunk = fh.read(BLOCK)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def _hash_object(fs: Any, path: str, info: dict[str, Any]) -> str:
    size = int(info.get("size") or 0)
    key = _cache_key(fs, path, info)
    if key is not None:
        hit = _cache_get(key)
        if hit is not None:
            return hit
    digest = _s3_checksum(fs, path, info)
    if digest is None:
        digest, n = _stream(fs, path)
        if n != size:  # rewritten while we read: hash what we got, but do not cache it
            return digest
    if key is not None:
        _cache_put(key, digest, size)
    return digest


def _is_dir_marker(name: str, info: dict[str, Any]) -> bool:
    return name.endswith("/") or (info.get("type") == "directory")


def _hash_tree(fs: Any, root: str) -> tuple[str, int, int]:
    from ._digest import tree_digest

    listing = fs.find(root, detail=True, withdirs=False)
    base = root.rstrip("/") + "/"
    files: list[tuple[str, str, dict[str, Any]]] = []
    for name, info in listing.items():
        if _is_dir_marker(name, info) or not name.startswith(base):
            continue
        files.append((name[len(base) :], name, info))
    entries: list[tuple[str, str]] = []
    total = 0
    pending: list[tuple[str, str, dict[str, Any]]] = []
    for rel, name, info in files:
        size = int(info.get("size") or 0)
        total += size
        key = _cache_key(fs, name, info)
        hit = _cache_get(key) if key is not None else None
        if hit is not None:
            entries.append((rel, hit))
        elif size <= SMALL:
            pending.append((rel, name, info))
        else:
            entries.append((rel, _hash_object(fs, name, info)))
    for batch in _batches(pending):
        data = fs.cat([name for _, name, _ in batch], on_error="raise")
        if not isinstance(data, dict):
            data = {batch[0][1]: data}
        for rel, name, info in batch:
            blob = data.get(name)
            if blob is None:
                blob = data[fs._strip_protocol(name)]
            digest = hashlib.sha256(blob).hexdigest()
            key = _cache_key(fs, name, info)
            if key is not None and len(blob) == int(info.get("size") or 0):
                _cache_put(key, digest, len(blob))
            entries.append((rel, digest))
    return tree_digest(entries), total, len(entries)


def _batches(items: list[tuple[str, str, dict[str, Any]]]) -> Iterable[list[tuple[str, str, dict[str, Any]]]]:
    batch: list[tuple[str, str, dict[str, Any]]] = []
    size = 0
    for item in items:
        batch.append(item)
        size += int(item[2].get("size") or 0)
        if size >= _BATCH_BYTES or len(batch) >= 256:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _not_found(exc: BaseException) -> bool:
    if isinstance(exc, FileNotFoundError):
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")
    return False


def hash_remote(uri: str, storage_options: dict[str, Any] | None = None, *, dirs: bool = True) -> DataRef:
    """DataRef of a remote object or prefix, by streaming its content through fsspec.

    Args:
        uri: an fsspec URL (``s3://bucket/key``, ``gs://bucket/prefix/``, ``memory://...``).
        storage_options: fsspec options (endpoint, credentials); never recorded.
        dirs: False: a prefix is not walked (``kind="directory"``, no hash), for a caller that
            looks inside it itself.

    Returns:
        ``kind="object"`` with the object's SHA-256 and size; ``kind="directory"`` with the tree
        hash, total size and file count for a prefix; ``kind="missing"`` when nothing is there.
    """
    import fsspec

    clean = strip_credentials(uri)
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    try:
        info = fs.info(path)
    except Exception as exc:  # noqa: BLE001 - backends raise their own not-found types
        if _not_found(exc):
            return DataRef(uri=clean, kind="missing")
        raise
    if info.get("type") == "directory" and not dirs:
        return DataRef(uri=clean, kind="directory")
    if info.get("type") == "directory":
        digest, total, n = _hash_tree(fs, path)
        return DataRef(uri=clean, kind="directory", sha256=digest, size=total, n_files=n)
    return DataRef(uri=clean, kind="object", sha256=_hash_object(fs, path, info), size=int(info.get("size") or 0))


def _stamp(info: dict[str, Any]) -> tuple[Any, ...]:
    """What changes when an object is written again: its size, version tokens and times (a
    rewrite with the same bytes keeps an ETag but not a modification time)."""
    low = _lower(info)
    return (int(low.get("size") or 0),) + tuple(str(low.get(k)) for k in _STRONG_KEYS + _TIME_KEYS if low.get(k) not in (None, ""))


def remote_signature(uri: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, ...] | None:
    """A fingerprint of a remote object or prefix as it is now, asked of the backend (fsspec's
    listing cache is dropped first): ``("remote", "object", stamp)`` or ``("remote", "prefix",
    ((name, stamp), ...))``; None when nothing is there or it cannot be asked. Two of them differ
    when something wrote there in between (the remote counterpart of a local stat signature)."""
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
        try:
            fs.invalidate_cache(path)
        except Exception:  # noqa: BLE001 - a backend without a listing cache
            pass
        info = fs.info(path)
        if info.get("type") != "directory":
            return ("remote", "object", _stamp(info))
        listing = fs.find(path, detail=True, withdirs=False)
        return ("remote", "prefix", tuple(sorted((str(name), _stamp(i)) for name, i in listing.items())))
    except Exception:  # noqa: BLE001 - missing, unreachable: nothing to compare with
        return None


__all__ = ["cache_path", "clear_memory_cache", "hash_remote", "remote_signature", "version_token"]
