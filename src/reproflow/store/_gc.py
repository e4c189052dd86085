"""``reproflow gc``: remove content-addressed blobs that no record references.

Safety comes first; a blob is removed only when all of these hold:

* no record names it. References are found two ways and their union is kept: by field (any JSON
  key ``context``, ``blob`` or ``*_blob`` holding a SHA-256, in every record under ``runs/`` and
  ``index/`` and, recursively, in every JSON blob those reach: ProcessContext ->
  ``environment_blob``, ``git.diff_blob``, ``source.blob``; Environment ->
  ``distributions[].source_blob``; task records -> ``context``, ``result_blob``,
  ``inputs/outputs[].stored_blob``), and by content (any 64-hex string in those same bytes that
  names an existing blob, which also covers records that do not parse and fields added later);
* it is older than the grace period (default one hour), which protects runs in flight: a
  process writes its blobs before the records that name them;
* a second look at the records, just before deleting, still finds no reference (records
  written while gc was reading are scanned too).

Temporary files left by killed writers (``.tmp-*``) older than the grace period go as well.
"""

from __future__ import annotations

import json
import posixpath
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import errors

if TYPE_CHECKING:
    from . import Store

DEFAULT_GRACE_S = 3600.0
_HEX64 = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_JSON_BLOB_MAX = 64 << 20
_READ_BATCH = 500


@dataclass
class BlobInfo:
    digest: str
    path: str
    size: int
    mtime: float | None


@dataclass
class GcReport:
    """What one ``gc`` pass found and did."""

    url: str
    dry_run: bool
    grace_s: float
    blobs: int = 0  #: blobs in the store before gc
    referenced: int = 0  #: blobs some record references
    removed: list[str] = field(default_factory=list)  #: digests removed (or, dry run, to remove)
    bytes_freed: int = 0
    young: list[str] = field(default_factory=list)  #: unreferenced but inside the grace period
    temp_removed: list[str] = field(default_factory=list)  #: stale .tmp-* files
    missing: list[str] = field(default_factory=list)  #: referenced by a record field, not in the store

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "dry_run": self.dry_run,
            "grace_s": self.grace_s,
            "blobs": self.blobs,
            "referenced": self.referenced,
            "removed": self.removed,
            "bytes_freed": self.bytes_freed,
            "young": self.young,
            "temp_removed": self.temp_removed,
            "missing": self.missing,
        }


# ------------------------------------------------------------------------------------------------
# Finding references
# ------------------------------------------------------------------------------------------------


def _field_refs(obj: Any, out: set[str]) -> None:
    """Digests held by reference fields (``context``, ``blob``, ``*_blob``) anywhere in JSON."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, str) and (k == "context" or k == "blob" or k.endswith("_blob")):
                d = v.split(":", 1)[1] if v.startswith("sha256:") else v
                if _DIGEST.match(d):
                    out.add(d)
            else:
                _field_refs(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _field_refs(v, out)


def _scan(data: bytes, by_field: set[str], tokens: set[str]) -> None:
    tokens.update(m.decode() for m in _HEX64.findall(data))
    try:
        objs = [json.loads(data)]
    except (UnicodeDecodeError, ValueError):
        objs = []  # a batch of task records (one per line), or a corrupt record: that still
        for line in data.split(b"\n"):  # protects every digest it mentions (tokens above)
            try:
                objs.append(json.loads(line))
            except (UnicodeDecodeError, ValueError):
                continue
    for obj in objs:
        _field_refs(obj, by_field)


def record_paths(store: Store) -> list[str]:
    """Every record file: ``runs/**.json``, ``runs/*/tasks/*.jsonl`` and ``index/*.json``."""
    from . import is_record_file

    out: list[str] = []
    for top in ("runs", "index"):
        try:
            found = store.fs.find(store.path(top))
        except FileNotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001
            raise errors.StoreUnreachable.from_exc(store.display_url, exc) from exc
        out.extend(p for p in found if is_record_file(p))
    return sorted(out)


def _read_all(store: Store, paths: list[str]) -> Iterable[tuple[str, bytes]]:
    for i in range(0, len(paths), _READ_BATCH):
        chunk = paths[i : i + _READ_BATCH]
        got = store.read_many(chunk)
        for p in chunk:
            data = got.get(p)
            if data is None or isinstance(data, BaseException):
                try:
                    data = store.read_bytes(p)
                except FileNotFoundError:
                    continue  # removed meanwhile (e.g. a run deleted by hand)
            yield p, data


def list_blobs(store: Store) -> tuple[dict[str, BlobInfo], list[BlobInfo]]:
    """(blobs by digest, stray temporary files) under ``objects/sha256``."""
    try:
        found = store.fs.find(store.path("objects", "sha256"), detail=True)
    except FileNotFoundError:
        return {}, []
    except Exception as exc:  # noqa: BLE001
        raise errors.StoreUnreachable.from_exc(store.display_url, exc) from exc
    blobs: dict[str, BlobInfo] = {}
    temps: list[BlobInfo] = []
    for path, info in found.items():
        if info.get("type") == "directory":
            continue
        name = posixpath.basename(path)
        item = BlobInfo("", path, int(info.get("size") or 0), _mtime(info))
        if name.startswith(".tmp-"):
            temps.append(item)
            continue
        digest = posixpath.basename(posixpath.dirname(path)) + name
        if _DIGEST.match(digest):
            item.digest = digest
            blobs[digest] = item
    return blobs, temps


def _mtime(info: dict[str, Any]) -> float | None:
    import datetime as dt

    for k in ("mtime", "LastModified", "last_modified", "updated", "timeCreated", "created"):
        v = info.get(k)
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, dt.datetime):
            return v.timestamp()
        if isinstance(v, str):
            try:
                return dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def _references(
    store: Store, paths: list[str], existing: dict[str, BlobInfo]
) -> tuple[set[str], set[str]]:
    """(digests kept, digests named by a field) from ``paths`` and the JSON blobs they reach."""
    by_field: set[str] = set()
    tokens: set[str] = set()
    for _, data in _read_all(store, paths):
        _scan(data, by_field, tokens)
    keep = (by_field | tokens) & set(existing)
    scanned: set[str] = set()
    queue = list(keep)
    while queue:
        digest = queue.pop()
        if digest in scanned:
            continue
        scanned.add(digest)
        info = existing.get(digest)
        if info is None or info.size > _JSON_BLOB_MAX:
            continue
        try:
            data = store.read_bytes(info.path)
        except FileNotFoundError:
            continue
        if data[:1] not in (b"{", b"["):
            continue  # archives and pickles: no references inside
        before = by_field | tokens
        _scan(data, by_field, tokens)
        for d in ((by_field | tokens) - before) & set(existing):
            keep.add(d)
            queue.append(d)
    return keep, by_field


def referenced_blobs(store: Store) -> set[str]:
    """Every existing blob some record references, directly or through another blob."""
    existing, _ = list_blobs(store)
    keep, _ = _references(store, record_paths(store), existing)
    return keep


# ------------------------------------------------------------------------------------------------
# Collecting
# ------------------------------------------------------------------------------------------------


def gc(store: Store, *, dry_run: bool = False, grace_s: float = DEFAULT_GRACE_S, now: float | None = None) -> GcReport:
    """Remove unreferenced blobs older than ``grace_s`` seconds (``dry_run``: only report them)."""
    report = GcReport(url=store.display_url, dry_run=dry_run, grace_s=grace_s)
    # Blobs first, records second: a blob written after this listing is never a candidate.
    existing, temps = list_blobs(store)
    report.blobs = len(existing)
    paths = record_paths(store)
    keep, by_field = _references(store, paths, existing)
    report.referenced = len(keep)
    report.missing = sorted(by_field - set(existing))
    now = time.time() if now is None else now

    def old(item: BlobInfo) -> bool:
        return item.mtime is not None and now - item.mtime >= grace_s

    candidates = [b for d, b in sorted(existing.items()) if d not in keep]
    report.young = [b.digest for b in candidates if not old(b)]
    candidates = [b for b in candidates if old(b)]
    if candidates:
        # Records that appeared while we read: scan them and spare what they name.
        fresh = sorted(set(record_paths(store)) - set(paths))
        if fresh:
            more, _ = _references(store, fresh, existing)
            candidates = [b for b in candidates if b.digest not in more]
    report.removed = [b.digest for b in candidates]
    report.bytes_freed = sum(b.size for b in candidates)
    stale = [t for t in temps if old(t)]
    report.temp_removed = [t.path for t in stale]
    if not dry_run:
        _remove(store, [b.path for b in candidates] + [t.path for t in stale])
    return report


def _remove(store: Store, paths: list[str]) -> None:
    if not paths:
        return
    try:
        if store._local:
            import os

            for p in paths:
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
                try:
                    os.rmdir(posixpath.dirname(p))  # the two-hex-digit folder, once empty
                except OSError:
                    pass
        else:
            store.fs.rm(paths)
    except FileNotFoundError:
        pass
    except Exception as exc:  # noqa: BLE001
        raise errors.StoreUnreachable.from_exc(store.display_url, exc) from exc
    store._known_blobs.difference_update(posixpath.basename(posixpath.dirname(p)) + posixpath.basename(p) for p in paths)


__all__ = ["DEFAULT_GRACE_S", "GcReport", "gc", "list_blobs", "record_paths", "referenced_blobs"]
