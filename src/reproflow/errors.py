"""Every error reproflow raises on purpose.

One root, so ``except ReproflowError`` catches all of ours; each error mixes in the builtin that
fits, keeps its facts as attributes, and says the next step in its message::

    ReproflowError
     ├── StoreError (OSError)
     │    ├── StoreNotFound
     │    └── StoreUnreachable
     ├── RunNotFound (LookupError)
     ├── RecordError (ValueError)
     │    ├── CorruptRecord
     │    ├── NewerSchema
     │    └── UnsafeRecord                 a field that would reach a path or a command is unsafe
     ├── BlobError (ValueError)
     │    └── TamperedBlob
     ├── DeclarationError (TypeError)     bad @repro_task arguments, found when decorating
     ├── InputChanged (ValueError)        a recorded input is missing or hashes differently
     ├── UnsafeArchive (ValueError)       a stored archive holds a path outside its root
     ├── PackError (ValueError)           a pack file cannot be written or read
     │    └── UnsafePack                   a pack member is unsafe, unlisted or does not hash as listed
     ├── EnvironmentBuildError (RuntimeError)
     │    ├── PythonNotAvailable
     │    └── PinNotResolvable
     ├── StrictModeViolation (RuntimeError)
     ├── ExportError (ValueError)
     ├── CheckError (ValueError)           `reproflow check` input problems
     │    ├── CheckPathNotFound (FileNotFoundError)
     │    └── CheckConfigError
     ├── InvalidSeed (ValueError)
     ├── PrefectAPIError (ConnectionError) the Prefect API refused or could not be reached
     ├── CommandError (ValueError)         bad `reproflow record/job -- CMD` input
     │    └── CommandNotFound (FileNotFoundError)
     └── ReplayError (RuntimeError)
          ├── SourceNotAvailable           no snapshot and no commit to restore the code from
          ├── ParameterNotRestorable       a recorded parameter was not encodable (opaque)
          ├── TaskReplayRefused            a replay task by task cannot feed or call a task
          │    └── PartialReplayRefused    --task/--from without stored upstream results
          ├── SecretParameterMissing       a parameter redacted as a secret was not given (--param)
          └── ReplayExecutionError         the replayed flow could not be started

The CLI turns any ``ReproflowError`` into one red line and :attr:`ReproflowError.exit_code`;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ReproflowError(Exception):
    """Root of every error reproflow raises on purpose."""

    #: The process exit code the CLI uses for this error.
    exit_code: int = 1


class StoreError(ReproflowError, OSError):
    """The store cannot be read or written."""

    exit_code = 3

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url

    def __str__(self) -> str:  # OSError's __str__ would print the args tuple
        return str(self.args[0]) if self.args else ""


class StoreNotFound(StoreError):
    """The store URL points at nothing that holds reproflow records."""

    @classmethod
    def at(cls, url: str) -> StoreNotFound:
        return cls(
            f"no reproflow store at {url!r}: run a flow with @repro_task first, "
            "or pass the right location with --store URL (or REPROFLOW_STORE)",
            url=url,
        )


class StoreUnreachable(StoreError):
    """The store's filesystem raised on access (network, credentials, permissions)."""

    @classmethod
    def from_exc(cls, url: str, exc: BaseException) -> StoreUnreachable:
        if isinstance(exc, FileNotFoundError):
            # an object store whose bucket (container) is gone: retrying later will not help
            message = (f"store {url!r} is unreachable: its bucket does not exist ({exc}); "
                       "create the bucket or check the URL, then run `reproflow sync` again")
        else:
            message = (f"store {url!r} is unreachable ({type(exc).__name__}: {exc}); check the URL, "
                       "network and credentials, or run `reproflow sync` later to upload spooled records")
        err = cls(message, url=url)
        err.__cause__ = exc
        return err


class RunNotFound(ReproflowError, LookupError):
    """No run with that id is in the store."""

    exit_code = 4

    def __init__(self, message: str, *, run_id: str, url: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.url = url

    @classmethod
    def for_id(cls, run_id: str, url: str) -> RunNotFound:
        return cls(
            f"no run {run_id!r} in store {url!r}: list the runs with `reproflow runs list --store {url}`",
            run_id=run_id,
            url=url,
        )

    def __str__(self) -> str:  # LookupError's __str__ would quote the message
        return str(self.args[0]) if self.args else ""


class RecordError(ReproflowError, ValueError):
    """A record in the store cannot be used."""

    exit_code = 5

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class CorruptRecord(RecordError):
    """A record file is not valid JSON or does not match the schema."""

    @classmethod
    def at(cls, path: str, reason: str) -> CorruptRecord:
        reason = " ".join(reason.split())
        if len(reason) > 200:
            reason = reason[:197] + "..."
        return cls(
            f"corrupt record {path}: {reason}; restore it from a backup or remove the run "
            "(records are never repaired silently)",
            path=path,
        )


class NewerSchema(RecordError):
    """A record was written by a newer reproflow with an incompatible schema."""

    def __init__(self, message: str, *, path: str, found: str, supported: str) -> None:
        super().__init__(message, path=path)
        self.found = found
        self.supported = supported

    @classmethod
    def at(cls, path: str, found: str, supported: str) -> NewerSchema:
        return cls(
            f"record {path} has schema version {found}, newer than this reproflow reads "
            f"({supported}); upgrade with `pip install -U reproflow`",
            path=path,
            found=found,
            supported=supported,
        )


class UnsafeRecord(RecordError):
    """A record field that would reach a path, a command line or an archive is not safe to use.

    A store may come from someone else: such a record is refused, never acted on.
    """

    @classmethod
    def because(cls, what: str, *, path: str = "") -> UnsafeRecord:
        return cls(f"refusing the record: {what}; the store may come from someone else or be damaged "
                   "(nothing was installed or written)", path=path)


class BlobError(ReproflowError, ValueError):
    """A content-addressed blob is missing or wrong."""

    exit_code = 5

    def __init__(self, message: str, *, digest: str) -> None:
        super().__init__(message)
        self.digest = digest


class TamperedBlob(BlobError):
    """A blob's content no longer hashes to its name."""

    @classmethod
    def for_digest(cls, digest: str, actual: str, url: str) -> TamperedBlob:
        err = cls(
            f"blob sha256:{digest} in {url!r} hashes to sha256:{actual}: it was modified "
            "after recording; restore the store from a trusted copy",
            digest=digest,
        )
        err.actual = actual
        return err


class DeclarationError(ReproflowError, TypeError):
    """``@repro_task`` was given arguments that cannot work; raised when decorating."""

    exit_code = 2


class InputChanged(ReproflowError, ValueError):
    """A recorded input is missing or no longer hashes to its recorded SHA-256."""

    exit_code = 6

    def __init__(self, message: str, *, uri: str, expected: str, actual: str | None) -> None:
        super().__init__(message)
        self.uri = uri
        self.expected = expected
        self.actual = actual

    @classmethod
    def for_input(cls, uri: str, expected: str, actual: str | None) -> InputChanged:
        found = "it is missing" if actual is None else f"found sha256:{actual}"
        return cls(
            f"input {uri} changed since recording: recorded sha256:{expected}, {found}; "
            "restore the original data or pass --allow-changed-inputs",
            uri=uri,
            expected=expected,
            actual=actual,
        )

    @classmethod
    def written_by_run(cls, uri: str, expected: str, actual: str | None, tasks: list[str],
                       stored: bool = False) -> InputChanged:
        """An input the run itself wrote over or into: its original path holds the run's
        outputs, and no stored copy that can be used holds the state the run started from."""
        found = "" if actual is None else f" (now sha256:{actual})"
        fix = ("it was stored, but the file has changed since the run wrote it and is not overwritten: put back "
               "what the run left there" if stored else
               "record again with REPROFLOW_STORE_INPUTS=1 (or @repro_task(store_inputs=True)) so the store keeps "
               "a copy of it")
        return cls(
            f"input {uri} was written by the run itself (task{'s' if len(tasks) > 1 else ''} {', '.join(tasks)}), so its original path{found} "
            f"holds the run's outputs, not the state recorded before the run (sha256:{expected}); {fix}, "
            "or pass --allow-changed-inputs to replay from what is there now",
            uri=uri,
            expected=expected,
            actual=actual,
        )


class UnsafeArchive(ReproflowError, ValueError):
    """A stored archive holds a member that would land outside its target folder."""

    exit_code = 5

    @classmethod
    def for_member(cls, archive: str, member: str) -> UnsafeArchive:
        err = cls(
            f"refusing to extract {archive}: member {member!r} escapes the target folder "
            "(absolute path, '..' or a link); the store may have been tampered with"
        )
        err.member = member
        return err


class PackError(ReproflowError, ValueError):
    """A pack file (``reproflow pack``) cannot be written or read."""

    exit_code = 5

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class UnsafePack(PackError):
    """A pack holds a member that is unsafe, unlisted, too large or not what its manifest says.

    A pack is untrusted input: nothing from it is imported or installed once this is raised.
    """

    @classmethod
    def because(cls, path: str, what: str) -> UnsafePack:
        return cls(f"refusing the pack {path}: {what}; it may be damaged or tampered with "
                   "(nothing was imported; ask for a fresh copy)", path=path)


class EnvironmentBuildError(ReproflowError, RuntimeError):
    """The recorded environment could not be rebuilt."""

    exit_code = 7


class PythonNotAvailable(EnvironmentBuildError):
    """No interpreter of the recorded major.minor version exists on this machine."""

    @classmethod
    def for_version(cls, version: str, searched: list[str]) -> PythonNotAvailable:
        err = cls(
            f"Python {version} is not available on this machine (looked in: "
            f"{', '.join(searched) or 'nothing'}); install it (e.g. `pyenv install {version}`) "
            "or pass --python PATH"
        )
        err.version = version
        return err


class PinNotResolvable(EnvironmentBuildError):
    """A recorded pin can no longer be installed from the index."""

    @classmethod
    def for_pins(cls, pins: list[str], detail: str) -> PinNotResolvable:
        detail = " ".join(detail.split())[:300]
        err = cls(
            f"cannot install {', '.join(pins) or 'the recorded pins'} ({detail}); "
            "check the index (UV_INDEX_URL) or replay --in-place"
        )
        err.pins = pins
        return err


class StrictModeViolation(ReproflowError, RuntimeError):
    """``strict=True`` found a problem before the task body ran."""

    exit_code = 8


class ExportError(ReproflowError, ValueError):
    """A record cannot be exported to the requested format."""

    exit_code = 2


class CheckError(ReproflowError, ValueError):
    """``reproflow check`` was asked to analyse something it cannot use."""

    exit_code = 2


class CheckPathNotFound(CheckError, FileNotFoundError):
    """A path given to ``reproflow check`` does not exist or holds no Python files."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:  # OSError's __str__ would print the args tuple
        return str(self.args[0]) if self.args else ""

    @classmethod
    def at(cls, path: str) -> CheckPathNotFound:
        return cls(
            f"cannot check {path!r}: no such file or directory; pass a Python file or a folder "
            "that holds some",
            path=path,
        )


class CheckConfigError(CheckError):
    """``[tool.reproflow]`` or ``--select``/``--ignore`` name something that does not exist."""

    def __init__(self, message: str, *, source: str, key: str) -> None:
        super().__init__(message)
        self.source = source
        self.key = key

    @classmethod
    def invalid(cls, source: str, key: str, problem: str) -> CheckConfigError:
        return cls(
            f"invalid reproflow check setting {key!r} in {source}: {problem}; "
            "see `reproflow check --list-rules` and docs/checks.md",
            source=source,
            key=key,
        )


class InvalidSeed(ReproflowError, ValueError):
    """A seed is not an integer in ``0 .. 2**32 - 1`` (the range every seeded library accepts)."""

    exit_code = 2

    @classmethod
    def for_value(cls, value: object, source: str = "seed") -> InvalidSeed:
        err = cls(
            f"invalid {source} {value!r}: a seed must be an integer from 0 to 4294967295 "
            "(numpy's limit); pass e.g. seed=42"
        )
        err.value = value
        return err


class PrefectAPIError(ReproflowError, ConnectionError):
    """Prefect's API could not be reached or refused a request (publishing artifacts)."""

    exit_code = 3

    @classmethod
    def from_exc(cls, api_url: str | None, exc: BaseException) -> PrefectAPIError:
        from .values._urls import strip_credentials

        where = strip_credentials(api_url) if api_url else "Prefect's ephemeral server"
        return cls(
            f"the Prefect API at {where} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
            + "; start a server (`prefect server start`) and set PREFECT_API_URL to it, or check the URL"
        )


class CommandError(ReproflowError, ValueError):
    """``reproflow record -- CMD`` or ``reproflow job -- CMD`` was given something it cannot run."""

    exit_code = 2


class CommandNotFound(CommandError, FileNotFoundError):
    """The command to record is missing, or its program is not on PATH (exit 127, as a shell)."""

    exit_code = 127

    def __str__(self) -> str:  # FileNotFoundError's __str__ would print the args tuple
        return str(self.args[0]) if self.args else ""

    @classmethod
    def missing(cls) -> CommandNotFound:
        return cls("no command to record: put it after --, e.g. `reproflow record -- make`")

    @classmethod
    def for_command(cls, program: str) -> CommandNotFound:
        err = cls(f"command not found: {program!r} is not on PATH; check its spelling, or give its path")
        err.program = program
        return err


class ReplayError(ReproflowError, RuntimeError):
    """A replay cannot go on (not to be confused with a replay whose outputs differ)."""

    exit_code = 9


class SourceNotAvailable(ReplayError):
    """The recorded code cannot be restored: no snapshot and no reachable commit."""

    @classmethod
    def because(cls, detail: str) -> SourceNotAvailable:
        err = cls(
            f"cannot restore the recorded code: {detail}; record with the source snapshot "
            "enabled, or replay --in-place from a checkout of the recorded commit"
        )
        err.detail = detail
        return err


class ParameterNotRestorable(ReplayError):
    """A recorded parameter was stored as an opaque value that cannot be rebuilt."""

    @classmethod
    def for_param(cls, where: str, name: str, type_name: str, why: str | None = None) -> ParameterNotRestorable:
        err = cls(
            f"parameter {name!r} of {where} was recorded as an opaque {type_name}"
            + (f" ({why})" if why else "") + " and cannot be rebuilt; pass it as plain data (str, "
            "number, Path, list, dict), or an instance of a class defined at a module's top level "
            "(a dataclass, a pydantic model, or a plain class holding no lock, file or client), or "
            "record its task with store_results=True upstream"
        )
        err.name = name
        err.type_name = type_name
        err.why = why
        return err


class SecretParameterMissing(ReplayError):
    """A parameter was redacted when recorded (a secret) and the replay was not given it."""

    @classmethod
    def for_paths(cls, where: str, paths: list[str], env_names: list[str]) -> SecretParameterMissing:
        first = paths[0]
        more = f" (and {len(paths) - 1} more: {', '.join(paths[1:])})" if len(paths) > 1 else ""
        err = cls(
            f"parameter {first!r} of {where} is a secret that was not recorded{more}; give it with "
            f"--param {first}=VALUE or ${env_names[0]}"
        )
        err.paths = paths
        err.env_names = env_names
        return err


class TaskReplayRefused(ReplayError):
    """A replay task by task (``--engine tasks``) cannot run: a task has no function to call
    and no command to run, or a parameter's value can be had from nowhere; or the chosen
    ``--engine`` cannot replay this run."""

    prefix = "cannot replay the run task by task"

    @classmethod
    def because(cls, detail: str, *, task: str | None = None) -> TaskReplayRefused:
        err = cls(f"{cls.prefix}: {detail}")
        err.detail = detail
        err.task = task
        return err


class PartialReplayRefused(TaskReplayRefused):
    """``--task``/``--from`` cannot run: a task is unknown or its upstream values were not stored."""

    prefix = "cannot replay part of the run"

    @classmethod
    def because(cls, detail: str, *, task: str | None = None) -> PartialReplayRefused:
        err = cls(f"{cls.prefix}: {detail}")
        err.detail = detail
        err.task = task
        return err


class ReplayExecutionError(ReplayError):
    """The replayed flow could not be started or crashed outside its tasks."""

    @classmethod
    def from_runner(cls, detail: str, returncode: int) -> ReplayExecutionError:
        detail = " ".join(detail.split())
        if len(detail) > 400:
            detail = "..." + detail[-397:]
        err = cls(f"the replayed flow did not run (exit {returncode}): {detail}")
        err.detail = detail
        err.returncode = returncode
        return err


__all__ = [
    "BlobError",
    "CheckConfigError",
    "CheckError",
    "CheckPathNotFound",
    "CommandError",
    "CommandNotFound",
    "CorruptRecord",
    "DeclarationError",
    "EnvironmentBuildError",
    "ExportError",
    "InputChanged",
    "InvalidSeed",
    "NewerSchema",
    "PackError",
    "ParameterNotRestorable",
    "PrefectAPIError",
    "PartialReplayRefused",
    "PinNotResolvable",
    "PythonNotAvailable",
    "RecordError",
    "ReplayError",
    "ReplayExecutionError",
    "ReproflowError",
    "RunNotFound",
    "SecretParameterMissing",
    "SourceNotAvailable",
    "StoreError",
    "StoreNotFound",
    "StoreUnreachable",
    "StrictModeViolation",
    "TamperedBlob",
    "TaskReplayRefused",
    "UnsafeArchive",
    "UnsafePack",
]
