"""The artifact store: records and content-addressed blobs over any fsspec filesystem.

Every read and write goes through one fsspec filesystem obtained from ``url_to_fs``, so a local
folder, ``memory://`` and ``s3://`` behave alike. Writes are atomic (a local file appears only
complete, via write-to-temp and rename, or a link of an unnamed temporary file where Linux has
``O_TMPFILE``; object stores publish a PUT whole) and records are
written once: one file per task attempt, so concurrent writers never rewrite a shared file.

Recording never fails the user's work because the store is down: the recording writes
(:meth:`Store.write_record_bytes`, used by ``write_run``, ``write_task``, ``write_run_end`` and
the blob writers) retry once and then keep the bytes in a local spool that ``reproflow sync``
uploads later (see ``reproflow.store._spool``). ``strict=True`` or ``REPROFLOW_STRICT=1`` re-raises
instead. While a store is offline, reads of what this process wrote fall back to the spool and a
small in-memory copy, so a run can still be closed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import posixpath
import re
import secrets
import threading
import itertools
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem
from pydantic import BaseModel, ValidationError

from . import _spool, _writer
from .. import errors
from ..values._urls import strip_credentials
from ..records import (
    SCHEMA_MAJOR,
    SCHEMA_VERSION,
    MapRecord,
    ProcessContext,
    Record,
    Run,
    RunEnd,
    RunRecord,
    RunStatus,
    RunSummary,
    TaskRecord,
)
from .. import _forksafe

M = TypeVar("M", bound=BaseModel)

_tmp_counter = itertools.count()
_tmp_token = (0, "")


def _tmp_name(prefix: str = ".tmp-") -> str:
    """A temporary file name no other writer uses: a random token per process (drawn again after
    a fork), the pid, the thread and a counter. Not ``uuid4()`` per file: reading the system's
    random source costs 0.2-1 ms per call on sandboxed kernels, as much as the write itself."""
    global _tmp_token
    pid = os.getpid()
    if _tmp_token[0] != pid:
        _tmp_token = (pid, secrets.token_hex(4))
    return f"{prefix}{_tmp_token[1]}-{pid}-{threading.get_ident()}-{next(_tmp_counter)}"


def _open_new(path: str) -> Any:
    """Open ``path`` for writing, creating its folder when missing (one call, not two, when it
    exists: the common case)."""
    try:
        return open(path, "wb")
    except FileNotFoundError:
        os.makedirs(posixpath.dirname(path), exist_ok=True)
        return open(path, "wb")

_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def _write_new(path: str, data: bytes, durable: bool) -> None:
    """Create ``path`` (a fresh temporary name) holding ``data``: one open, write and close
    (a file object adds an fstat and an isatty per file, and every call lets another task
    thread run), creating its folder when missing."""
    try:
        fd = os.open(path, _NEW_FILE_FLAGS, 0o666)
    except FileNotFoundError:
        os.makedirs(posixpath.dirname(path), exist_ok=True)
        fd = os.open(path, _NEW_FILE_FLAGS, 0o666)
    try:
        _write_all(fd, data, durable)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    os.close(fd)


def _write_all(fd: int, data: bytes, durable: bool) -> None:
    """Write all of ``data`` to ``fd`` (and fsync it when ``durable``)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    if durable:
        os.fsync(fd)


#: Linux's unnamed temporary files (``O_TMPFILE``): a record's file is written with no name and
#: then linked under its final one, create-if-absent (``linkat`` fails when the name exists): an
#: open, a write, a link and a close, against a named temporary's open, write, close, link and
#: unlink (two folder changes fewer; 20 against 25-28 µs of CPU a record on the ext4 disk here,
#: measured alone; issue 16). A crash before the link leaves no file at all. Where the
#: filesystem or the kernel lacks it (or ``/proc`` is not mounted), the named temporary as before.
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_tmpfile = {"ok": bool(_O_TMPFILE) and os.path.isdir("/proc/self/fd"), "root": -1}
_tmpfile_lock = _forksafe.lock()


def _root_fd() -> int:
    """A descriptor of ``/``, opened once per process: ``os.link`` follows the ``/proc`` link
    (``linkat`` with ``AT_SYMLINK_FOLLOW``) only when it is given a folder descriptor, and the
    source path is absolute, so the folder itself is never used."""
    with _tmpfile_lock:
        if _tmpfile["root"] < 0:
            _tmpfile["root"] = os.open("/", os.O_RDONLY | _CLOEXEC)
        return _tmpfile["root"]


def _link_new_tmpfile(path: str, data: bytes, durable: bool) -> bool | None:
    """Create ``path`` holding ``data`` through an unnamed temporary file: True when created,
    False when ``path`` exists, None when this way is not available here (the caller falls back
    to a named temporary file, and so does every later write of this process)."""
    folder = posixpath.dirname(path)
    flags = _O_TMPFILE | os.O_WRONLY | _CLOEXEC
    try:
        fd = os.open(folder, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(folder, flags, 0o666)
    except OSError:  # EOPNOTSUPP (this filesystem has none), EISDIR or EINVAL (an old kernel)
        _tmpfile["ok"] = False
        return None
    try:
        _write_all(fd, data, durable)
        try:
            os.link(f"/proc/self/fd/{fd}", path, src_dir_fd=_root_fd(), follow_symlinks=True)
        except FileExistsError:
            return False
        except OSError:
            if not os.path.isdir(folder):
                raise  # the folder went away meanwhile: an error, as with a named temporary
            _tmpfile["ok"] = False  # links through /proc/self/fd not possible here (EXDEV, EPERM)
            return None
        return True
    finally:
        os.close(fd)


#: The name ending of a batch of task records (one JSON record per line), see Store.write_task_batch.
TASK_BATCH_SUFFIX = ".jsonl"


def is_record_file(path: str) -> bool:
    """Whether a store path names a record file: ``*.json`` or a batch of task records, not a
    hidden temporary."""
    return path.endswith((".json", TASK_BATCH_SUFFIX)) and not posixpath.basename(path).startswith(".")


#: Default store location when neither an argument nor REPROFLOW_STORE says otherwise.
DEFAULT_STORE = ".reproflow"
STORE_ENV = "REPROFLOW_STORE"
STRICT_ENV = "REPROFLOW_STRICT"
DURABLE_ENV = "REPROFLOW_DURABLE"
_CHUNK = 1 << 20
#: Records and blobs up to this size that this process wrote are kept in memory (bounded) so a
#: run can be closed while its store is offline; task records only keep their names.
_RECENT_ITEM_MAX = 1 << 20
_RECENT_TOTAL_MAX = 32 << 20
_RETRY_DELAY_S = 0.5
#: On S3 a blob up to this size is written with one create-only PUT and no existence check
#: first: a blob already there fails the PUT (412) at the cost of the request the check would
#: have made, and a new one saves the HEAD and the LIST (s3fs looks for a folder of that name)
#: that the check spends on a miss. Sending this much again costs about what one round trip does.
_PUT_UNCHECKED_MAX = 1 << 20
STORE_TIMEOUT_ENV = "REPROFLOW_STORE_TIMEOUT_S"
DEFAULT_STORE_TIMEOUT_S = 30.0
_probing: set[str] = set()
_probing_lock = _forksafe.lock()


def _store_timeout() -> float:
    try:
        return max(0.1, float(os.environ.get(STORE_TIMEOUT_ENV, DEFAULT_STORE_TIMEOUT_S)))
    except ValueError:
        return DEFAULT_STORE_TIMEOUT_S
#: What reproflow itself puts at the top of a local store folder.
_STORE_TOP_NAMES = frozenset({"runs", "objects", "index", "keys", "cache", ".gitignore"})
_GITIGNORE = "# Created by reproflow: this folder is a reproflow store (records and blobs), not source.\n*\n"

log = logging.getLogger("reproflow")


def resolve_store_url(url: str | os.PathLike[str] | None = None, environ: Any = None) -> str:
    """The store URL to use: the argument, else ``$REPROFLOW_STORE``, else ``./.reproflow``."""
    env = os.environ if environ is None else environ
    raw = os.fspath(url) if url is not None else env.get(STORE_ENV) or DEFAULT_STORE
    if "://" not in raw and "::" not in raw:
        raw = os.path.abspath(os.path.expanduser(raw))
    return raw


#: The encoders of :func:`canonical_json`, built once: ``json.dumps`` with these options builds
#: one per call (``JSONEncoder(**options).encode(obj)``, the same bytes). An encoder keeps no
#: state between calls, so threads share them.
_CANONICAL = {nan: json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=nan)
              for nan in (True, False)}


def canonical_json(obj: Any, *, allow_nan: bool = True) -> bytes:
    """Deterministic JSON bytes: sorted keys, no spaces, UTF-8 (``allow_nan=False``: a non-finite
    float raises ValueError instead of becoming ``NaN``/``Infinity``).

    A lone surrogate (a file name that is not UTF-8, as Python decodes it: ``caf\\udce9.txt`` for
    the Latin-1 bytes ``caf\\xe9.txt``) has no UTF-8 encoding; it is written as JSON's escape
    for it (``\\udce9``), which is valid JSON and reads back as the same string (and
    ``os.fsencode`` gives back the name's bytes). Text that is UTF-8 gives the same bytes as ever."""
    return _CANONICAL[bool(allow_nan)].encode(obj).encode("utf-8", "backslashreplace")


def model_bytes(model: BaseModel) -> bytes:
    """Canonical JSON bytes of a record model (stable, so equal models share one blob)."""
    return canonical_json(model.model_dump(mode="json"))


class Store:
    """Records and blobs under one fsspec URL.

    Args:
        url: a local path or fsspec URL; ``None`` resolves ``$REPROFLOW_STORE`` then ``./.reproflow``.
        strict: re-raise :class:`~reproflow.errors.StoreUnreachable` from recording writes
            instead of spooling them; ``None`` reads ``$REPROFLOW_STRICT``.
        storage_options: passed to the fsspec filesystem (endpoint, credentials, ...).
            They are never written into any record.
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | None = None,
        *,
        strict: bool | None = None,
        durable: bool | None = None,
        **storage_options: Any,
    ) -> None:
        self.url = resolve_store_url(url)
        self.display_url = strip_credentials(self.url)
        self.storage_options = storage_options
        if strict is None:
            strict = os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")
        self.strict = strict
        if durable is None:
            durable = os.environ.get(DURABLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
        #: fsync each local file before it is published. Publishing by rename/link is atomic
        #: either way (a killed process never leaves a partial record); fsync adds durability
        #: across power loss at ~4 ms per record on this project's disks, so it is opt-in.
        self.durable = durable
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._recent_bytes = 0
        self._written_names: dict[str, set[str]] = {}
        #: task-run ids in each batch of task records this process wrote or read (see task_run_ids)
        self._batch_ids: dict[str, tuple[str, ...]] = {}
        self._fp_key: bytes | None = None
        try:
            self.fs, root = fsspec.core.url_to_fs(self.url, **storage_options)
        except (ImportError, ValueError) as exc:
            raise errors.StoreUnreachable(
                f"cannot open store {self.display_url!r}: {exc}; install the extra for its "
                "protocol (reproflow[s3] or reproflow[gcs])",
                url=self.display_url,
            ) from exc
        self.root = root.rstrip("/") if root not in ("/", "") else root
        self._local = isinstance(self.fs, LocalFileSystem)
        protocol = self.fs.protocol
        self._protocols = set(protocol) if isinstance(protocol, (tuple, list)) else {protocol}
        #: S3 (s3fs): PUT honours If-None-Match, and an object is read in one GET when s3fs is not
        #: asked for concurrent ranges (else it first asks the object's size: a HEAD per read).
        self._s3 = bool(self._protocols & {"s3", "s3a"})
        self._cat_options: dict[str, Any] = {"max_concurrency": 1} if self._s3 else {}
        self._known_blobs: set[str] = set()
        self._lock = _forksafe.lock()
        self._spool: _spool.Spool | None = None
        self._marked = False

    def __repr__(self) -> str:
        return f"Store({self.display_url!r})"

    @property
    def is_local(self) -> bool:
        """True for a folder on this machine's file system (``self.root`` is its path)."""
        return self._local

    def _mark_ignored(self) -> None:
        """Give a local store folder that reproflow creates (or finds empty) a ``.gitignore``
        holding ``*``, as a virtual environment does: git, and with it reproflow's own capture,
        then never lists the store's files as the user's untracked files. A folder that already
        holds anything else is left alone. Once per Store object."""
        self._marked = True
        marker = os.path.join(self.root, ".gitignore")
        try:
            if os.path.lexists(marker):
                return
            existing = set(os.listdir(self.root)) if os.path.isdir(self.root) else set()
            if existing - _STORE_TOP_NAMES:
                return
            os.makedirs(self.root, exist_ok=True)
            with open(marker, "x") as fh:
                fh.write(_GITIGNORE)
        except OSError:
            pass  # a read-only or concurrently created folder: capture excludes the store anyway

    # ---------------------------------------------------------------- paths
    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts) if self.root else posixpath.join(*parts)

    def blob_path(self, digest: str) -> str:
        if not _DIGEST.fullmatch(digest):  # a digest from a record becomes a path: hex only
            raise errors.UnsafeRecord.because(f"blob digest {digest[:80]!r} is not a SHA-256 hex digest")
        return self.path("objects", "sha256", digest[:2], digest[2:])

    def run_dir(self, run_id: str) -> str:
        return self.path("runs", _safe_id(run_id))

    # ---------------------------------------------------------------- low-level I/O
    def _guard(self, exc: BaseException) -> errors.StoreError:
        return errors.StoreUnreachable.from_exc(self.display_url, exc)

    def write_bytes(self, path: str, data: bytes, *, create_only: bool = False) -> bool:
        """Write ``data`` at ``path`` atomically. Returns False when ``create_only`` and it exists."""
        try:
            # S3 honours If-None-Match on PUT (mode="create"): one request, atomic. Elsewhere
            # check first; mode="create" still closes the race where the backend supports it.
            # Locally, os.link below is the create-if-absent check.
            if create_only and not (self._local or self._s3) and self.fs.exists(path):
                return False
            if self._local:
                if not self._marked:
                    self._mark_ignored()
                if create_only and _tmpfile["ok"]:
                    created = _link_new_tmpfile(path, data, self.durable)
                    if created is not None:
                        return created
                tmp = posixpath.join(posixpath.dirname(path), _tmp_name())
                _write_new(tmp, data, self.durable)
                if create_only:
                    try:
                        os.link(tmp, path)  # fails if it exists: create-if-absent, atomically
                    except FileExistsError:
                        return False
                    finally:
                        os.unlink(tmp)
                else:
                    os.replace(tmp, path)
            else:
                # Object stores publish a PUT whole: no reader ever sees half an object.
                self.fs.pipe_file(path, data, mode="create" if create_only else "overwrite")
            return True
        except errors.ReproflowError:
            raise
        except FileExistsError:
            if create_only:
                return False
            raise
        except FileNotFoundError as exc:
            if self._local:
                raise
            # An object store has no folders to create: a write that finds nothing means the
            # bucket (container) itself is gone, which no retry will fix.
            raise self._guard(exc) from exc
        except Exception as exc:  # noqa: BLE001 - any backend failure means "unreachable"
            raise self._guard(exc) from exc

    def read_bytes(self, path: str) -> bytes:
        _writer.settle()  # a run this process ended is complete before anything here reads it
        offline = self._offline()
        if offline:
            copy = self._offline_copy(path)
            if copy is not None:
                return copy
        try:
            return bytes(self.fs.cat_file(path, **self._cat_options))
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001
            if _is_not_found(exc):
                raise FileNotFoundError(path) from exc
            if not self.strict and not offline:
                copy = self._offline_copy(path)
                if copy is not None:
                    self._went_offline(exc)
                    return copy
            raise self._guard(exc) from exc

    def read_many(self, paths: list[str]) -> dict[str, bytes | BaseException]:
        """Read many small files at once (concurrently on object stores)."""
        _writer.settle()  # a run this process ended is complete before anything here reads it
        if not paths:
            return {}
        if self._offline():
            copies = {p: self._offline_copy(p) for p in paths}
            if all(c is not None for c in copies.values()):
                return copies  # type: ignore[return-value]
        try:
            out = self.fs.cat(paths, on_error="return", **self._cat_options)
        except Exception as exc:  # noqa: BLE001
            raise self._guard(exc) from exc
        if not isinstance(out, dict):  # a single path comes back as bytes
            out = {paths[0]: out}
        return {self.fs._strip_protocol(k) if k not in paths else k: v for k, v in out.items()}

    def ls(self, path: str) -> list[str]:
        _writer.settle()  # a run this process ended is complete before anything here reads it
        if self._offline():
            names = self._offline_names(path)
            if names:
                return sorted(names)
        try:
            return [
                posixpath.basename(p.rstrip("/"))
                for p in self.fs.ls(path, detail=False, refresh=True)
            ]
        except FileNotFoundError:
            return []
        except Exception as exc:  # noqa: BLE001
            if _is_not_found(exc):
                return []
            if not self.strict and self._offline_names(path):
                self._went_offline(exc)
                return sorted(self._offline_names(path))
            raise self._guard(exc) from exc

    def _exists(self, path: str) -> bool:
        """Whether a path exists; while offline, whether this process wrote or spooled it."""
        _writer.settle()  # a run this process ended is complete before anything here reads it
        if self._offline() and self._offline_copy(path) is not None:
            return True
        try:
            return bool(self.fs.exists(path))
        except Exception as exc:  # noqa: BLE001
            if not self.strict and self._offline_copy(path) is not None:
                self._went_offline(exc)
                return True
            raise self._guard(exc) from exc

    # ---------------------------------------------------------------- recording writes and spool
    @property
    def spool(self) -> _spool.Spool:
        """This store's local spool folder (records that could not be written yet)."""
        if self._spool is None:
            self._spool = _spool.Spool(self.url)
        return self._spool

    def relative(self, path: str) -> str:
        """A store path relative to the store root (the spool keeps that layout)."""
        if self.root and path.startswith(self.root.rstrip("/") + "/"):
            return path[len(self.root.rstrip("/")) + 1 :]
        return path.lstrip("/")

    @property
    def offline(self) -> bool:
        """Whether this process found the store unreachable and is spooling its records."""
        return self._offline()

    def _offline(self) -> bool:
        """Whether recording writes go straight to the spool. Once the offline window has passed,
        one background thread checks the store again while writes keep going to the spool, so a
        dead store never makes a flow wait again (only the first failed call costs time)."""
        if self.strict:
            return False
        state = _spool.offline_state(self.display_url)
        if state == "expired":
            self._probe_in_background()
            return True
        return state == "offline"

    def _probe_in_background(self) -> None:
        with _probing_lock:
            if self.display_url in _probing:
                return
            _probing.add(self.display_url)

        def probe() -> None:
            try:
                self._bounded(self.fs.exists, self.path("runs"))
            except Exception:  # noqa: BLE001 - still down: another window of spooling
                _spool.mark_offline(self.display_url)
            else:
                _spool.mark_online(self.display_url)
            finally:
                with _probing_lock:
                    _probing.discard(self.display_url)

        threading.Thread(target=probe, name="reproflow-store-probe", daemon=True).start()

    def _bounded(self, fn: Any, *args: Any, size: int = 0, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on a remote store, given at most ``$REPROFLOW_STORE_TIMEOUT_S``
        (plus a second per MiB of ``size``): a store that does not answer in time counts as
        unreachable, instead of holding the flow through its client's own retries and timeouts
        (botocore alone spends ~6 s retrying a refused connection). The call goes on in a daemon
        thread; a write that still lands later is harmless (create-only, and ``sync`` then finds
        it already there). Local folders are called directly."""
        if self._local:
            return fn(*args, **kwargs)
        timeout = _store_timeout() + size / (1 << 20)
        done = threading.Event()
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["value"] = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=call, name="reproflow-store-call", daemon=True).start()
        if not done.wait(timeout):
            raise errors.StoreUnreachable(
                f"store {self.display_url!r} did not answer within {timeout:.0f} s "
                f"(${STORE_TIMEOUT_ENV}); check the URL and network, or run `reproflow sync` later "
                "to upload spooled records",
                url=self.display_url,
            )
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _went_offline(self, exc: BaseException) -> None:
        if _spool.mark_offline(self.display_url):
            log.warning(
                "reproflow: store %s is unreachable (%s: %s); records are kept in %s until "
                "`reproflow sync` uploads them",
                self.display_url,
                type(exc.__cause__ or exc).__name__,
                " ".join(str(exc.__cause__ or exc).split())[:200],
                self.spool.dir,
            )

    def _remember(self, path: str, data: bytes) -> None:
        """Keep what this process wrote, for reads while the store is offline (bounded)."""
        parent, name = posixpath.split(path)
        with self._lock:
            self._written_names.setdefault(parent, set()).add(name)
            if "/tasks/" in path or len(data) > _RECENT_ITEM_MAX or path in self._recent:
                return
            self._recent[path] = data
            self._recent_bytes += len(data)
            while self._recent_bytes > _RECENT_TOTAL_MAX and self._recent:
                _, old = self._recent.popitem(last=False)
                self._recent_bytes -= len(old)

    def _offline_copy(self, path: str) -> bytes | None:
        with self._lock:
            data = self._recent.get(path)
        if data is not None:
            return data
        return self.spool.get(self.relative(path))

    def _offline_names(self, path: str) -> set[str]:
        with self._lock:
            names = set(self._written_names.get(path.rstrip("/"), ()))
        return names | self.spool.names(self.relative(path))

    def write_record_bytes(self, path: str, data: bytes, create_only: bool = True) -> bool:
        """Write a record or blob while recording: retried once, else spooled (unless strict).

        Returns what :meth:`write_bytes` returns (False: ``create_only`` and it existed); a
        spooled write returns True, since ``reproflow sync`` will write it.

        Raises:
            StoreUnreachable: in strict mode, or when even the local spool cannot be written.
        """
        if self._offline():
            return self._spool_write(path, data, None)
        last: errors.StoreUnreachable | None = None
        started = time.monotonic()
        for attempt in range(2):
            try:
                wrote = self._bounded(self.write_bytes, path, data, create_only=create_only, size=len(data))
            except errors.StoreUnreachable as exc:
                last = exc
                if self.strict:
                    raise
                if attempt == 0 and time.monotonic() - started < 1.0:
                    time.sleep(_RETRY_DELAY_S)  # a quick failure may be a blip: once more
                    continue
                break
            self._remember(path, data)
            return wrote
        assert last is not None
        self._went_offline(last)
        return self._spool_write(path, data, last)

    def _spool_write(self, path: str, data: bytes, cause: errors.StoreUnreachable | None) -> bool:
        try:
            self.spool.put(self.relative(path), data)
        except OSError as exc:
            if cause is not None:
                raise cause from exc
            raise errors.StoreUnreachable.from_exc(self.display_url, exc) from exc
        self._remember(path, data)
        return True

    def upload_file(self, path: str, local_path: str | os.PathLike[str], *, create_only: bool = True) -> bool:
        """Stream a local file to ``path`` (no spooling). False when ``create_only`` and it exists."""
        try:
            if create_only and self.fs.exists(path):
                return False
            if self._local:
                if not self._marked:
                    self._mark_ignored()
                tmp = posixpath.join(posixpath.dirname(path), _tmp_name())
                with open(local_path, "rb") as src, _open_new(tmp) as dst:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        dst.write(chunk)
                os.replace(tmp, path)
            else:
                self.fs.put_file(os.fspath(local_path), path)
        except Exception as exc:  # noqa: BLE001
            raise self._guard(exc) from exc
        return True

    def exists(self) -> bool:
        """Whether the store holds anything reproflow wrote.

        Raises:
            StoreUnreachable: the store cannot be read (network, credentials, or a local folder
                this user may not read: "permission denied", never "no store").
        """
        try:
            found = bool(self.fs.exists(self.path("runs")) or self.fs.exists(self.path("objects")))
        except Exception as exc:  # noqa: BLE001
            raise self._guard(exc) from exc
        if not found and self._local:
            for sub in ("runs", "objects"):
                try:
                    os.stat(self.path(sub))
                except PermissionError as exc:
                    raise self._guard(exc) from exc
                except OSError:
                    continue
        return found

    def require(self) -> Store:
        """Raise :class:`StoreNotFound` unless the store holds records."""
        if not self.exists():
            raise errors.StoreNotFound.at(self.display_url)
        return self

    # ---------------------------------------------------------------- blobs
    def has_blob(self, digest: str) -> bool:
        if digest in self._known_blobs:
            return True
        path = self.blob_path(digest)  # a digest that is no digest is refused, never "the store is offline"
        if self._offline():
            return False
        try:
            found = bool(self._bounded(self.fs.exists, path))
        except Exception as exc:  # noqa: BLE001
            if not self.strict:
                self._went_offline(exc)
                return False  # the caller's write will be spooled
            raise self._guard(exc) from exc
        if found:
            self._known_blobs.add(digest)
        return found

    def put_blob(self, data: bytes) -> str:
        """Store bytes by their SHA-256; a blob already there costs one existence check (on S3,
        up to ``_PUT_UNCHECKED_MAX``, one create-only PUT that it fails)."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if (self._s3 and len(data) <= _PUT_UNCHECKED_MAX and digest not in self._known_blobs) or not self.has_blob(digest):
            self.write_record_bytes(path, data, create_only=True)
            self._known_blobs.add(digest)
        elif len(data) <= _RECENT_ITEM_MAX:
            self._remember(path, data)
        return digest

    def put_blob_file(self, local_path: str | os.PathLike[str], digest: str | None = None) -> str:
        """Store a local file as a blob, streaming; ``digest`` skips re-hashing when known."""
        if digest is None:
            h = hashlib.sha256()
            with open(local_path, "rb") as fh:
                for chunk in iter(lambda: fh.read(_CHUNK), b""):
                    h.update(chunk)
            digest = h.hexdigest()
        if self.has_blob(digest):
            return digest
        target = self.blob_path(digest)
        if not self._offline():
            try:
                self.upload_file(target, local_path, create_only=False)
            except errors.StoreUnreachable as exc:
                if self.strict:
                    raise
                self._went_offline(exc)
            else:
                self._known_blobs.add(digest)
                return digest
        try:
            self.spool.put_file(self.relative(target), local_path)
        except OSError as exc:
            raise errors.StoreUnreachable.from_exc(self.display_url, exc) from exc
        self._known_blobs.add(digest)
        return digest

    def get_blob(self, digest: str, *, verify: bool = True) -> bytes:
        """Read a blob; with ``verify`` its content must still hash to its name."""
        try:
            data = self.read_bytes(self.blob_path(digest))
        except FileNotFoundError:
            raise errors.BlobError(
                f"blob sha256:{digest} is missing from {self.display_url!r}; the store is "
                "incomplete (copy the whole store, objects/ included)",
                digest=digest,
            ) from None
        if verify:
            actual = hashlib.sha256(data).hexdigest()
            if actual != digest:
                raise errors.TamperedBlob.for_digest(digest, actual, self.display_url)
        return data

    def get_blob_to_file(self, digest: str, local_path: str | os.PathLike[str]) -> None:
        """Copy a blob to a local file, verifying its hash while streaming."""
        h = hashlib.sha256()
        tmp = f"{os.fspath(local_path)}{_tmp_name('.part-')}"
        try:
            with self.fs.open(self.blob_path(digest), "rb", block_size=8 * _CHUNK) as src, open(
                tmp, "wb"
            ) as dst:
                for chunk in iter(lambda: src.read(8 * _CHUNK), b""):
                    h.update(chunk)
                    dst.write(chunk)
        except FileNotFoundError:
            raise errors.BlobError(
                f"blob sha256:{digest} is missing from {self.display_url!r}", digest=digest
            ) from None
        if h.hexdigest() != digest:
            os.unlink(tmp)
            raise errors.TamperedBlob.for_digest(digest, h.hexdigest(), self.display_url)
        os.replace(tmp, local_path)

    def put_model_blob(self, model: BaseModel) -> str:
        return self.put_blob(model_bytes(model))

    def get_model_blob(self, digest: str, cls: type[M]) -> M:
        data = self.get_blob(digest)
        return parse_record(data, cls, f"{self.display_url}/objects/sha256/{digest[:2]}/{digest[2:]}")

    # ---------------------------------------------------------------- keys
    def fingerprint_key(self) -> bytes:
        """The per-store HMAC key for fingerprints of redacted values (created on first use)."""
        if self._fp_key is not None:
            return self._fp_key
        path = self.path("keys", "fingerprint.key")
        try:
            key = self._bounded(self.read_bytes, path)
        except FileNotFoundError:
            self.write_record_bytes(path, secrets.token_hex(32).encode(), create_only=True)
            key = self.read_bytes(path)
        except errors.StoreUnreachable as exc:
            if self.strict:
                raise
            # Offline before the key was ever read: use (or create) a spooled key. Fingerprints
            # taken now are comparable with each other, not with those under the store's key.
            # The store just failed: the key goes straight to the spool, as what follows will.
            self._went_offline(exc)
            self.write_record_bytes(path, secrets.token_hex(32).encode(), create_only=True)
            key = self.spool.get(self.relative(path)) or self.read_bytes(path)
        self._fp_key = bytes.fromhex(key.decode().strip())
        return self._fp_key

    def fingerprint(self, value: str) -> str:
        return "hmac-sha256:" + hmac.new(self.fingerprint_key(), value.encode(), "sha256").hexdigest()[:16]

    # ---------------------------------------------------------------- records
    def write_run(self, record: RunRecord) -> bool:
        """Write ``run.json`` once; a second writer for the same run is a no-op (returns False)."""
        return self.write_record_bytes(
            posixpath.join(self.run_dir(record.run_id), "run.json"), model_bytes(record), create_only=True
        )

    def write_run_end(self, end: RunEnd, summary: RunSummary | None = None) -> bool:
        wrote = self.write_record_bytes(
            posixpath.join(self.run_dir(end.run_id), "end.json"), model_bytes(end), create_only=True
        )
        if summary is not None:
            self.write_record_bytes(
                self.path("index", f"{_safe_id(end.run_id)}.json"), model_bytes(summary), create_only=False
            )
        return wrote

    def task_path(self, record: TaskRecord) -> str:
        return self._task_path(record.run_id, record.task_run_id, record.attempt)

    def _task_path(self, run_id: str, task_run_id: str, attempt: int) -> str:
        return posixpath.join(self.run_dir(run_id), "tasks", f"{_safe_id(task_run_id)}.{attempt}.json")

    def write_task(self, record: TaskRecord) -> None:
        self.write_record_bytes(self.task_path(record), model_bytes(record), create_only=True)

    def write_task_bytes(self, run_id: str, task_run_id: str, attempt: int, data: bytes) -> None:
        """:meth:`write_task` of a record already encoded: ``data`` must be ``model_bytes`` of a
        valid TaskRecord with these ids (the recorder builds it without pydantic, see
        ``reproflow.recorder._recordjson``)."""
        self.write_record_bytes(self._task_path(run_id, task_run_id, attempt), data, create_only=True)

    def write_task_batch(self, run_id: str, items: list[tuple[str, int, bytes]]) -> None:
        """Write several task records of one run (``(task_run_id, attempt, data)``, each ``data``
        as :meth:`write_task_bytes` takes it) in one file: ``runs/<id>/tasks/<batch>.jsonl``, one
        record per line, created once and atomically like every record file. One record alone is
        written as :meth:`write_task_bytes` does. A reader takes the first record of an attempt it
        meets, ``.json`` files first (see :meth:`iter_tasks`)."""
        if not items:
            return
        _safe_id(run_id)
        if len(items) == 1 or any(b"\n" in data for _, _, data in items):  # canonical JSON has none
            for task_run_id, attempt, data in items:
                self.write_task_bytes(run_id, task_run_id, attempt, data)
            return
        for task_run_id, _, _ in items:
            _safe_id(task_run_id)
        path = posixpath.join(self.run_dir(run_id), "tasks", f"batch-{secrets.token_hex(16)}{TASK_BATCH_SUFFIX}")
        self.write_record_bytes(path, b"\n".join(data for _, _, data in items) + b"\n", create_only=True)
        with self._lock:
            self._batch_ids[path] = tuple(task_run_id for task_run_id, _, _ in items)

    def write_map(self, record: MapRecord) -> None:
        """Write one ``map`` call's ordered task-run ids (``runs/<id>/maps/<map_id>.json``)."""
        path = posixpath.join(self.run_dir(record.run_id), "maps", f"{_safe_id(record.map_id)}.json")
        self.write_record_bytes(path, model_bytes(record), create_only=True)

    def map_indexes(self, run_id: str) -> dict[str, int]:
        """task_run_id -> its index in the ``map`` call that created it."""
        mdir = posixpath.join(self.run_dir(run_id), "maps")
        paths = [posixpath.join(mdir, n) for n in sorted(self.ls(mdir)) if n.endswith(".json") and not n.startswith(".")]
        out: dict[str, int] = {}
        for p, data in self.read_many(paths).items():
            if isinstance(data, BaseException):
                raise self._guard(data)
            for i, trid in enumerate(parse_record(data, MapRecord, p).task_run_ids):
                out[trid] = i
        return out

    def run_ids(self) -> list[str]:
        return [n for n in self.ls(self.path("runs")) if not n.startswith(".")]

    def resolve_run_id(self, run_id: str) -> str:
        """Accept a full run id, a unique prefix of one (like git), or ``latest``.

        ``latest`` (also ``last``, ``@``) is the newest run of your own, not a replay or probe of
        one: after ``reproflow replay latest``, ``reproflow report latest`` still means the run
        you recorded (the replay prints its own id). A store that holds only replays gives the
        newest of them.
        """
        run_id = run_id.strip()
        if run_id in ("latest", "last", "@"):
            runs = self.list_runs()
            if not runs:
                raise errors.RunNotFound(
                    f"no runs in store {self.display_url!r} yet: run a flow with @repro_task first",
                    run_id=run_id,
                    url=self.display_url,
                )
            own = [r for r in runs if not r.replay_of]
            return (own or runs)[0].run_id
        _safe_id(run_id)
        if self._exists(posixpath.join(self.run_dir(run_id), "run.json")):
            return run_id
        self.require()
        matches = [r for r in self.run_ids() if r.startswith(run_id)]  # any unique prefix, like git
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise errors.RunNotFound(
                f"run id prefix {run_id!r} is ambiguous ({len(matches)} runs match); "
                "give more characters",
                run_id=run_id,
                url=self.display_url,
            )
        raise errors.RunNotFound.for_id(run_id, self.display_url)

    def _run_record(self, run_id: str) -> RunRecord:
        """``runs/<run_id>/run.json``, validated, and refused when it names another run (a
        record copied or crafted into another run's folder must not pass as that run)."""
        path = posixpath.join(self.run_dir(run_id), "run.json")
        record = parse_record(self.read_bytes(path), RunRecord, path)
        if record.run_id != run_id:
            raise errors.UnsafeRecord.because(f"{path} names run {record.run_id!r}, not the run of its folder",
                                              path=path)
        return record

    def load_run_record(self, run_id: str) -> RunRecord:
        return self._run_record(self.resolve_run_id(run_id))

    def load_run(self, run_id: str, *, with_context: bool = True) -> Run:
        """Load a run with its end record, every task attempt and its process context."""
        run_id = self.resolve_run_id(run_id)
        rdir = self.run_dir(run_id)
        record = self._run_record(run_id)
        end: RunEnd | None = None
        try:
            end = parse_record(self.read_bytes(posixpath.join(rdir, "end.json")), RunEnd, posixpath.join(rdir, "end.json"))
        except FileNotFoundError:
            end = None
        tasks = list(self.iter_tasks(run_id))
        indexes = self.map_indexes(run_id) if tasks else {}
        for t in tasks:
            if t.map_index is None and t.task_run_id in indexes:
                t.map_index = indexes[t.task_run_id]
        context = self.get_model_blob(record.context, ProcessContext) if with_context else None
        run = Run(record=record, end=end, tasks=tasks, context=context)
        if end is None:
            run.unended_status, run.status_reason = self._unended_status(record)
        return run

    def _unended_status(self, record: RunRecord) -> tuple[RunStatus, str | None]:
        """RUNNING, or CRASHED with the reason, for a run with no end record."""
        from ._liveness import unended_status

        return unended_status(self, record)

    def iter_tasks(self, run_id: str) -> Iterator[TaskRecord]:
        """Every task attempt of a run, in the order they started.

        Records come from ``tasks/<task_run_id>.<attempt>.json`` (one each) and from
        ``tasks/*.jsonl`` batches (one per line). A record that names another run is refused (a
        record copied into this run's folder must not pass as this run's); of two records of one
        attempt the first met counts, ``.json`` files (each created once) before batches.
        """
        records = []
        seen: set[tuple[str, int]] = set()
        for path, line, data in self._task_record_bytes(run_id):
            where = path if line is None else f"{path} line {line}"
            record = parse_record(data, TaskRecord, where)
            if record.run_id != run_id:
                raise errors.UnsafeRecord.because(f"{where} names run {record.run_id!r}, not the run of its folder",
                                                  path=path)
            key = (record.task_run_id, record.attempt)
            if key not in seen:
                seen.add(key)
                records.append(record)
        records.sort(key=lambda t: (t.started_at, t.task_run_id, t.attempt))
        yield from records

    def _task_record_bytes(self, run_id: str) -> Iterator[tuple[str, int | None, bytes]]:
        """(path, line number or None, bytes) of every task record of a run, unvalidated:
        ``.json`` files first, then ``.jsonl`` batches, each group in name order."""
        tdir = posixpath.join(self.run_dir(run_id), "tasks")
        names = [n for n in self.ls(tdir) if is_record_file(n)]
        names.sort(key=lambda n: (n.endswith(TASK_BATCH_SUFFIX), n))
        return self._records_in([posixpath.join(tdir, n) for n in names])

    def _records_in(self, paths: list[str]) -> Iterator[tuple[str, int | None, bytes]]:
        """(path, line number or None, bytes) of the records in these task record files, in order:
        a ``.json`` file is one record, a batch one per line."""
        contents = self.read_many(paths) if paths else {}
        for p in paths:
            data = contents.get(p)
            if data is None:
                data = self.read_bytes(p)
            if isinstance(data, BaseException):
                raise self._guard(data)
            if not p.endswith(TASK_BATCH_SUFFIX):
                yield p, None, data
                continue
            for i, line in enumerate(data.split(b"\n"), 1):
                if line.strip():
                    yield p, i, line

    def task_run_ids(self, run_id: str) -> set[str]:
        """The task runs that have a record in a run (as ``RunEnd.n_tasks`` counts them): names
        of ``.json`` records, ids inside batches (their lines are not validated here). A batch
        is read once per process: it never changes once it exists, and one this process wrote is
        never read (a run's end is written while its store is offline too)."""
        tdir = posixpath.join(self.run_dir(run_id), "tasks")
        names = [n for n in self.ls(tdir) if not n.startswith(".")]
        out = {n.rsplit(".", 2)[0] for n in names if n.endswith(".json")}
        with self._lock:
            batches = [posixpath.join(tdir, n) for n in names if n.endswith(TASK_BATCH_SUFFIX)]
            unread = [p for p in batches if p not in self._batch_ids]
        found: dict[str, list[str]] = {p: [] for p in unread}
        for path, _, line in self._records_in(unread):
            try:
                obj = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(obj, dict) and isinstance(obj.get("task_run_id"), str):
                found[path].append(obj["task_run_id"])
        with self._lock:
            self._batch_ids.update((p, tuple(ids)) for p, ids in found.items())
            for p in batches:
                out.update(self._batch_ids[p])
        return out

    def list_runs(self, *, problems: list[str] | None = None) -> list[RunSummary]:
        """Every run, newest first, from the index (one small read per run).

        A run whose records cannot be read (corrupt, a newer schema, naming another run) is left
        out, not fatal to the listing: its one-line reason goes to ``problems`` when given (the
        CLI prints them), else to the ``reproflow`` logger.
        """
        self.require()
        ids = self.run_ids()
        index_dir = self.path("index")
        indexed = {n[:-5] for n in self.ls(index_dir) if n.endswith(".json")}
        summaries: list[RunSummary] = []
        idx_paths = {posixpath.join(index_dir, f"{r}.json"): r for r in ids if r in indexed}
        for p, data in self.read_many(list(idx_paths)).items():
            if isinstance(data, BaseException):
                continue
            try:
                summary = parse_record(data, RunSummary, p)
            except errors.RecordError:
                continue  # rebuilt from the run's own records below
            if summary.run_id == idx_paths[p]:
                summaries.append(summary)
        have = {s.run_id for s in summaries}
        for run_id in ids:
            if run_id in have:
                continue
            try:
                summaries.append(self.summarize(run_id))
            except FileNotFoundError:
                continue  # a folder without run.json: a run whose start record never landed
            except errors.RecordError as exc:
                if problems is not None:
                    problems.append(str(exc))
                else:
                    logging.getLogger("reproflow").warning("%s", exc)
        summaries.sort(key=lambda s: s.started_at, reverse=True)
        return summaries

    def summarize(self, run_id: str) -> RunSummary:
        """Build a run's index entry from its records (for runs still going or crashed)."""
        rdir = self.run_dir(run_id)
        record = self._run_record(run_id)
        end = None
        try:
            end = parse_record(self.read_bytes(posixpath.join(rdir, "end.json")), RunEnd, posixpath.join(rdir, "end.json"))
        except FileNotFoundError:
            pass
        dirty = commit = None
        try:
            ctx = self.get_model_blob(record.context, ProcessContext)
            dirty, commit = (ctx.git.dirty, ctx.git.commit) if ctx.git.available else (None, None)
        except errors.ReproflowError:
            pass
        status, reason = (end.status, None) if end else self._unended_status(record)
        return RunSummary(
            run_id=record.run_id,
            flow_name=record.flow_name,
            started_at=record.started_at,
            ended_at=end.ended_at if end else None,
            status=status,
            status_reason=reason,
            dirty=dirty,
            commit=commit,
            n_tasks=end.n_tasks if end else None,
            replay_of=record.replay_of,
        )

    def iter_all_blob_refs(self) -> Iterable[str]:
        """Every blob digest the records reference (for gc); provided by reproflow.store._gc."""
        from ._gc import referenced_blobs

        return referenced_blobs(self)


def parse_record(data: bytes, cls: type[M], path: str) -> M:
    """Validate record bytes: JSON, a readable schema version, then the model."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.CorruptRecord.at(path, f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise errors.CorruptRecord.at(path, "expected a JSON object")
    if issubclass(cls, Record):
        version = obj.get("schema_version")
        if not isinstance(version, str) or not version.split(".")[0].isdigit():
            raise errors.CorruptRecord.at(path, f"missing or invalid schema_version {version!r}")
        if int(version.split(".")[0]) > SCHEMA_MAJOR:
            raise errors.NewerSchema.at(path, version, SCHEMA_VERSION)
    try:
        return cls.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise errors.CorruptRecord.at(path, f"{where}: {first['msg']}") from None


_DIGEST = re.compile(r"[0-9a-f]{64}")


def _safe_id(run_id: str) -> str:
    """Run and task-run ids become path segments: refuse anything that could escape."""
    if not run_id or "/" in run_id or "\\" in run_id or run_id in (".", "..") or "\x00" in run_id:
        raise errors.RunNotFound(
            f"invalid run id {run_id!r}: ids are UUIDs or their prefixes",
            run_id=run_id,
            url="",
        )
    return run_id


def _is_not_found(exc: BaseException) -> bool:
    if isinstance(exc, FileNotFoundError):
        return True
    code = getattr(exc, "response", {}) or {}
    if isinstance(code, dict):
        err = code.get("Error", {}).get("Code")
        return err in ("404", "NoSuchKey", "NotFound")
    return False


__all__ = [
    "DEFAULT_STORE",
    "STORE_ENV",
    "Store",
    "TASK_BATCH_SUFFIX",
    "canonical_json",
    "is_record_file",
    "model_bytes",
    "parse_record",
    "resolve_store_url",
]
