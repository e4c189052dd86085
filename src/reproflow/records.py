"""The one versioned schema of every record reproflow writes.

Capture returns these models, the store writes their JSON, and replay, diff, export and report
read them back. ``schema_version`` is ``MAJOR.MINOR``: readers accept records of the same major
version (unknown fields from a newer minor are ignored, ``extra="ignore"``) and refuse a newer
major version with :class:`reproflow.errors.NewerSchema`.

Layout of a store (see ``docs/record-format.md``)::

    runs/<run_id>/run.json                     RunRecord, written once when the run starts
    runs/<run_id>/end.json                     RunEnd, written once when the run ends
    runs/<run_id>/tasks/<task_run_id>.<attempt>.json   TaskRecord, one file per attempt, or
    runs/<run_id>/tasks/batch-<random>.jsonl           TaskRecords, one per line (since 2.0)
    objects/sha256/<ab>/<rest>                 content-addressed blobs (ProcessContext JSON,
                                               Environment JSON, git diff, source archives,
                                               stored input copies)
    index/<run_id>.json                        RunSummary, written with end.json
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

#: The schema this reproflow writes. Bump MINOR for added optional fields, MAJOR for anything
#: an older reader would misread.
#: 2.0: task records may come in batches (tasks/*.jsonl), which a 1.x reader would not see.
#: 2.1: DataRef.gzip_sha256.
#: 2.2: DataRef.untimed_sha256.
#: 2.3: typed JSON objects of kind "state" (the class under "class": a 2.2 reader calls them opaque).
SCHEMA_VERSION = "2.3"
SCHEMA_MAJOR = 2


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


class _Model(BaseModel):
    """Shared config for every record model.

    ``extra="ignore"`` lets an older reader load a record from a newer *minor* version: new
    optional fields are dropped, never an error. ``populate_by_name`` keeps aliases usable.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True, validate_default=False)


class Record(_Model):
    """A top-level record: carries the schema version it was written with."""

    schema_version: str = SCHEMA_VERSION


# --------------------------------------------------------------------------------------------
# Data references and hashed values
# --------------------------------------------------------------------------------------------


#: A directory's file names are kept in its DataRef up to this many files.
MAX_DIR_ENTRIES = 256


class DataRef(_Model):
    """A file, directory or object read or written by a task, identified by content."""

    uri: str  #: absolute local path or fsspec URL, credentials stripped
    kind: Literal["file", "directory", "object", "missing", "unhashed"] = "file"
    sha256: Optional[str] = None  #: hex digest; for a directory, the tree hash
    size: Optional[int] = None  #: bytes; for a directory, the sum over its files
    n_files: Optional[int] = None  #: for a directory
    #: for a directory of at most MAX_DIR_ENTRIES files: their sorted relative names (what it held
    #: when hashed; replay tells a folder the run filled from one it was given)
    entries: Optional[list[str]] = None
    param: Optional[str] = None  #: the parameter it came through, or "return"
    declared: bool = False  #: named in inputs=/outputs= or Annotated, rather than inferred
    stored_blob: Optional[str] = None  #: sha256 of a stored copy (tar for directories)
    reason: Optional[str] = None  #: why it was not hashed (kind "unhashed"), secrets scrubbed
    #: an input the task opened for reading without naming it (seen by reproflow's audit hook;
    #: schema 1.3): replay verifies it like any input; declare it to keep the point. On an output
    #: (schema 1.5): a file the task only wrote, at a path it never named; replay compares it
    undeclared: Optional[bool] = None
    #: an input file last written during the run, before the task started, by no task of the run
    #: (the flow body, say), or a folder of only such files (schema 1.5): a replay that runs the
    #: flow again does not check it before the run, since the run writes it again
    written_in_run: Optional[bool] = None
    #: for an output file named ``*.gz`` in gzip format (schema 2.1): the sha256 of its bytes with
    #: the header's time stamp (MTIME, when it was compressed) set to zero. A replay tells a file
    #: whose compressed data is the same from one whose content differs
    gzip_sha256: Optional[str] = None
    #: for an output file whose format records when it was written (schema 2.2), named as one:
    #: a zip archive (``*.zip``, numpy's ``*.npz``: each member's modification time), a PDF
    #: (``*.pdf``: CreationDate, ModDate and their XMP twins), an SVG (``*.svg``: ``dc:date``):
    #: the sha256 of its bytes with those times overwritten by zeros. A replay tells a file
    #: that differs in them alone from one whose content differs. None where it holds no time,
    #: and for a file over 256 MiB (not read a second time)
    untimed_sha256: Optional[str] = None


class ErrorInfo(_Model):
    type: str  #: qualified exception class name
    message: str
    traceback: Optional[str] = None


class Finding(_Model):
    """One result of a reproducibility check (static analysis or runtime)."""

    code: str  #: stable rule code, e.g. "RPF001"
    message: str
    path: Optional[str] = None
    line: Optional[int] = None
    col: Optional[int] = None
    severity: Literal["error", "warning", "info"] = "warning"
    fix: Optional[str] = None


# --------------------------------------------------------------------------------------------
# Once-per-process capture
# --------------------------------------------------------------------------------------------


class DirectUrl(_Model):
    """PEP 610 ``direct_url.json`` of a distribution, credentials stripped."""

    url: str
    kind: Optional[Literal["dir", "vcs", "archive"]] = None  #: which PEP 610 *_info it had
    editable: bool = False
    vcs: Optional[str] = None
    commit_id: Optional[str] = None
    requested_revision: Optional[str] = None
    archive_hash: Optional[str] = None  #: "sha256=<hex>" where recorded


class Distribution(_Model):
    name: str  #: as in METADATA
    version: str
    direct_url: Optional[DirectUrl] = None
    installer: Optional[str] = None  #: content of INSTALLER (pip, uv, ...)
    requires: list[str] = Field(default_factory=list)
    license: Optional[str] = None  #: License-Expression, License or classifier-derived
    license_classifiers: list[str] = Field(default_factory=list)
    summary: Optional[str] = None
    source_blob: Optional[str] = None  #: sha256 of a stored source archive (local/editable)
    #: sha256 over the files its RECORD lists (capture.environment.installed_files_digest), for
    #: a non-editable install from a file, folder or VCS URL: part of the environment identity
    record_hashes: Optional[str] = None


class PythonInfo(_Model):
    implementation: str  #: "CPython"
    version: str  #: "3.11.7"
    executable: str
    prefix: str
    base_prefix: str
    compiler: Optional[str] = None
    build: Optional[str] = None


class PlatformInfo(_Model):
    system: str  #: "Linux"
    release: str
    machine: str  #: "x86_64"
    libc: Optional[str] = None  #: "glibc 2.36"
    distro: Optional[str] = None  #: PRETTY_NAME of /etc/os-release
    distro_id: Optional[str] = None  #: "debian"
    distro_version: Optional[str] = None  #: "12"
    hostname: Optional[str] = None


class EnvVar(_Model):
    value: Optional[str] = None  #: None when redacted
    redacted: bool = False
    reason: Optional[str] = None  #: why it was redacted ("name", or the detector's name)
    fingerprint: Optional[str] = None  #: HMAC-SHA256 (keyed per store) of a redacted value


class Environment(Record):
    """Everything installed and configured in the Python process. Stored as a blob."""

    python: PythonInfo
    platform: PlatformInfo
    distributions: list[Distribution] = Field(default_factory=list)
    env_vars: dict[str, EnvVar] = Field(default_factory=dict)
    #: pip/uv indexes, credentials stripped: the default one first (PyPI unless `index-url` /
    #: `default-index` replaced it or `no-index` dropped it), then the extra ones; empty: PyPI alone
    index_urls: list[str] = Field(default_factory=list)
    find_links: list[str] = Field(default_factory=list)  #: pip/uv find-links locations, stripped
    sys_path: list[str] = Field(default_factory=list)


class CPUInfo(_Model):
    model: Optional[str] = None
    vendor: Optional[str] = None
    arch: Optional[str] = None
    physical_cores: Optional[int] = None
    logical_cores: Optional[int] = None
    flags: list[str] = Field(default_factory=list)  #: numerics-relevant flags only
    source: str = "py-cpuinfo"


class DiskInfo(_Model):
    mountpoint: str
    fstype: Optional[str] = None
    total_bytes: Optional[int] = None


class GPUInfo(_Model):
    index: int
    name: str
    uuid: Optional[str] = None
    memory_total_bytes: Optional[int] = None
    compute_capability: Optional[str] = None


class ThreadpoolInfo(_Model):
    user_api: str  #: "blas" / "openmp"
    internal_api: str  #: "openblas", "mkl", ...
    version: Optional[str] = None
    num_threads: Optional[int] = None
    filepath: Optional[str] = None


class Hardware(_Model):
    cpu: CPUInfo = Field(default_factory=CPUInfo)
    memory_total_bytes: Optional[int] = None
    disks: list[DiskInfo] = Field(default_factory=list)
    gpus: list[GPUInfo] = Field(default_factory=list)
    gpu_driver: Optional[str] = None
    cuda_driver_version: Optional[str] = None  #: "12.4"
    gpu_absent_reason: Optional[str] = None  #: e.g. "NVML library not found"
    threadpools: list[ThreadpoolInfo] = Field(default_factory=list)


class GitState(_Model):
    available: bool = False
    absent_reason: Optional[str] = None  #: "not a git repository", "git not installed"
    root: Optional[str] = None
    commit: Optional[str] = None
    branch: Optional[str] = None
    remote_url: Optional[str] = None  #: credentials stripped
    tags: list[str] = Field(default_factory=list)
    dirty: bool = False
    diff_blob: Optional[str] = None  #: sha256 of `git diff --binary HEAD`
    diff_stat: Optional[str] = None
    untracked: list[str] = Field(default_factory=list)
    untracked_total: Optional[int] = None  #: how many untracked files (the list is capped)
    diff_omitted: Optional[str] = None  #: why a dirty tree's diff was not kept (size limit)
    diff_excluded: list[str] = Field(default_factory=list)  #: files left out of the diff as secrets


class SourceSnapshot(_Model):
    """The code needed to run again, as a stored archive (tar.gz)."""

    kind: Literal["git", "files", "none"] = "none"
    root: Optional[str] = None  #: absolute path the archive is relative to
    blob: Optional[str] = None  #: sha256 of the tar.gz
    files: int = 0
    bytes: int = 0
    absent_reason: Optional[str] = None
    skipped: dict[str, str] = Field(default_factory=dict)  #: name -> why it was left out (capped)
    skipped_total: int = 0  #: how many files were left out in all


#: where a loaded shared library came from: an OS package (Debian's dpkg, RPM), the Python
#: installation or a Python distribution (a wheel's bundled library, an extension module), or
#: nothing known (a library built by hand, copied in, or of a package manager not read here)
LibraryOrigin = Literal["dpkg", "rpm", "python", "unknown"]


class SharedLibrary(_Model):
    """One ELF file mapped into the process (since schema 1.3)."""

    path: str  #: real path, as in /proc/self/maps
    soname: Optional[str] = None  #: DT_SONAME of its dynamic section (None for executables)
    sha256: Optional[str] = None
    size: Optional[int] = None
    #: the library's own version: threadpoolctl's for BLAS/OpenMP, else, for a library no OS
    #: package owns (whose package version says more), from the file name (libz.so.1.2.13 -> 1.2.13)
    version: Optional[str] = None
    kind: Literal["library", "extension", "executable"] = "library"  #: extension: a Python extension module
    origin: LibraryOrigin = "unknown"
    #: what installed it: the OS package (origin dpkg/rpm) or the Python distribution (origin python)
    package: Optional[str] = None
    package_version: Optional[str] = None  #: e.g. Debian's "0.3.21+ds-4"
    package_arch: Optional[str] = None  #: e.g. "amd64"
    roles: list[str] = Field(default_factory=list)  #: "blas", "lapack", "openmp", "cuda"


class SystemLibraries(Record):
    """The shared libraries a process had loaded, and who owns them. Stored as a blob (since 1.3).

    Holds no timestamps, so the same libraries captured by two processes are one blob.
    """

    source: str = "/proc/self/maps"
    absent_reason: Optional[str] = None  #: why nothing was captured (no /proc on this system, ...)
    package_manager: Optional[str] = None  #: "dpkg" / "rpm" where its database was read
    libraries: list[SharedLibrary] = Field(default_factory=list)  #: sorted by path
    threadpools: list[ThreadpoolInfo] = Field(default_factory=list)  #: threadpoolctl, at capture


class ProcessContext(Record):
    """What one process captured once; task records point at it by content hash."""

    captured_at: _dt.datetime = Field(default_factory=utcnow)
    environment_blob: str  #: sha256 of the Environment JSON blob
    environment_hash: str  #: hash of the environment's identity (python + pins), for reuse
    python_version: str
    hardware: Hardware
    git: GitState
    source: SourceSnapshot
    capture_ms: Optional[float] = None
    pid: Optional[int] = None
    hostname: Optional[str] = None
    #: sha256 of the SystemLibraries blob (since schema 1.3). A process that loads more libraries
    #: later (numpy imported inside a task) gets a new context at that task's end, so each task
    #: record points at the libraries mapped when it ended.
    system_blob: Optional[str] = None


# --------------------------------------------------------------------------------------------
# Runs and task runs
# --------------------------------------------------------------------------------------------

RunStatus = Literal["RUNNING", "COMPLETED", "FAILED", "CRASHED", "CANCELLED"]
TaskState = Literal["COMPLETED", "FAILED", "CACHED", "RETRYING"]


class CacheKey(BaseModel):
    """The parts of a ``reproflow.CONTENT`` cache key, kept so ``reproflow status`` can tell
    which part changed. ``key`` is the SHA-256 of the canonical JSON of the other parts and, once
    the task was seen to read files it did not declare, of those files (the record's inputs marked
    ``undeclared``)."""

    model_config = ConfigDict(extra="ignore")

    key: str
    function: str  #: "file:qualname" of the task's own function (a key of ``code``)
    code: dict[str, str] = Field(default_factory=dict)  #: "file:qualname" -> syntax-tree digest
    environment: Optional[str] = None  #: ProcessContext.environment_hash
    parameters: dict[str, str] = Field(default_factory=dict)  #: name -> stable hash
    defaults: list[str] = Field(default_factory=list)  #: parameters that took their default
    inputs: dict[str, str] = Field(default_factory=dict)  #: uri -> sha256 (or "missing")
    reused_run_id: Optional[str] = None  #: on a CACHED record: the run whose result it reused
    reused_task_run_id: Optional[str] = None


#: which engine ran a run or a task: Prefect's, plain Python (``reproflow.record()``), Airflow,
#: Snakemake, or any command under ``reproflow record -- CMD`` (since schema 1.2 beyond the first two)
Engine = Literal["prefect", "plain", "airflow", "snakemake", "command"]

#: an engine's own names for a run or a task attempt (Airflow's dag_id/task_id/map_index/try_number,
#: Snakemake's rule and wildcards): JSON scalars, lists of them, or a mapping of names to them
EngineInfoValue = Union[str, int, float, bool, None, list[Union[str, int, float, bool, None]], dict[str, Union[str, int, float, bool, None]]]


class TaskRecord(Record):
    """One attempt of one task run. Written once, never updated."""

    run_id: str
    task_run_id: str
    attempt: int = 1
    task_name: str
    task_key: str
    function: Optional[str] = None  #: "module:qualname" of the user's function
    function_file: Optional[str] = None  #: path relative to the source root, where known
    state: TaskState
    error: Optional[ErrorInfo] = None
    started_at: _dt.datetime
    ended_at: _dt.datetime
    duration_s: float
    parameters: dict[str, Any] = Field(default_factory=dict)  #: typed JSON (see values.py)
    parameter_hashes: dict[str, str] = Field(default_factory=dict)
    parameters_hash: str
    result_hash: Optional[str] = None
    #: what in the return value has no stable hash (its type, e.g. "flow.MeanModel"): nothing can
    #: compare it, and a replay reports the task "unverified" (None when it hashed, or none returned)
    result_unhashable: Optional[str] = None
    result: Optional[Any] = None  #: typed JSON of the return value when small and restorable
    result_blob: Optional[str] = None  #: sha256 of a stored pickled return value (opt-in)
    inputs: list[DataRef] = Field(default_factory=list)
    outputs: list[DataRef] = Field(default_factory=list)
    upstream: dict[str, list[str]] = Field(default_factory=dict)  #: param -> task_run_ids
    context: Optional[str] = None  #: sha256 of the ProcessContext blob it ran under
    seed: Optional[int] = None
    findings: list[Finding] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    engine: Engine = "prefect"
    #: the engine's own identity of this attempt (since schema 1.2; empty for Prefect and plain)
    engine_info: dict[str, EngineInfoValue] = Field(default_factory=dict)
    map_index: Optional[int] = None
    #: the subflow the task ran in (its flow name); None in the run's top-level flow
    subflow: Optional[str] = None
    #: the subflow's own Prefect flow-run id (tells two calls of one subflow apart)
    subflow_run_id: Optional[str] = None
    cache: Optional[CacheKey] = None  #: set when the task ran under ``reproflow.CONTENT``


class MapRecord(Record):
    """One ``Task.map`` call: its task runs in map order. Written once, when ``map`` returns.

    Prefect keeps no map index on a task run, and mapped runs start and finish in any order, so
    the flow's process writes this list; :meth:`Store.load_run` sets ``TaskRecord.map_index``
    from it. Replay, diff and exports match mapped runs by that index.
    """

    run_id: str
    map_id: str
    task_name: str
    task_key: str
    task_run_ids: list[str]
    created_at: _dt.datetime = Field(default_factory=utcnow)


class Liveness(_Model):
    """The process that started a run, so a reader can tell a run still going from one that died
    without its end record (see ``reproflow.store._liveness``)."""

    hostname: Optional[str] = None
    boot_id: Optional[str] = None  #: the kernel's boot id (else host name + boot time)
    pid_namespace: Optional[str] = None  #: ``/proc/self/ns/pid`` (containers on one kernel differ)
    pid: Optional[int] = None
    process_started: Optional[float] = None  #: the process's start time, epoch seconds (psutil)
    lease_interval_s: Optional[float] = None  #: how often ``runs/<id>/lease.json`` is renewed


class RunRecord(Record):
    """A flow run (or a plain-Python run). Written once when it starts."""

    run_id: str
    flow_name: str
    flow_run_name: Optional[str] = None
    entrypoint: Optional[str] = None  #: "relative/path.py:function" under the source root
    module: Optional[str] = None  #: "package.module:function", where importable
    #: the module the process ran as ``__main__`` with ``python -m NAME`` (since schema 1.4):
    #: replay runs it as a module again, so its relative imports work and its classes hash as
    #: ``__main__``'s did
    main_module: Optional[str] = None
    parameters: dict[str, Any] = Field(default_factory=dict)  #: typed JSON (see values.py)
    #: stable hash of each parameter (as TaskRecord.parameter_hashes; since schema 1.1)
    parameter_hashes: dict[str, str] = Field(default_factory=dict)
    parameters_hash: Optional[str] = None
    started_at: _dt.datetime = Field(default_factory=utcnow)
    context: str  #: sha256 of the ProcessContext blob of the process that started the run
    cwd: Optional[str] = None
    argv: list[str] = Field(default_factory=list)
    engine: Engine = "prefect"
    #: the engine's own identity of the run (since schema 1.2; e.g. Airflow's dag_id and run_id)
    engine_info: dict[str, EngineInfoValue] = Field(default_factory=dict)
    replay_of: Optional[str] = None
    seed: Optional[int] = None
    pythonhashseed: Optional[str] = None
    tags: list[str] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    reproflow_version: Optional[str] = None
    liveness: Optional[Liveness] = None  #: None in runs recorded before reproflow kept it


class RunEnd(Record):
    """How a run ended. Written once, beside run.json."""

    run_id: str
    status: RunStatus
    ended_at: _dt.datetime = Field(default_factory=utcnow)
    error: Optional[ErrorInfo] = None
    n_tasks: Optional[int] = None
    exit_code: Optional[int] = None  #: the command's exit status, for ``reproflow record -- CMD``
    #: since 1.3: normalised names of the distributions whose modules the run's process had
    #: imported at its end; None where not known (runs joined from other processes, older records)
    imported_distributions: Optional[list[str]] = None


class RunSummary(Record):
    """A small index entry so `runs list` needs one read per run."""

    run_id: str
    flow_name: str
    started_at: _dt.datetime
    ended_at: Optional[_dt.datetime] = None
    status: RunStatus = "RUNNING"
    dirty: Optional[bool] = None
    commit: Optional[str] = None
    n_tasks: Optional[int] = None
    replay_of: Optional[str] = None
    status_reason: Optional[str] = None  #: why a run with no end record (so no index entry) is CRASHED


class Run(_Model):
    """A run as loaded from the store: its records put together (not itself stored)."""

    record: RunRecord
    end: Optional[RunEnd] = None
    tasks: list[TaskRecord] = Field(default_factory=list)  #: every attempt, by start time
    context: Optional[ProcessContext] = None
    unended_status: RunStatus = "RUNNING"  #: RUNNING or CRASHED when there is no end record
    status_reason: Optional[str] = None  #: why it is CRASHED

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def status(self) -> RunStatus:
        return self.end.status if self.end else self.unended_status

    def final_tasks(self) -> list[TaskRecord]:
        """The last attempt of each task run, in start order."""
        last: dict[str, TaskRecord] = {}
        for t in self.tasks:
            cur = last.get(t.task_run_id)
            if cur is None or t.attempt >= cur.attempt:
                last[t.task_run_id] = t
        return sorted(last.values(), key=lambda t: (t.started_at, t.task_run_id))


__all__ = [
    "CacheKey",
    "SCHEMA_MAJOR",
    "SCHEMA_VERSION",
    "CPUInfo",
    "DataRef",
    "MapRecord",
    "DirectUrl",
    "DiskInfo",
    "Engine",
    "EngineInfoValue",
    "Distribution",
    "EnvVar",
    "Environment",
    "ErrorInfo",
    "Finding",
    "GitState",
    "GPUInfo",
    "Hardware",
    "Liveness",
    "PlatformInfo",
    "ProcessContext",
    "PythonInfo",
    "Record",
    "Run",
    "RunEnd",
    "RunRecord",
    "RunStatus",
    "RunSummary",
    "LibraryOrigin",
    "SharedLibrary",
    "SourceSnapshot",
    "SystemLibraries",
    "TaskRecord",
    "TaskState",
    "ThreadpoolInfo",
    "utcnow",
]
