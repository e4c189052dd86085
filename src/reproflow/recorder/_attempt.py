"""One attempt of one task run, recorded the same way whichever engine ran it.

:class:`_Attempt` hashes the inputs before the body and the outputs, result and error after it,
and writes one :class:`~reproflow.records.TaskRecord`. The Prefect adapter
(``reproflow.engines.prefect``), plain Python (``recorder._plain``) and the other engines' adapters
all record through it; nothing here imports an engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import decimal
import inspect
import logging
import os
import pathlib
import pickle
import stat
import tarfile
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

from .. import errors
from ._callee import Callee, _plain_params, bind_arguments, callee
from ._declare import data_uri as _uri
from ._declare import RETURN, Declaration, declare, iter_data_values
from ..capture import _locks, _reads, context_at_task_end, get_context
from ..capture._files import FILE_TIME_SLACK_NS, UNTIMED_MAX, changed_in_tree, gzip_sha256, hash_local_signed, hash_path, is_local, local_path, stat_signature, untimed_format, untimed_sha256, walk_files
from ..values._text import exception_text
from ..values._redact import remember_url_secrets
from ..values._scrub import scrub_json, scrub_mapping, scrub_text
from ..values._secret_names import is_secret_key
from ..values._urls import strip_credentials
from ._recordjson import task_record_bytes
from ._runs import env_seed, get_store, owns_run, run_began_ns, source_file, task_settings
from ..store._writer import writer
from ..values._typed import hash_mapping, stable_hash, to_typed_json
from ..values._valuehash import hash_or_reason, type_name
from ..records import DataRef, ErrorInfo, Finding, TaskRecord, utcnow
from ..store import Store, canonical_json, model_bytes
from .. import _forksafe


#: Typed JSON of a return value is kept in the record only below this size.
MAX_INLINE_JSON = 16 * 1024


def _sqlite_journals(outputs: list[DataRef]) -> list[DataRef]:
    """Outputs with sqlite's side files of a database still open when the task ended told
    apart from data: its WAL index (``X-shm``, a shared-memory index of the log) is left out,
    and its write-ahead log (``X-wal``) is recorded without a hash, saying why: the log's
    header holds random salts, so its bytes differ in every run (a replay would call the task
    "differs" for them), and until a checkpoint X's data are X and its log together, which no
    hash of either file alone compares (an empty log, checkpointed, holds nothing and is left
    out too). Only beside a database file ``X`` that is there."""
    out: list[DataRef] = []
    for ref in outputs:
        uri = ref.uri
        if ref.kind == "file" and uri.endswith(("-wal", "-shm")) and is_local(uri) and os.path.isfile(local_path(uri)[:-4]):
            if uri.endswith("-shm") or ref.size == 0:  # the index, or a log checkpointed empty: no data
                continue
            db = os.path.basename(uri[:-4])
            ref = ref.model_copy(update={
                "kind": "unhashed", "sha256": None, "size": None,
                "reason": f"sqlite's write-ahead log of {db}, a database still open when the task ended: the log's bytes "
                          f"differ in every run (random salts), and {db}'s data are {db} and its log together; close "
                          f"the connection (or run PRAGMA wal_checkpoint(TRUNCATE)) before the task returns to compare {db}"})
        out.append(ref)
    return out


def _is_stream(uri: str) -> bool:
    """Whether a local path is a named pipe, a device or a socket (see
    ``capture._files.special_file_reason``): what passes through it is no file's content, so a
    change of its times is no output."""
    if not is_local(uri):
        return False
    try:
        mode = os.stat(local_path(uri)).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _changed_ns(st: os.stat_result) -> int:
    """When a file or folder was last written: the later of its mtime (which ``os.utime``,
    tarfile and ``shutil.copy2`` set back) and its ctime (which they cannot)."""
    return max(st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class RecordOptions:
    """reproflow's own options, beside Prefect's."""

    store: str | None = None
    seed: int | None = None
    strict: bool | None = None
    store_inputs: bool | None = None
    store_results: bool = False
    check: bool = True


@dataclass(frozen=True)
class _Spec:
    fn: Callable[..., Any]
    decl: Declaration
    opts: RecordOptions
    signature: inspect.Signature
    function: str  #: module:qualname
    #: (name, default or _NOT_SET) of every parameter, in order, when all of them are plain
    #: (positional-or-keyword): :func:`bind_arguments` binds those without ``inspect``; else None
    plain_params: tuple[tuple[str, Any], ...] | None = None
    #: declared outputs an earlier run of the task in this process found to be a file: not
    #: looked up before the next run (see ``_Attempt.begin``)
    file_outputs: set[str] = field(default_factory=set, compare=False, repr=False)
    #: what ``fn`` runs when it is not a plain function (a partial, a callable object, a bound
    #: method: :mod:`._callee`), else None
    callee: Optional[Callee] = field(default=None, compare=False, repr=False)

    @property
    def code(self) -> Any:
        """The function whose code the task runs: its file, digest and static checks are the task's."""
        return self.fn if self.callee is None else self.callee.code


def task_spec(fn: Callable[..., Any], *, inputs: Iterable[str] | None = None, outputs: Iterable[str] | None = None,
              opts: RecordOptions | None = None) -> _Spec:
    """What every engine's decorator records about a task function: its declarations, options,
    signature and ``module:qualname``; the options are checked here, once, for every engine.

    Raises:
        DeclarationError: ``fn`` is not callable, or a declaration or the seed is invalid.
    """
    if not callable(fn):
        raise errors.DeclarationError(f"@repro_task needs a function, got {fn!r}")
    opts = opts or RecordOptions()
    if opts.seed is not None:
        from ._seeds import validate_seed

        validate_seed(opts.seed, "@repro_task(seed=...)")
    signature = inspect.signature(fn)
    found = None if inspect.isfunction(fn) else callee(fn)
    return _Spec(
        fn=fn,
        decl=declare(fn, inputs, outputs),
        opts=opts,
        signature=signature,
        function=found.function if found is not None else f"{getattr(fn, '__module__', '?')}:{fn.__qualname__}",
        plain_params=_plain_params(signature),
        callee=found,
    )


_findings_cache: dict[Any, list[Finding]] = {}
_findings_lock = _forksafe.lock()


def _findings_for(fn: Callable[..., Any]) -> list[Finding]:
    """Static findings for a task function, computed once per function per process."""
    key = getattr(fn, "__code__", fn)
    hit = _findings_cache.get(key)  # a dict read is atomic; the lock orders the writes
    if hit is not None:
        return hit
    from ..checks import check_function

    try:
        found = list(check_function(fn))
    except Exception as exc:  # noqa: BLE001 - recording never breaks the user's task; tried again next run
        logging.getLogger("reproflow").debug("checking %r failed: %r", fn, exc)
        return []
    with _findings_lock:
        _findings_cache[key] = found
    return found


# ----------------------------------------------------------------------------- the recorder


class _Attempt:
    """Records one attempt of one task run: inputs before the body, the rest after."""

    #: inferred folders too broad to be one value (see _broad_folder): a new set only where one is
    _broad: frozenset[str] = frozenset()

    def __init__(
        self,
        spec: _Spec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        run_id: str,
        task_run_id: str,
        attempt: int,
        task_name: str,
        task_key: str,
        upstream: dict[str, list[str]],
        engine: str,
        tags: Iterable[str] = (),
        map_index: int | None = None,
        subflow: str | None = None,
        subflow_run_id: str | None = None,
        engine_info: dict[str, Any] | None = None,
        defer_write: bool = False,
        store: Store | None = None,
    ) -> None:
        """``defer_write``: the engine waits for :func:`reproflow.store._writer.writer` before
        the run's end record (and the process does at exit), so the record may be built and
        written on the writer thread when this process owns the run and the store is not
        strict (a strict store's caller must see a failed write). ``store``: the run's store,
        where the run was opened in another than the environment names (``record(store=...)``);
        a task's own ``store=`` option still comes first."""
        self.spec = spec
        self.args, self.kwargs = args, kwargs
        self.run_id, self.task_run_id, self.attempt = run_id, task_run_id, attempt
        self.task_name, self.task_key = task_name, task_key
        self.upstream, self.engine = upstream, engine
        self.tags, self.map_index = list(tags), map_index
        self.subflow, self.subflow_run_id = subflow, subflow_run_id
        self.engine_info = dict(engine_info or {})
        self.defer_write = defer_write
        self.settings = task_settings(run_id)
        run_store = store or self.settings.store  # None: $REPROFLOW_STORE names no store (get_store says why)
        self.store: Store = run_store if spec.opts.store is None and run_store is not None else get_store(spec.opts.store)

    # ------------------------------------------------------------------ before
    def begin(self, *, watch: bool = True) -> None:
        """Hash the inputs and capture the context, before the body; then watch the body's
        opens in this context (``watch=False``: the caller calls :meth:`watch` where the body
        runs: an async task's wrapper runs ``begin`` in a worker thread, whose context the body
        never sees)."""
        spec = self.spec
        self.started_at = utcnow()
        self.began_ns = time.time_ns()
        self.t0 = time.perf_counter()
        params = bind_arguments(spec, self.args, self.kwargs)
        var_kw = spec.decl.var_kw
        if var_kw and isinstance(params.get(var_kw), dict):
            params.update(params.pop(var_kw))
        self.params = params
        self.function_file = source_file(spec.code)
        self.context_digest, context = get_context(self.store, entry_file=self.function_file)
        self.findings = _findings_for(spec.code) if spec.opts.check else []
        settings = self.settings
        strict = spec.opts.strict if spec.opts.strict is not None else settings.strict
        self.seed = spec.opts.seed if spec.opts.seed is not None else settings.seed
        self.inputs: list[DataRef] = []
        # (param, value, uri, declared, a declared local output's stat_signature before the task)
        self._pending_out: list[tuple[str, Any, str, bool, Any]] = []
        self._watch: list[tuple[str, Any, str, Any]] = []  # inferred inputs: (param, value, uri, stat)
        self._in_changed: dict[str, int] = {}  # an input file's last change, from the stat it was hashed by
        self._context = context  # its checkout's roots, for _broad_folder (asked of folders only)
        if spec.opts.seed is None and not settings.seed_ok:
            env_seed()  # $REPROFLOW_SEED is not a seed: InvalidSeed names its value (and failure() can record it)
        store_inputs = spec.opts.store_inputs if spec.opts.store_inputs is not None else settings.store_inputs
        make_dirs = settings.make_dirs
        for name, value in params.items():
            is_in, is_out = name in spec.decl.inputs, name in spec.decl.outputs
            for item in iter_data_values(value, declared=is_in or is_out):
                uri = _uri(item)
                if make_dirs:
                    _make_deferred_dir(uri, make_dirs)
                if is_out:
                    # Its state before the task (one stat, and a folder's listing): a declared
                    # output folder that tasks running at the same time fill has the files this
                    # task wrote as its outputs (see _collect_outputs). Not looked up where an
                    # earlier run of this task found a file there: a name that does not exist yet
                    # in a folder other tasks are creating files in is the costly lookup (issue 16).
                    if name in spec.file_outputs:
                        before = _NOT_LOOKED_UP
                    elif is_local(uri):
                        before = stat_signature(uri)
                    else:  # a prefix may hold objects of an earlier run: not this task's outputs
                        before = _remote_signature(uri)
                    self._pending_out.append((name, item, uri, True, before))
                    continue
                ref, sig = self._hash_signed(uri, name, declared=is_in, skip_in_flight=True,
                                             broad=None if is_in else self._broad_folder)
                if ref.kind == "unhashed" and ref.uri in self._broad:
                    self.inputs.append(ref)  # what the task read and wrote in it is found one by one
                    continue
                if ref.kind == "missing" and not is_in:
                    self._pending_out.append((name, item, uri, False, None))  # a path the task will create
                    continue
                if store_inputs and ref.kind in ("file", "directory"):
                    ref.stored_blob = self._store_copy(ref)
                self.inputs.append(ref)
                if sig is not None:
                    self._in_changed[ref.uri] = max(sig[4], sig[5])  # mtime, ctime before the task: written_in_run
                if not is_in and not (ref.kind == "unhashed" and _is_stream(uri)):  # the stat the file was hashed by is its "before"
                    if sig is None and not is_local(uri) and ref.kind in ("object", "directory"):
                        sig = _remote_signature(uri)  # was it replaced by the task? (an output then)
                    self._watch.append((name, item, uri, sig if sig is not None else stat_signature(uri)))
        if strict:
            problems = [f"{f.code} {f.message} ({f.path}:{f.line})" for f in self.findings if f.severity != "info"]
            if context.git.available and context.git.dirty:
                problems.insert(0, "the git working tree is dirty (commit or stash your changes)")
            if problems:
                exc = errors.StrictModeViolation(
                    f"strict mode stopped task {self.task_name!r} before it ran: {problems[0]}"
                    + (f" (and {len(problems) - 1} more; see `reproflow check`)" if len(problems) > 1 else "")
                )
                self.failure(exc)  # the refusal is part of the run's history too
                raise exc
        if self.seed is not None:
            from ._seeds import apply_seed

            apply_seed(self.seed)
        if watch:
            self.watch()

    def watch(self, *, steps: bool = False) -> None:
        """Attribute the files opened in the calling context to this attempt, from now on:
        reads for undeclared inputs, writes to tell its outputs from a sibling's.

        ``steps=True``: only while a :meth:`step` runs. A generator task's body runs one item at
        a time, and its consumer's code (the flow body reading the items) runs between them in
        the same context: what the consumer opens is not the task's."""
        if steps:
            self._reads, self._reads_token = _reads.register(), None
        else:
            self._reads, self._reads_token = _reads.start()
        self._reads.name = self.task_name + (f"[{self.map_index}]" if self.map_index is not None else "")

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """One step of a body watched with ``watch(steps=True)``: its opens are this attempt's."""
        reads = getattr(self, "_reads", None)
        if reads is None or getattr(self, "_reads_checked", False):
            yield
            return
        token = _reads.enter(reads)
        try:
            yield
        finally:
            _reads.stop(token)

    def unwatch(self) -> None:
        """Stop attributing opens to this attempt; called in the context that called :meth:`watch`
        (success and failure call it too, for callers that ran the body where they run)."""
        token = getattr(self, "_reads_token", None)
        if token is not None:
            _reads.stop(token)
            self._reads_token = None

    def _stop_watching(self) -> list[DataRef]:
        """Stop watching opens; the files the body read without naming them, hashed now."""
        if getattr(self, "_reads", None) is None or getattr(self, "_reads_checked", False):
            return []
        self.unwatch()
        self._reads_checked = True
        # The common case, cheaply: the body opened for reading only what it declared, spelled as
        # recorded (absolute paths). Naming the outputs and resolving paths cost more than the
        # rest of watching (issue 13: at most 2% of a 100-task run).
        declared = {r.uri for r in self.inputs}
        if all(p in declared for p in self._reads.read):
            return []
        known = [out[2] for out in self._pending_out] + [r.uri for r in self.inputs if r.uri not in self._broad]
        return self._undeclared(_reads.undeclared_reads, known, self._hash, "reads")

    def _broad_folder(self, path: str) -> str | None:
        """Why an inferred folder parameter is not one value to hash, or None (it is hashed
        whole, as any folder): the project's root passed as a base folder (``base / "data" /
        "x.csv"`` in the body) holds its git repository, virtual environments, caches and the
        store this run writes to. Hashed whole it costs seconds (43,000 files with a ``.venv``),
        changes as the run writes its records, and no restored checkout can hash the same. So it
        is recorded ``unhashed`` with this reason, and what the task read and wrote in it is
        recorded file by file (its undeclared inputs and outputs). Asked of folders only."""
        store_root = self.store.root if self.store.is_local else None
        if store_root and (store_root == path or store_root.startswith(path.rstrip("/") + "/")):
            why = "it holds the reproflow store this run writes to"
        elif path == "/" or path == os.path.expanduser("~"):
            why = "it is the file system's root or the home folder"
        elif os.path.lexists(os.path.join(path, ".git")):
            why = "it is a git checkout's root folder (with its repository, environments and caches)"
        elif any(root and root.startswith(path.rstrip("/") + "/")
                 for root in (self._context.git.root, self._context.source.root)):
            why = "it holds the project's checkout (with its repository, environments and caches)"
        else:
            return None
        self._broad = self._broad | {path}
        return (f"a folder too broad to hash as one value: {why}; the files the task read and wrote in it are "
                "recorded one by one")

    def _undeclared(self, find: Callable[..., list[str]], named: list[str], hash_one: Callable[..., DataRef],
                    what: str) -> list[DataRef]:
        """The files ``find`` gives for this attempt's watched opens (leaving out the local
        paths in ``named`` and the store), each hashed by ``hash_one`` and marked undeclared."""
        try:
            known = [local_path(u) for u in named if is_local(u)]
            exclude = [self.store.root] if self.store.is_local else []
            refs = []
            for path in find(self._reads, known, exclude=exclude):
                ref = hash_one(path, "", declared=False)
                ref.param, ref.undeclared = None, True
                refs.append(ref)
            return refs
        except Exception as exc:  # noqa: BLE001 - recording never breaks the user's task
            logging.getLogger("reproflow").debug("undeclared %s not recorded: %r", what, exc)
            return []

    def _hash(self, value: Any, param: str, *, declared: bool) -> DataRef:
        """The DataRef of one data value (a path, an fsspec URL)."""
        return self._hash_signed(_uri(value), param, declared=declared)[0]

    def _hash_signed(self, uri: str, param: str, *, declared: bool, skip_in_flight: bool = False,
                     dirs: bool = True, broad: Callable[[str], str | None] | None = None) -> tuple[DataRef, Any]:
        """The DataRef of the data value at ``uri`` (as ``data_uri`` gives it), and for a local
        file the stat signature it was hashed by (else None). ``skip_in_flight``: a folder read
        before the body leaves out the files that tasks running beside this one are writing
        (half written, they are not what this task could rely on; see ``capture._reads.in_flight``).
        ``dirs=False``: a folder or prefix is not hashed (see ``hash_path``). ``broad``: see
        ``hash_local_signed`` (local folders only)."""
        if "://" in uri:  # its credentials are secrets wherever a message quotes them, in any encoding
            remember_url_secrets(uri)
        try:
            if is_local(uri):
                skip = _reads.in_flight if skip_in_flight else None
                ref, sig = hash_local_signed(local_path(uri), skip=skip, dirs=dirs, broad=broad, param=param,
                                             declared=declared)
                if "://" not in ref.uri:
                    return ref, sig
            else:
                ref, sig = hash_path(uri, dirs=dirs), None
        except Exception as exc:  # noqa: BLE001 - recording never breaks the user's task
            # e.g. a presigned URL (s3://b/k?X-Amz-Signature=...) fsspec cannot open, a backend
            # without credentials here: recorded as unhashed, with the reason, and the task runs
            reason = scrub_text(f"{type(exc).__name__}: {exc}")[:500]
            ref, sig = DataRef(uri=strip_credentials(uri), kind="unhashed", reason=reason), None
        if "://" in ref.uri:  # a URL that could be hashed (a presigned one whose store is reachable
            ref.uri = strip_credentials(ref.uri)  # here) keeps no signature or password either
        ref.param, ref.declared = param, declared
        return ref, sig

    def _store_copy(self, ref: DataRef) -> str | None:
        if ref.kind == "file" and ref.sha256:
            with _locks.safe_to_open(ref.uri) as path:  # a database the process has open keeps its locks
                return self.store.put_blob_file(path, ref.sha256)
        if ref.kind == "directory":
            with tempfile.TemporaryDirectory() as tmp:
                tar_path = os.path.join(tmp, "dir.tar")
                _deterministic_tar(ref.uri, tar_path)
                return self.store.put_blob_file(tar_path)
        return None

    # ------------------------------------------------------------------ after
    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run a synchronous task body as this attempt: inputs before, result or error after."""
        self.begin()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self.failure(exc)
            raise
        self.success(result)
        return result

    def success(self, result: Any, *, has_result: bool = True) -> None:
        try:
            self._success(result, has_result)
        except errors.ReproflowError:
            raise  # a strict store's failed write: its caller must see it
        except Exception as exc:  # noqa: BLE001 - recording never breaks the user's task
            self._lost(exc)
        finally:
            self._done_watching()

    def _lost(self, exc: Exception) -> None:
        """A fault of the recorder's own (a bug, whatever a value did): the task's result or
        error stays the user's, and the lost record is said aloud, not in a debug log."""
        logging.getLogger("reproflow").warning(
            "reproflow could not record task %s (attempt %d): %s: %s; the task's own outcome is unchanged",
            self.task_name, self.attempt, type(exc).__name__, scrub_text(exception_text(exc))[:500], exc_info=exc)

    def _done_watching(self) -> None:
        reads = getattr(self, "_reads", None)
        if reads is not None:
            _reads.done(reads)

    def _success(self, result: Any, has_result: bool) -> None:
        self.inputs += self._stop_watching()
        self._note_written_in_run()
        outputs = self._collect_outputs(result if has_result else None)
        result_blob = None
        if has_result and self.spec.opts.store_results:
            import cloudpickle

            try:
                result_blob = self.store.put_blob(cloudpickle.dumps(result))
            except (pickle.PicklingError, TypeError, AttributeError):
                result_blob = None
        self._write("COMPLETED", result=(result,) if has_result else None, outputs=outputs, result_blob=result_blob)

    def failure(self, exc: BaseException) -> None:
        """Record the task's error; the caller raises it again (never one of the recorder's)."""
        try:
            self._failure(exc)
        except errors.ReproflowError:
            raise
        except Exception as own:  # noqa: BLE001 - recording never breaks the user's task
            self._lost(own)
        finally:
            self._done_watching()

    async def failure_async(self, exc: BaseException) -> None:
        """:meth:`failure` from an async task: off the event loop; a cancellation (a timeout,
        the flow ending) on the loop's thread, as an await inside a cancelled scope is cancelled
        again at once (anyio's cancellation holds until the scope exits), which lost the record
        of every timed-out async task."""
        if isinstance(exc, Exception):
            await asyncio.to_thread(self.failure, exc)
        else:
            self.failure(exc)

    def _failure(self, exc: BaseException) -> None:
        self.inputs += self._stop_watching()
        self._note_written_in_run()
        outputs = self._collect_outputs(None)
        self._typed_params()  # secrets found by key in the parameters are scrubbed from the error too
        error = ErrorInfo(
            type=f"{type(exc).__module__}.{type(exc).__qualname__}",
            message=scrub_text(exception_text(exc))[:2000],
            traceback=scrub_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))[-8000:],
        )
        self._write("FAILED", outputs=outputs, error=error)

    def _note_written_in_run(self) -> None:
        """Mark the input files last written after the run began and before this task did, and
        the folders holding only such files (``DataRef.written_in_run``): the flow body wrote
        them (or a task, whose output they are then too), so a replay that runs the flow again
        writes them again. "Written" is the later of mtime and ctime: a file unpacked by
        ``tarfile`` or copied by ``shutil.copy2`` carries its source's mtime, years old, but its
        ctime (which nothing can set back) is when it was made. Those times lag the clock by up
        to a tick, so a file written as the run began may carry a time just before it: the run's
        beginning is taken :data:`FILE_TIME_SLACK_NS` earlier (a file written that little before
        the run cannot be told from one written in it)."""
        began = run_began_ns(self.run_id)
        if began is None:
            return
        began -= FILE_TIME_SLACK_NS
        for ref in self.inputs:
            if ref.kind not in ("file", "directory") or not is_local(ref.uri) or not ref.sha256:
                continue
            path = local_path(ref.uri)
            try:
                if ref.kind == "file":  # the stat it was hashed by before the task, or one now
                    known = self._in_changed.get(ref.uri)
                    changed = [known if known is not None else _changed_ns(os.stat(path))]
                elif _changed_ns(os.stat(path)) < began:  # its listing is older than the run: not filled by it
                    continue
                else:  # a folder the run filled: every file in it (an empty one is recreated anyway)
                    changed = [_changed_ns(os.stat(full)) for _, full in walk_files(path)]
            except OSError:
                continue
            if changed and all(began <= m < self.began_ns for m in changed):
                ref.written_in_run = True

    def _collect_outputs(self, result: Any) -> list[DataRef]:
        returned: list[DataRef] = []
        if result is not None:
            declared = RETURN in self.spec.decl.outputs
            for item in iter_data_values(result, declared=declared):
                returned.append(self._hash_output(_uri(item), RETURN, declared=declared))
        named = {os.path.normpath(r.uri) for r in returned if is_local(r.uri)}

        def files(refs: list[DataRef]) -> list[DataRef]:  # a file in a folder and returned: the return value's
            return [r for r in refs if os.path.normpath(r.uri) not in named] if named else refs

        outputs: list[DataRef] = []
        for name, _, uri, declared, before in self._pending_out:
            looked_up = before is not _NOT_LOOKED_UP  # (neither "dir" nor "remote" below)
            if before is not None and before[0] == "dir":
                # A declared output folder that was there before the task (made by the flow, or
                # by a sibling task first): the files this task wrote into it (or removed), as
                # for a folder passed as an inferred input.
                outputs += files(self._written_into(name, uri, before, stat_signature(uri), declared=True))
                continue
            if before is not None and before[0] == "remote":  # an object or a prefix there before the task
                refs = self._remote_changes(name, uri, before, _remote_signature(uri), declared=True)
                if len(refs) == 1 and refs[0].kind == "object" and refs[0].uri == strip_credentials(uri):
                    self.spec.file_outputs.add(name)
                outputs += files(refs)
                continue
            ref = self._hash_output(uri, name, declared=declared, dirs=False)
            if declared and ref.kind in ("file", "object"):
                self.spec.file_outputs.add(name)
            elif declared and ref.kind == "directory":
                self.spec.file_outputs.discard(name)
            if ref.kind == "directory" and ref.sha256 is None:
                # A path that was missing (or a file) before the task and is a folder (or an
                # object store's prefix) now: made by this task or by one running beside it (each
                # task of a .map() or a gather that calls out_dir.mkdir(exist_ok=True)), and
                # filled by both. Each file in it is the output of the task that wrote it, as in a
                # folder that was there before; the folder as a whole would hold the siblings'
                # files too, as many as the timing let in, and a replay would find other ones.
                # A declared output not looked up before the task (an earlier run of it found a
                # file there) may have been a folder already: its files' times tell which are new.
                outputs += files(self._created_folder(name, uri, declared=declared, by_times=not looked_up))
            elif ref.kind != "missing" or declared:
                outputs.append(ref)
        for name, _, uri, before in self._watch:  # inferred inputs changed in place are outputs too
            if before is None:
                continue
            if before[0] == "remote":
                outputs += self._remote_written(name, uri, before)
                continue
            after = stat_signature(uri)
            if after == before:
                continue
            outputs += files(self._written_into(name, uri, before, after))
        reads = getattr(self, "_reads", None)
        if reads is not None and reads.logs:  # a log file a handler opened: no output unless declared
            outputs = [r for r in outputs if r.declared or r.uri not in reads.logs]
        return _sqlite_journals(outputs + returned + self._undeclared_outputs(outputs + returned))

    def _created_folder(self, name: str, uri: str, *, declared: bool = False, by_times: bool = False) -> list[DataRef]:
        """The outputs of a folder that did not exist before the task: the files this task
        wrote into it (see :meth:`_written_into`), or the folder itself, hashed, when it is
        empty (a folder the task made and left empty is still what it made); for a remote
        prefix, the objects under it (see :meth:`_remote_changes`). ``declared``: the task
        declared the path an output (each file's DataRef says so too).

        ``by_times``: whether the folder was there before the task is not known (a declared
        output not looked up): the files last changed (the later of mtime and ctime, which
        nothing sets back) before the task began are taken for its state before, so a file of
        an earlier run left in it is not this task's output. What that cannot tell: a file the
        task removed from it."""
        if not is_local(uri):
            return self._remote_changes(name, uri, None, _remote_signature(uri), declared=declared)
        after = stat_signature(uri)
        if after is None or after[0] != "dir" or not after[1]:  # empty, or no folder any more
            return [self._hash_output(uri, name, declared=declared)]
        before: tuple[Any, ...] = ("dir", ())
        if by_times:
            older = self.began_ns - FILE_TIME_SLACK_NS
            before = ("dir", tuple(e for e in after[1] if max(e[2], e[4]) < older))
        return self._written_into(name, uri, before, after, declared=declared)

    def _remote_written(self, name: str, uri: str, before: tuple[Any, ...]) -> list[DataRef]:
        """A remote object or prefix the task was passed that was there before it and was
        written while it ran (``s3://bucket/out/report.json`` from an earlier run, replaced):
        the task's output, hashed now. It is no input then: what the task read of it cannot be
        seen (no audit event tells a network read), and its state before the task is what the
        run before this one wrote, which a replay finds replaced by this run's output."""
        after = _remote_signature(uri)
        if after == before:
            return []
        clean = strip_credentials(uri)
        self.inputs = [r for r in self.inputs if not (r.param == name and r.uri == clean and not r.declared)]
        return self._remote_changes(name, uri, before, after)

    def _remote_changes(self, name: str, uri: str, before: tuple[Any, ...] | None,
                        after: tuple[Any, ...] | None, *, declared: bool = False) -> list[DataRef]:
        """The objects written under a remote prefix (or removed from it) while the task ran,
        each its own output, as the files written into a local folder are (``before``, ``after``:
        the prefix's :func:`remote_signature` before and after the task, None where nothing was
        there). Where ``after`` is no prefix (an object, or nothing now), the path itself.

        No hook sees an fsspec write, so the objects that tasks running beside this one wrote
        under the prefix meanwhile are among them. An object store shows an object only once it
        is whole, so each is recorded complete, and a replay compares it with what the replay
        wrote at that place, whichever task wrote it there. The prefix as one tree hash would
        hold as many of those as the timing let in, and a replay would find other ones."""
        if after is None or after[1] != "prefix":
            return [self._hash_output(uri, name, declared=declared)]
        import fsspec

        old = dict(before[2]) if before is not None and before[1] == "prefix" else {}
        new = dict(after[2])
        try:
            root = fsspec.core.url_to_fs(uri)[1].rstrip("/")
        except Exception:  # noqa: BLE001 - it was listed a moment ago; whatever fails, hash it whole
            return [self._hash_output(uri, name, declared=declared)]

        def url(obj: str) -> str:  # the object's URL spelled as the task's (scheme, bucket, options)
            rel = obj[len(root):].lstrip("/") if obj.startswith(root) else obj
            return uri.rstrip("/") + "/" + rel
        refs = [self._hash_output(url(obj), name, declared=declared) for obj, stamp in sorted(new.items())
                if old.get(obj) != stamp]
        refs += [DataRef(uri=strip_credentials(url(obj)), kind="missing", param=name, declared=declared)
                 for obj in sorted(old) if obj not in new]
        return refs

    def _undeclared_outputs(self, known: list[DataRef]) -> list[DataRef]:
        """The files the body only wrote, at paths it never named (a report written to a ``str``
        path, a file named by a constant): its undeclared outputs, so a replay compares them too."""
        reads = getattr(self, "_reads", None)
        if reads is None or not reads.written:
            return []
        uris = {r.uri for r in known}
        if all(p in uris for p in reads.written):  # the common case: it wrote what it named
            return []
        named = ([r.uri for r in known] + [r.uri for r in self.inputs if r.uri not in self._broad]
                 + [out[2] for out in self._pending_out])
        return self._undeclared(_reads.undeclared_writes, named, self._hash_output, "writes")

    def _written_into(self, name: str, uri: str, before: Any, after: Any, *, declared: bool = False) -> list[DataRef]:
        """What the task changed in an inferred input: the files it wrote into (or removed
        from) a folder, each its own output, so the task's verdict compares what this task
        wrote and not the whole folder, which other tasks fill too; else the path itself.

        A file that another task running beside this one opened for writing is that task's
        output, not this one's (it may even be half written now): left out. A file whose
        writer the audit hook did not see (a subprocess, a C library) counts as this task's.
        ``declared``: the folder is a declared output (each file's DataRef says so too)."""
        changed = changed_in_tree(before, after)
        if changed is None:
            return [self._hash_signed(uri, name, declared=declared)[0]]
        root = os.path.abspath(local_path(uri))
        written, removed = changed
        mine = getattr(self, "_reads", None)
        # every changed file once: (its path, whether it is gone), and who changed it
        files = {os.path.join(root, *rel.split("/")): False for rel in written}
        files.update((os.path.join(root, *rel.split("/")), True) for rel in removed)
        whose_of = {path: self._whose(path, mine) for path in files}
        unseen = [path for path, gone in files.items() if not gone and whose_of[path] is None
                  and not (mine is not None and os.path.abspath(path) in mine.written)]
        if unseen:  # no writer seen: one still holding it open (a C library, a subprocess) is not done
            from ..capture._reads import open_for_writing

            held = open_for_writing(unseen)
            for path in held:
                whose_of[path] = (
                    "it was still open for writing (in this process or a subprocess) when the task ended, by a "
                    "writer the audit hook on open cannot see (a C library, a subprocess): it may be half written, "
                    "so no hash of it is kept")
            # Held open by a process this one did not start: a task running beside this one in
            # another worker process (Dask, a process pool), whose writes this process's hook
            # cannot see. Its file, half written now: not this task's output.
            for path in open_for_writing([p for p in unseen if p not in held], others=True):
                whose_of[path] = "another"
        refs: list[DataRef] = []
        for path, gone in files.items():
            whose = whose_of[path]
            if whose == "another":
                continue
            if whose:
                refs.append(DataRef(uri=path, kind="unhashed", param=name, declared=declared, reason=whose))
            elif gone:
                refs.append(DataRef(uri=path, kind="missing", param=name, declared=declared))
            else:
                refs.append(self._hash_output(path, name, declared=declared))
        return refs

    @staticmethod
    def _whose(path: str, mine: Any) -> str | None:
        """Who changed ``path`` (a file in a folder this task was passed), by what the audit hook
        saw: None for this task; "another" for a task running beside it (a file it opened for
        writing, or one its subprocess's arguments name: its output, maybe half written now);
        else, when no writer is known and a task beside this one started a subprocess, why
        nothing can say which task wrote it. A writer nothing saw (a C library in this task)
        counts as this task's when no task beside it started a subprocess."""
        from ..capture import _reads as reads

        if reads.written_by_another(path, mine):
            return "another"
        if mine is not None and os.path.abspath(path) in mine.written:
            return None
        claimer = reads.claimed_by(path)
        if claimer is not None:
            return None if claimer is mine else "another"
        other = reads.unseen_writer_beside(path, mine)
        if other is None:
            return None
        return (f"it changed while task {other.name or '?'}, running beside this one, ran a subprocess, and no "
                "writer of it was seen (a subprocess or a C library writes where the audit hook on open cannot "
                "see): which task wrote it, and whether it was complete, is unknown, so no hash of it is kept")

    def _hash_output(self, uri: str, param: str, *, declared: bool, dirs: bool = True) -> DataRef:
        """An output's DataRef; a file whose stat changed while it was hashed is still being
        written (by a process the task did not wait for): recorded without a hash, with the reason.
        ``dirs=False``: a local folder is not hashed (see ``hash_local_signed``)."""
        ref, sig = self._hash_signed(uri, param, declared=declared, dirs=dirs)
        if ref.kind == "file" and sig is not None and stat_signature(uri) != sig:
            return DataRef(uri=ref.uri, kind="unhashed", param=param, declared=declared,
                           reason="it changed while it was hashed: still being written when the task ended (by a "
                                  "subprocess, a C library or another process the task did not wait for), so no "
                                  "hash of it is kept")
        if ref.kind == "file" and "://" not in ref.uri and (ref.size or 0) <= UNTIMED_MAX:
            # a replay tells a file that differs only in when it was compressed, or in the times
            # its format records (read again: not for a file larger than UNTIMED_MAX)
            try:
                if ref.uri[-3:].lower() == ".gz":
                    ref.gzip_sha256 = gzip_sha256(ref.uri)
                elif untimed_format(ref.uri):
                    ref.untimed_sha256 = untimed_sha256(ref.uri)
            except OSError:
                pass
        return ref

    def _typed_params(self) -> dict[str, Any]:
        """The parameters as typed JSON, secrets redacted (computed once per attempt)."""
        cached: dict[str, Any] | None = getattr(self, "_typed", None)
        if cached is None:
            cached = self._typed = typed_parameters(self.params, self.store.fingerprint)
        return cached

    def _write(self, state: str, *, result: tuple[Any] | None = None, **fields: Any) -> None:
        """Gather the record's fields and write it (``result``: ``(the returned value,)``, or None
        for an attempt with no result)."""
        ended = utcnow()
        duration = time.perf_counter() - self.t0
        try:  # the shared libraries mapped now, when the task loaded some (numpy imported inside it)
            self.context_digest = context_at_task_end(self.store, self.context_digest)
        except Exception as exc:  # noqa: BLE001 - recording never breaks the user's task
            logging.getLogger("reproflow").debug("system libraries not captured again: %r", exc)
        cache = _content_parts(self.task_run_id)
        on_writer = cache is None and self.defer_write and not self.store.strict and owns_run(self.run_id)
        # The parameters and the result are read now, on the task's thread, unless nothing can
        # change them once the task returns (numbers, strings, paths, tuples of them) and no
        # parameter's name is a secret's (its value must be known as a secret before the next
        # task's error is scrubbed): those the writer thread types and hashes (issue 16).
        later_params = on_writer and getattr(self, "_typed", None) is None and _frozen_params(self.params)
        later_result = on_writer and result is not None and _frozen(result[0])
        if not later_params:  # typed here with the hashes, unless a failure typed them already
            fields.update(parameter_fields(self.params, self.store.fingerprint, getattr(self, "_typed", None)))
        if result is not None and not later_result:
            fields.update(result_fields(result[0], self.store.fingerprint))
        values: dict[str, Any] = dict(
            run_id=self.run_id,
            task_run_id=self.task_run_id,
            attempt=self.attempt,
            task_name=self.task_name,
            task_key=self.task_key,
            function=self.spec.function,
            function_file=self.function_file,
            state=state,
            started_at=self.started_at,
            ended_at=ended,
            duration_s=duration,
            inputs=self.inputs,
            upstream=self.upstream,
            context=self.context_digest,
            seed=self.seed,
            findings=self.findings,
            tags=self.tags,
            engine=self.engine,
            map_index=self.map_index,
            subflow=self.subflow,
            subflow_run_id=self.subflow_run_id,
            engine_info=self.engine_info,
            cache=cache,
            **fields,
        )
        # A CONTENT cache key is remembered before the task returns (a later task may hit it).
        if on_writer:
            if later_params or later_result:
                values[_LATER] = (self.params if later_params else None, result if later_result else None,
                                  self.store.fingerprint)
            # built and written there, with the other records of its batch; waited for before the run's end
            writer().submit_task_record(self.store, self.run_id, _encode_task_record, values)
        else:
            self._publish(values)

    def _publish(self, values: dict[str, Any]) -> None:
        """Build the TaskRecord from what :meth:`_write` gathered and write it."""
        data = task_record_bytes(values)  # the same bytes as the validated record's, without pydantic
        if data is not None:
            self.store.write_task_bytes(values["run_id"], values["task_run_id"], values["attempt"], data)
            return
        record = TaskRecord(**values)
        if record.cache is not None:
            from ._content import remember_origin

            remember_origin(self.store, record)
        self.store.write_task(record)


#: A declared output's state before the task, when it was not looked up (see ``begin``).
_NOT_LOOKED_UP = ("not looked up",)

#: The key under which ``_Attempt._write`` leaves the writer thread what it types and hashes
#: there: ``(parameters or None, (result,) or None, the store's fingerprint)``.
_LATER = "__later__"

#: Exact types whose values nothing can change once the task returns (no mutable part).
_FROZEN_TYPES = frozenset({int, float, bool, str, bytes, complex, type(None), decimal.Decimal, uuid.UUID,
                           _dt.datetime, _dt.date, _dt.time, _dt.timedelta, pathlib.PosixPath,
                           pathlib.WindowsPath, pathlib.PurePosixPath, pathlib.PureWindowsPath})


def _frozen(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` cannot change after the task returns: a value of an immutable exact
    type, or a (small, shallow) tuple or frozenset of them."""
    t = type(value)
    if t in _FROZEN_TYPES:
        return True
    if (t is tuple or t is frozenset) and depth < 4 and len(value) <= 64:
        return all(_frozen(v, depth + 1) for v in value)
    return False


def _frozen_params(params: dict[str, Any]) -> bool:
    """Whether the parameters may be typed and hashed after the task returns: each one
    :func:`_frozen` and none under a secret's name."""
    for name, value in params.items():
        if not _frozen(value) or is_secret_key(name):
            return False
    return True


def typed_parameters(params: dict[str, Any], fingerprint: Any, hashes: dict[str, str] | None = None) -> dict[str, Any]:
    """The parameters as typed JSON, a value too large to inline replaced by its hash, secrets
    redacted (and those found by name remembered as secrets). ``hashes``: each parameter's
    stable hash as ``hash_mapping`` gave it, so that no value is hashed again for its marker (a
    large array or list was hashed two or three times a task)."""
    typed: dict[str, Any] = {}
    for k, v in params.items():
        known = hashes.get(k) if hashes is not None else None  # "unhashable:<type>" where it has none
        digest = None if known is None or known.startswith("unhashable:") else known
        enc = to_typed_json(v) if known is None else to_typed_json(v, digest=digest)
        if type(enc) in _SHORT_JSON or (type(v) in _PATH_TYPES and len(enc["v"]) <= _SHORT_PATH):
            pass  # a number, a bool, None or a path of a usual length: short, without measuring
        elif not _fits_inline(enc):
            enc = {"__rf__": "opaque", "type": type_name(type(v)), "hash": stable_hash(v) if known is None else digest,
                   "repr": "too large to inline"}
        typed[k] = enc
    return scrub_mapping(typed, fingerprint)


def parameter_fields(params: dict[str, Any], fingerprint: Any, typed: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters' record fields: their typed JSON (``typed``, when already built, else
    :func:`typed_parameters` given the hashes), each one's stable hash and the combined hash."""
    per, combined = hash_mapping(params)
    return {"parameters": typed if typed is not None else typed_parameters(params, fingerprint, per),
            "parameter_hashes": per, "parameters_hash": combined}


def result_fields(result: Any, fingerprint: Any) -> dict[str, Any]:
    """A returned value's record fields: its stable hash (or why it has none) and its typed JSON
    when small enough to inline, secrets redacted."""
    result_hash, unhashable = hash_or_reason(result)
    typed = to_typed_json(result, digest=result_hash)
    inline = scrub_json(typed, fingerprint) if _fits_inline(typed) else None
    return {"result_hash": result_hash, "result_unhashable": unhashable, "result": inline}


def _complete(values: dict[str, Any]) -> None:
    """Fill in what ``_Attempt._write`` left to the writer thread (see ``_LATER``)."""
    later = values.pop(_LATER, None)
    if later is None:
        return
    params, result, fingerprint = later
    if params is not None:
        values.update(parameter_fields(params, fingerprint))
    if result is not None:
        values.update(result_fields(result[0], fingerprint))


def _encode_task_record(values: dict[str, Any]) -> tuple[str, int, bytes]:
    """(task_run_id, attempt, record bytes) of a record with no CONTENT cache key (the ones the
    writer thread writes, see ``Attempt._write``)."""
    _complete(values)
    data = task_record_bytes(values)  # the same bytes as the validated record's, without pydantic
    if data is None:
        data = model_bytes(TaskRecord(**values))
    return values["task_run_id"], values["attempt"], data


#: typed JSON that is always far below MAX_INLINE_JSON (an int above 2**53 is a tagged dict)
_SHORT_JSON = frozenset({int, float, bool, type(None)})
#: paths whose typed JSON is ``{"__rf__": "path", "v": str}``; one this long is surely short
_PATH_TYPES = frozenset({pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath, pathlib.PureWindowsPath})
_SHORT_PATH = MAX_INLINE_JSON // 6 - 64


def _fits_inline(typed: Any) -> bool:
    """Whether typed JSON's canonical bytes are at most MAX_INLINE_JSON long. An upper bound is
    tried first, so a small value (a path, a number) is not encoded only to be measured."""
    try:
        if _json_bound(typed, MAX_INLINE_JSON) <= MAX_INLINE_JSON:
            return True
    except RecursionError:
        pass
    return len(canonical_json(typed)) <= MAX_INLINE_JSON


def _json_bound(obj: Any, limit: int) -> int:
    """An upper bound of the length of ``canonical_json(obj)``; anything above ``limit`` once
    it is known to exceed it (or for a value this bound does not know)."""
    if isinstance(obj, str):
        return 6 * len(obj) + 2  # a character is at most 6 bytes of JSON (\u001f), 4 of UTF-8
    if obj is None or isinstance(obj, bool):
        return 5
    if isinstance(obj, int):
        return obj.bit_length() // 3 + 2  # digits <= bits * log10(2) + 1, and a sign
    if isinstance(obj, float):
        return 32
    if isinstance(obj, dict):
        total = 2
        for k, v in obj.items():
            if not isinstance(k, str):
                return limit + 1
            total += 6 * len(k) + 4 + _json_bound(v, limit - total)
            if total > limit:
                return limit + 1
        return total
    if isinstance(obj, (list, tuple)):
        total = 2
        for v in obj:
            total += _json_bound(v, limit - total) + 1
            if total > limit:
                return limit + 1
        return total
    return limit + 1


def _remote_signature(uri: str) -> tuple[Any, ...] | None:
    from ..capture._remote import remote_signature

    return remote_signature(uri)


def _make_deferred_dir(uri: str, make_dirs: frozenset[str]) -> None:
    """In a replay: make an empty folder the recorded task read (``uri`` as ``data_uri`` gives
    it), if the flow has not (see ``REPLAY_MAKE_DIRS_ENV``)."""
    if "://" in uri and not uri.startswith("file://"):
        return
    path = os.path.realpath(local_path(uri))
    if path in make_dirs and not os.path.exists(path):
        os.makedirs(path, exist_ok=True)


def _deterministic_tar(src_dir: str, tar_path: str) -> None:
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(src_dir):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                if not os.path.isfile(full):
                    continue
                info = tar.gettarinfo(full, arcname=os.path.relpath(full, src_dir).replace(os.sep, "/"))
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(full, "rb") as fh:
                    tar.addfile(info, fh)


# ----------------------------------------------------------------------------- Prefect side


def _content_parts(task_run_id: str) -> Any:
    """The ``reproflow.CONTENT`` key parts of this task run, if that policy computed them."""
    import sys

    module = sys.modules.get("reproflow.recorder._content")  # loaded only when the policy is used
    return None if module is None else module.take(task_run_id)


def new_task_run_id() -> str:
    return str(uuid.uuid4())


__all__ = ["MAX_INLINE_JSON", "RecordOptions", "_Attempt", "_Spec", "new_task_run_id"]
