"""The local spool: records that could not reach their store wait here for ``reproflow sync``.

When a store write fails with :class:`~reproflow.errors.StoreUnreachable` while recording (and
strict mode is off), the record's bytes are written atomically to::

    $REPROFLOW_SPOOL_DIR/<key>/<path relative to the store root>

where ``$REPROFLOW_SPOOL_DIR`` defaults to ``~/.cache/reproflow/spool`` (beside the hash cache,
``$REPROFLOW_CACHE_DIR``) and ``<key>`` is a short hash of the store URL with credentials
stripped. ``<key>/store.json`` names the store (never a credential). :func:`sync` uploads every
spooled file with create-only semantics, so syncing twice, or syncing a record that did land
before the connection dropped, never duplicates or overwrites anything, and removes each file
once the store holds it.

An unreachable store is also remembered for a short while (``$REPROFLOW_OFFLINE_RETRY_S``,
default 30 s): later writes in that window go straight to the spool instead of paying the
backend's connection retries again, so a flow with a dead store keeps its normal pace.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..values._urls import strip_credentials
from . import _writer
from .. import _forksafe

if TYPE_CHECKING:
    from . import Store

SPOOL_ENV = "REPROFLOW_SPOOL_DIR"
OFFLINE_ENV = "REPROFLOW_OFFLINE_RETRY_S"
DEFAULT_OFFLINE_S = 30.0
_MANIFEST = "store.json"
_BIG = 64 << 20  # spooled files above this upload by streaming (put_file) instead of from memory

_offline_lock = _forksafe.lock()
_offline_until: dict[str, float] = {}


def spool_root(environ: Any = None) -> Path:
    """The spool's base folder: ``$REPROFLOW_SPOOL_DIR``, else ``<cache dir>/spool``."""
    env = os.environ if environ is None else environ
    raw = env.get(SPOOL_ENV)
    if raw:
        return Path(os.path.expanduser(raw))
    base = env.get("REPROFLOW_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "reproflow")
    return Path(base) / "spool"


def store_key(url: str) -> str:
    """The spool sub-folder name of a store: a short hash of its credential-free URL."""
    return hashlib.sha256(strip_credentials(url).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# Remembering that a store is down
# ------------------------------------------------------------------------------------------------


def _offline_window(environ: Any = None) -> float:
    env = os.environ if environ is None else environ
    try:
        return max(0.0, float(env.get(OFFLINE_ENV, DEFAULT_OFFLINE_S)))
    except ValueError:
        return DEFAULT_OFFLINE_S


def is_offline(url: str) -> bool:
    """Whether ``url`` failed recently enough that writes should go straight to the spool."""
    with _offline_lock:
        until = _offline_until.get(url)
        if until is None:
            return False
        if time.monotonic() >= until:
            del _offline_until[url]
            return False
        return True


def offline_state(url: str) -> str | None:
    """``None`` (not known to be down), ``"offline"`` (failed within the window) or
    ``"expired"`` (failed, and the window has passed: time to check it again)."""
    with _offline_lock:
        until = _offline_until.get(url)
        if until is None:
            return None
        return "expired" if time.monotonic() >= until else "offline"


def mark_offline(url: str) -> bool:
    """Remember that ``url`` is unreachable. Returns True when it was not already marked."""
    with _offline_lock:
        fresh = url not in _offline_until
        _offline_until[url] = time.monotonic() + _offline_window()
        return fresh


def mark_online(url: str) -> None:
    with _offline_lock:
        _offline_until.pop(url, None)


# ------------------------------------------------------------------------------------------------
# One store's spool folder
# ------------------------------------------------------------------------------------------------


class Spool:
    """The spool folder of one store.

    Args:
        url: the store URL (credentials are stripped before anything is written).
        root: the spool base folder; default :func:`spool_root`.
    """

    def __init__(self, url: str, root: Path | str | None = None) -> None:
        self.url = strip_credentials(url)
        self.root = Path(root) if root is not None else spool_root()
        self.dir = self.root / store_key(self.url)

    def __repr__(self) -> str:
        return f"Spool({self.url!r} at {str(self.dir)!r})"

    def _target(self, rel: str) -> Path:
        rel = rel.strip("/")
        parts = rel.split("/")
        if not rel or any(p in ("", ".", "..") for p in parts) or "\\" in rel:
            raise ValueError(f"refusing to spool an unsafe path {rel!r}")
        return self.dir.joinpath(*parts)

    def _ensure_manifest(self) -> None:
        manifest = self.dir / _MANIFEST
        if manifest.exists():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(manifest, json.dumps({"url": self.url, "created": time.time()}).encode())

    def put(self, rel: str, data: bytes) -> Path:
        """Spool ``data`` for the store path ``rel`` (atomic: the file appears whole or not)."""
        target = self._target(rel)
        self._ensure_manifest()
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(target, data)
        return target

    def put_file(self, rel: str, source: str | os.PathLike[str]) -> Path:
        """Spool a local file's content for ``rel``, streaming (for large blobs)."""
        target = self._target(rel)
        self._ensure_manifest()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        return target

    def get(self, rel: str) -> bytes | None:
        _writer.settle()  # a run this process ended is in the spool before it is read
        try:
            return self._target(rel).read_bytes()
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None

    def has(self, rel: str) -> bool:
        _writer.settle()  # a run this process ended is in the spool before it is read
        try:
            return self._target(rel).is_file()
        except ValueError:
            return False

    def names(self, rel_dir: str) -> set[str]:
        """File names spooled directly under ``rel_dir``."""
        _writer.settle()
        try:
            folder = self._target(rel_dir)
        except ValueError:
            return set()
        try:
            return {p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
        except (FileNotFoundError, NotADirectoryError):
            return set()

    def files(self) -> list[str]:
        """Every spooled path, relative to the store root, in upload order (see :func:`_order`)."""
        _writer.settle()
        if not self.dir.is_dir():
            return []
        out = []
        for path in self.dir.rglob("*"):
            if path.is_file() and not path.name.startswith(".") and path != self.dir / _MANIFEST:
                out.append(path.relative_to(self.dir).as_posix())
        return sorted(out, key=_order)

    def remove(self, rel: str) -> None:
        target = self._target(rel)
        target.unlink(missing_ok=True)
        parent = target.parent
        while parent != self.dir:  # prune empty folders up to the store's spool folder
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def cleanup(self) -> None:
        """Remove the store's spool folder once nothing is left in it."""
        if self.dir.is_dir() and not self.files():
            shutil.rmtree(self.dir, ignore_errors=True)


def _order(rel: str) -> tuple[int, str]:
    """Upload order: keys and blobs before the records that name them, end records last.

    A reader that lists the store during a sync then never sees a record whose blob is missing,
    nor an ``end.json`` (or index entry) for a run whose task records are still on the way.
    """
    name = rel.rsplit("/", 1)[-1]
    if rel.startswith("keys/"):
        rank = 0
    elif rel.startswith("objects/"):
        rank = 1
    elif "/tasks/" in rel:
        rank = 2
    elif name == "run.json":
        rank = 3
    elif name == "end.json":
        rank = 4
    elif rel.startswith("index/"):
        rank = 5
    else:
        rank = 3
    return rank, rel


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# ------------------------------------------------------------------------------------------------
# Sync
# ------------------------------------------------------------------------------------------------


@dataclass
class SyncReport:
    """What one store's sync did."""

    url: str
    spool_dir: str
    uploaded: list[str] = field(default_factory=list)  #: written to the store by this sync
    already_present: list[str] = field(default_factory=list)  #: the store had them already
    remaining: list[str] = field(default_factory=list)  #: still spooled (store unreachable)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "spool_dir": self.spool_dir,
            "uploaded": len(self.uploaded),
            "already_present": len(self.already_present),
            "remaining": len(self.remaining),
            "error": self.error,
        }


def spooled_stores(root: Path | str | None = None) -> Iterator[Spool]:
    """Every store that has a spool folder under ``root`` (default :func:`spool_root`)."""
    base = Path(root) if root is not None else spool_root()
    if not base.is_dir():
        return
    for sub in sorted(base.iterdir()):
        manifest = sub / _MANIFEST
        if not manifest.is_file():
            continue
        try:
            url = json.loads(manifest.read_text())["url"]
        except (ValueError, KeyError, OSError):
            continue
        spool = Spool(url, base)
        if spool.dir == sub:
            yield spool


def sync_store(store: Store, spool: Spool | None = None) -> SyncReport:
    """Upload one store's spooled files (create-only), removing each once the store holds it."""
    from .. import errors

    spool = spool or Spool(store.url, spool_root())
    report = SyncReport(url=store.display_url, spool_dir=str(spool.dir))
    files = spool.files()
    for i, rel in enumerate(files):
        path = store.path(*rel.split("/"))
        overwrite = rel.startswith("index/")  # index entries are summaries, rewritten by design
        try:
            local = spool._target(rel)
            if local.stat().st_size > _BIG:
                wrote = store.upload_file(path, local, create_only=not overwrite)
            else:
                wrote = store.write_bytes(path, local.read_bytes(), create_only=not overwrite)
        except errors.StoreUnreachable as exc:
            report.error = str(exc)
            report.remaining = files[i:]
            return report
        (report.uploaded if wrote else report.already_present).append(rel)
        spool.remove(rel)
    mark_online(store.display_url)
    spool.cleanup()
    return report


def sync(
    url: str | None = None,
    *,
    root: Path | str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> list[SyncReport]:
    """Upload spooled records: of the store at ``url``, or of every store with a spool.

    Args:
        url: a store URL; ``None`` syncs every store found under the spool folder.
        root: the spool base folder (default ``$REPROFLOW_SPOOL_DIR`` or ``~/.cache/reproflow/spool``).
        storage_options: fsspec options for the store (endpoint, credentials, ...).
    """
    from . import Store

    opts = storage_options or {}
    base = Path(root) if root is not None else spool_root()
    if url is not None:
        store = Store(url, **opts)
        return [sync_store(store, Spool(store.url, base))]
    return [sync_store(Store(spool.url, **opts), spool) for spool in spooled_stores(base)]


__all__ = [
    "OFFLINE_ENV",
    "SPOOL_ENV",
    "Spool",
    "SyncReport",
    "is_offline",
    "mark_offline",
    "mark_online",
    "offline_state",
    "spool_root",
    "spooled_stores",
    "store_key",
    "sync",
    "sync_store",
]
