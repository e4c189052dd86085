"""Hostile values in every record field that reaches a path, a command line or an archive (issue 11).

One *case* is (field, value): a complete, valid run is written into a fresh sandbox, the one
field is set to the hostile value (in the stored JSON, as someone else's store would hold it),
and the real code path runs through the real CLI (``run_cli``) as far as it goes:

* ``replay`` stages: plan, restore the code, verify/restore the inputs, build the environment
  (rebuild) or write the runner's spec (in place, and task by task). The boundary where a
  command would start is intercepted: ``uv`` (environment build), the replay runner's
  ``Popen``, ``uv pip compile`` (export) are captured and refused, never run; git runs (it only
  reads), its arguments captured.
* ``export`` stages: the Dockerfile, the Apptainer definition and requirements.txt.
* ``pack`` stage: a pack file with the hostile member name or run id, through ``reproflow unpack``.

Each case must end in one of: a refusal (non-zero exit, ONE ``error:`` line on stderr, no
traceback), or reaching the boundary (the command captured: no word of it from the record starts
with ``-`` or holds an option), or a finished export whose text has no injected line and no
unquoted shell character from the record. And always: nothing outside the sandbox written or
deleted, nothing inside the sandbox that existed before deleted or changed.

``python tests/replay/hostile_fields.py`` runs every field with every value and prints the
counts docs/security.md quotes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shlex
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from replay_records import T0, environment, sha, tar_gz, task  # noqa: E402

from reproflow import errors  # noqa: E402
from reproflow.cli import app  # noqa: E402
from reproflow.cli._common import run_cli  # noqa: E402
from reproflow.records import (  # noqa: E402
    DataRef,
    DirectUrl,
    Distribution,
    EnvVar,
    GitState,
    GPUInfo,
    Hardware,
    ProcessContext,
    RunEnd,
    RunRecord,
    SourceSnapshot,
)
from reproflow.store import Store  # noqa: E402

#: Kinds of hostile value: path escapes, installer options, shell and URL tricks, odd bytes.
HOSTILE = [
    "..", ".", "../..", "/", "/etc/passwd", "../../../../tmp/rf-pwned", "./../x", "a/../../b",
    "--index-url=http://127.0.0.1:9/simple", "--extra-index-url", "-e.", "-r/etc/passwd", "-",
    "--", "--upload-pack=touch /tmp/rf-pwned", "ext::sh -c touch% /tmp/rf-pwned",
    "x; rm -rf /", "$(touch /tmp/rf-pwned)", "`id`", "|cat", ">x", "&&x", "a\nb", "a\x00b",
    "name with space", "file:///etc/passwd", "http://127.0.0.1:9/evil.whl",
    "git+https://127.0.0.1:9/x.git@--exec", "C:\\Windows\\x", "\\\\server\\share", "~/x",
    "%2e%2e%2f", "\u202eexe", "*", "?", "[a]", "{a,b}", "", " ", "a" * 300,
    "--output=/tmp/rf-pwned", "x\nRUN touch /tmp/rf-pwned", "x\r\n%post\ntouch /tmp/rf-pwned",
]
#: Values aimed at this sandbox: @OUT@ is a folder outside it holding files that must survive,
#: @ROOT@ the recorded source root (inside it); both are filled in per case.
PLACED = [
    "@OUT@/planted", "file://@OUT@/planted", "@OUT@/sentinel.txt", "@OUT@", "@ROOT@/../../outside/planted",
    "@ROOT@/sub/../../../outside/planted", "@ROOT@/../sandbox/precious.txt",
]
VALUES = HOSTILE + PLACED

#: where a command (or a replay runner) would start: captured, never run
BOUNDARY = "test boundary reached"


@dataclass
class Case:
    """The sandbox of one case and what was captured in it."""

    base: Path
    field: str
    value: str
    commands: list[list[str]] = field(default_factory=list)  #: argv of intercepted commands
    exports: dict[str, str] = field(default_factory=dict)

    @property
    def sandbox(self) -> Path:
        return self.base / "sandbox"

    @property
    def outside(self) -> Path:
        return self.base / "outside"

    @property
    def root(self) -> Path:
        return self.sandbox / "recorded"

    @property
    def store(self) -> Store:
        return Store(str(self.sandbox / "store"))


def fill(value: str, case: Case) -> str:
    return value.replace("@OUT@", str(case.outside)).replace("@ROOT@", str(case.root))


# ------------------------------------------------------------------ the run a case starts from


@dataclass
class Spec:
    """A complete, valid run; a field's setter changes one part of it."""

    case: Case
    engine: str = "prefect"
    run: dict[str, Any] = field(default_factory=dict)
    env: Any = None
    ctx: dict[str, Any] = field(default_factory=dict)
    source_files: dict[str, bytes] = field(default_factory=dict)
    source_tar: bytes | None = None
    tasks: list[dict[str, Any]] = field(default_factory=list)
    raw_task: Callable[[dict[str, Any]], None] | None = None  #: edit a task's JSON after dumping
    raw_run: Callable[[dict[str, Any]], None] | None = None
    stored_input: dict[str, Any] | None = None  #: (DataRef fields) a stored copy of an input
    args: list[str] = field(default_factory=list)  #: extra replay arguments


def base_spec(case: Case) -> Spec:
    root = case.root
    spec = Spec(case)
    spec.source_files = {"flow.py": b"def pipeline():\n    pass\n\ndef tidy(path):\n    return 1\n",
                         "data/in.csv": b"a,b\n1,2\n"}
    spec.env = environment()
    spec.ctx = {"source_root": str(root), "git": GitState(available=False, absent_reason="not a git repository"),
                "hardware": Hardware()}
    spec.run = {"flow_name": "pipeline", "entrypoint": "flow.py:pipeline", "cwd": str(root)}
    data = root / "data" / "in.csv"
    spec.tasks = [{
        "name": "tidy", "function": "flow:tidy",
        "inputs": [DataRef(uri=str(data), kind="file", sha256=sha(data.read_bytes()), size=data.stat().st_size,
                           param="path")],
        "outputs": [DataRef(uri=str(root / "out" / "clean.csv"), kind="file", sha256="0" * 64, param="return")],
        "parameters": {"path": {"__rf__": "path", "v": str(data)}},
    }]
    return spec


def write_spec(spec: Spec) -> str:
    """Write the run of ``spec`` into the case's store, as JSON files (hostile values included)."""
    store = spec.case.store
    env_digest = store.put_model_blob(spec.env)
    tar = spec.source_tar if spec.source_tar is not None else tar_gz(spec.source_files)
    src = SourceSnapshot(kind="files", root=spec.ctx["source_root"], blob=store.put_blob(tar),
                         files=len(spec.source_files), bytes=sum(map(len, spec.source_files.values())))
    if spec.ctx.get("no_snapshot"):
        src = SourceSnapshot(kind="none", absent_reason="not recorded")
    ctx = ProcessContext(environment_blob=env_digest, environment_hash="sha256:" + sha(env_digest.encode()),
                         python_version=spec.env.python.version, hardware=spec.ctx["hardware"], git=spec.ctx["git"],
                         source=src)
    ctx_json = json.loads(ctx.model_dump_json())
    for key, value in spec.ctx.get("raw", {}).items():  # digests as someone else's store holds them
        ctx_json[key] = value
    ctx_digest = store.put_blob(json.dumps(ctx_json).encode())
    run_id = str(uuid.uuid4())
    rdir = Path(store.root) / "runs" / run_id
    (rdir / "tasks").mkdir(parents=True)
    rec = RunRecord(run_id=run_id, context=ctx_digest, started_at=T0, engine=spec.engine,  # type: ignore[arg-type]
                    **{k: v for k, v in spec.run.items() if k not in ("context",)})
    rec_json = json.loads(rec.model_dump_json())
    if "context" in spec.run:
        rec_json["context"] = spec.run["context"]
    if spec.raw_run:
        spec.raw_run(rec_json)
    (rdir / "run.json").write_text(json.dumps(rec_json))
    for i, t in enumerate(spec.tasks):
        t = dict(t)
        if spec.stored_input is not None and i == 0:
            t["inputs"] = [t["inputs"][0].model_copy(update=spec.stored_input)]
        rec_t = task(run_id, i, ctx_digest, **t)
        data = json.loads(rec_t.model_dump_json())
        if spec.raw_task:
            spec.raw_task(data)
        (rdir / "tasks" / f"t{i}.1.json").write_text(json.dumps(data))
    (rdir / "end.json").write_text(RunEnd(run_id=run_id, status="COMPLETED", n_tasks=len(spec.tasks)).model_dump_json())
    return run_id


# ------------------------------------------------------------------ the fields


Setter = Callable[[Spec, str], None]


def _run(key: str) -> Setter:
    def set_(spec: Spec, v: str) -> None:
        spec.raw_run = lambda d: d.__setitem__(key, v)
    return set_


def _task(key: str, wrap: Callable[[str], Any] = lambda v: v) -> Setter:
    def set_(spec: Spec, v: str) -> None:
        spec.raw_task = lambda d: d.__setitem__(key, wrap(v))
    return set_


def _ref(which: str, **extra: Any) -> Setter:
    def set_(spec: Spec, v: str) -> None:
        def edit(d: dict[str, Any]) -> None:
            d[which][0]["uri"] = v
            d[which][0].update(extra)
        spec.raw_task = edit
    return set_


def _engine_info(engine: str, key: str, wrap: Callable[[str], Any] = lambda v: v, **fixed: Any) -> Setter:
    def set_(spec: Spec, v: str) -> None:
        spec.engine = engine
        def edit(d: dict[str, Any]) -> None:
            d["engine"] = engine
            d["function"] = None
            d["engine_info"] = {**fixed, key: wrap(v)}
        spec.raw_task = edit
    return set_


def _snakemake(key: str, wrap: Callable[[str], Any] = lambda v: v) -> Setter:
    def set_(spec: Spec, v: str) -> None:
        spec.engine = "snakemake"
        out = str(spec.case.root / "out" / "clean.csv")
        info = {"rule": "tidy", "output": ["out/clean.csv"], "wildcards": {}}
        info[key] = wrap(v)
        def edit(d: dict[str, Any]) -> None:
            d["engine"], d["function"], d["engine_info"] = "snakemake", None, info
            d["outputs"][0]["uri"] = out
        spec.raw_task = edit
    return set_


def _snakefile(spec: Spec, v: str) -> None:
    _snakemake("rule", lambda _: "tidy")(spec, v)
    spec.raw_run = lambda d: d.__setitem__("engine_info", {"argv": ["snakemake", "--snakefile", v]})


def _ctx(key: str) -> Setter:
    def set_(spec: Spec, v: str) -> None:
        spec.ctx.setdefault("raw", {})
        if key == "source.root":
            spec.ctx["source_root"] = v
        elif key.startswith("git."):
            attr = key[4:]
            git = GitState(available=True, root=str(spec.case.root), commit="0" * 40, dirty=False)
            setattr(git, attr, v)
            spec.ctx["git"] = git
            spec.ctx["no_snapshot"] = True
        else:
            spec.ctx["raw"][key] = v
    return set_


def _source_tar(spec: Spec, extra: tarfile.TarInfo, data: bytes = b"") -> bytes:
    """The recorded source files as a snapshot archive, with one more member after them."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in sorted(spec.source_files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        extra.size = len(data)
        tar.addfile(extra, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _source_member(spec: Spec, v: str) -> None:
    spec.source_tar = _source_tar(spec, tarfile.TarInfo(v), b"x")


def _link_member(spec: Spec, v: str) -> None:
    info = tarfile.TarInfo("results")
    info.type, info.linkname = tarfile.SYMTYPE, v
    spec.source_tar = _source_tar(spec, info)


def _stored_input(spec: Spec, v: str) -> None:
    """An input missing at its recorded path, with a stored copy: restored there (documented)."""
    payload = b"stored copy\n"
    digest = spec.case.store.put_blob(payload)
    spec.stored_input = {"uri": v, "sha256": sha(payload), "stored_blob": digest, "size": len(payload)}


def _stored_dir_member(spec: Spec, v: str) -> None:
    """A stored copy of an input folder whose tar holds the hostile member name."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(v)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    digest = spec.case.store.put_blob(buf.getvalue())
    spec.stored_input = {"uri": str(spec.case.root / "data" / "gone"), "kind": "directory", "sha256": "1" * 64,
                         "stored_blob": digest}


def _env(mutate: Callable[[Any, str], None], *, rebuild: bool = True) -> Setter:
    def set_(spec: Spec, v: str) -> None:
        env = spec.env.model_copy(deep=True)
        mutate(env, v)
        spec.env = env
        if rebuild:
            spec.args = ["--rebuild"]
    return set_


def _dist(**kw: Any) -> Callable[[Any, str], None]:
    def mutate(env: Any, v: str) -> None:
        base: dict[str, Any] = {"name": "pkg", "version": "1.0"}
        for k, how in kw.items():
            base[k] = how(v)
        env.distributions = [Distribution(**base)]
    return mutate


def _hw_cuda(spec: Spec, v: str) -> None:
    spec.ctx["hardware"] = Hardware(gpus=[GPUInfo(index=0, name="H200")], cuda_driver_version=v)


def _param_path(spec: Spec, v: str) -> None:
    spec.raw_task = lambda d: d["parameters"].__setitem__("path", {"__rf__": "path", "v": v})
    spec.args = ["--engine", "tasks"]


#: field kind -> (stage, setter). Stages: "replay" (in place, the recorded flow), "tasks" (in
#: place, task by task), "rebuild" (the environment is built), "export", "pack".
FIELDS: dict[str, tuple[str, Setter]] = {
    "run.entrypoint": ("replay", lambda s, v: s.run.__setitem__("entrypoint", v + ":pipeline")),
    "run.entrypoint (whole)": ("replay", _run("entrypoint")),
    "run.module": ("replay", lambda s, v: (s.run.__setitem__("module", v), s.run.__setitem__("entrypoint", None))),
    "run.main_module": ("replay", _run("main_module")),
    "run.cwd": ("replay", _run("cwd")),
    "run.argv": ("replay", lambda s, v: s.run.__setitem__("argv", [v, "--x", v])),
    "run.pythonhashseed": ("replay", _run("pythonhashseed")),
    "run.flow_name": ("replay", _run("flow_name")),
    "run.run_id": ("replay", _run("run_id")),
    "run.replay_of": ("replay", _run("replay_of")),
    "run.context digest": ("replay", lambda s, v: s.run.__setitem__("context", v)),
    "run.parameters path": ("replay", lambda s, v: s.run.__setitem__("parameters", {"p": {"__rf__": "path", "v": v}})),
    "task.task_name": ("tasks", _task("task_name")),
    "task.task_key": ("tasks", _task("task_key")),
    "task.task_run_id": ("tasks", _task("task_run_id")),
    "task.function": ("tasks", _task("function")),
    "task.function_file": ("tasks", _task("function_file")),
    "task.upstream ids": ("tasks", _task("upstream", lambda v: {"path": [v]})),
    "task.parameters path": ("tasks", _param_path),
    "task.input uri": ("tasks", _ref("inputs")),
    "task.input uri (flow)": ("replay", _ref("inputs")),
    "task.output uri": ("tasks", _ref("outputs")),
    "task.input stored copy at its path": ("tasks", _stored_input),
    "task.input stored folder member": ("tasks", _stored_dir_member),
    "task.stored_blob digest": ("tasks", lambda s, v: setattr(s, "stored_input", {"uri": str(s.case.root / "data" / "gone"), "stored_blob": v})),
    "task.result_blob digest": ("tasks", _task("result_blob")),
    "task.context digest": ("tasks", _task("context")),
    "snakemake rule": ("tasks", _snakemake("rule")),
    "snakemake output": ("tasks", _snakemake("output", lambda v: [v])),
    "snakemake wildcards": ("tasks", _snakemake("wildcards", lambda v: {"sample": v})),
    "snakemake --snakefile": ("tasks", _snakefile),
    "airflow task_id": ("tasks", _engine_info("airflow", "task_id", command="true")),
    "command argv": ("tasks", _engine_info("command", "argv", lambda v: ["true", v])),
    "context source.root": ("replay", _ctx("source.root")),
    "context git.root": ("replay", _ctx("git.root")),
    "context git.commit": ("replay", _ctx("git.commit")),
    "context git.diff_blob": ("replay", _ctx("git.diff_blob")),
    "context environment_blob": ("replay", _ctx("environment_blob")),
    "context source blob": ("replay", lambda s, v: s.ctx.setdefault("raw", {}).__setitem__("source", {"kind": "files", "root": str(s.case.root), "blob": v})),
    "source snapshot member": ("replay", _source_member),
    "source snapshot link target": ("replay", _link_member),
    "python.version": ("rebuild", _env(lambda e, v: setattr(e.python, "version", v))),
    "python.implementation": ("rebuild", _env(lambda e, v: setattr(e.python, "implementation", v))),
    "python.executable": ("rebuild", _env(lambda e, v: setattr(e.python, "executable", v))),
    "distribution name": ("rebuild", _env(_dist(name=lambda v: v))),
    "distribution version": ("rebuild", _env(_dist(version=lambda v: v))),
    "distribution VCS URL": ("rebuild", _env(_dist(direct_url=lambda v: DirectUrl(url=v, vcs="git", commit_id="0" * 40)))),
    "distribution VCS commit": ("rebuild", _env(_dist(direct_url=lambda v: DirectUrl(url="https://example.org/x.git", vcs="git", commit_id=v)))),
    "distribution file URL": ("rebuild", _env(_dist(direct_url=lambda v: DirectUrl(url="file://" + v, archive_hash="sha256=" + "0" * 64)))),
    "distribution archive_hash": ("export", _env(_dist(direct_url=lambda v: DirectUrl(url="https://example.org/pkg-1.0.whl", archive_hash=v)), rebuild=False)),
    "distribution source_blob": ("rebuild", _env(_dist(direct_url=lambda v: DirectUrl(url="file:///src/pkg", editable=True), source_blob=lambda v: v))),
    "index_urls": ("export", _env(lambda e, v: setattr(e, "index_urls", [v]), rebuild=False)),
    "find_links": ("export", _env(lambda e, v: setattr(e, "find_links", [v]), rebuild=False)),
    "env var value (OMP_NUM_THREADS)": ("export", _env(lambda e, v: e.env_vars.__setitem__("OMP_NUM_THREADS", EnvVar(value=v)), rebuild=False)),
    "platform distro": ("export", _env(lambda e, v: setattr(e.platform, "distro", v), rebuild=False)),
    "platform machine": ("export", _env(lambda e, v: setattr(e.platform, "machine", v), rebuild=False)),
    "python.version (export)": ("export", _env(lambda e, v: setattr(e.python, "version", v), rebuild=False)),
    "hardware cuda_driver_version": ("export", _hw_cuda),
    "git remote_url": ("export", lambda s, v: s.ctx.__setitem__("git", GitState(available=True, root=str(s.case.root), commit="a" * 40, remote_url=v))),
    "git commit (export)": ("export", lambda s, v: s.ctx.__setitem__("git", GitState(available=True, root=str(s.case.root), commit=v, remote_url="https://example.org/r.git"))),
    "flow_name (export)": ("export", _run("flow_name")),
    "pack member name": ("pack", lambda s, v: None),
    "pack run id": ("pack", lambda s, v: None),
}


# ------------------------------------------------------------------ watching the file system


def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    if not root.exists():
        return out
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            p = os.path.join(folder, name)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir", "")
            else:
                with open(p, "rb") as fh:
                    out[rel] = ("file", hashlib.sha256(fh.read()).hexdigest())
    return out


GLOBAL = ["/tmp/rf-pwned", os.path.expanduser("~/x"), "/x", "x"]


def _prepare(base: Path) -> Case:
    case = Case(base, "", "")
    for d in ("store", "cache", "home", "tmp", "work", "recorded/data", "recorded/out"):
        (case.sandbox / d).mkdir(parents=True, exist_ok=True)
    (case.sandbox / "precious.txt").write_text("mine\n")
    (case.root / "flow.py").write_text("def pipeline():\n    pass\n\ndef tidy(path):\n    return 1\n")
    (case.root / "data" / "in.csv").write_text("a,b\n1,2\n")
    (case.outside / "keep").mkdir(parents=True)
    (case.outside / "sentinel.txt").write_text("do not touch\n")
    (case.outside / "keep" / "a.txt").write_text("a\n")
    return case


class _Boundary:
    """Stands in for the ``subprocess`` module of one reproflow module: captures the argv of
    every command, lets only git (read only) run, refuses the rest at the boundary."""

    def __init__(self, real: Any, case: Case, passthrough: tuple[str, ...] = ()) -> None:
        self._real, self._case, self._pass = real, case, passthrough

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def _capture(self, cmd: Any) -> None:
        argv = [str(a) for a in cmd] if isinstance(cmd, (list, tuple)) else [str(cmd)]
        self._case.commands.append(argv)

    def run(self, cmd: Any, *a: Any, **kw: Any) -> Any:
        self._capture(cmd)
        if isinstance(cmd, (list, tuple)) and cmd and os.path.basename(str(cmd[0])) in self._pass:
            return self._real.run(cmd, *a, **kw)
        raise errors.EnvironmentBuildError(f"{BOUNDARY}: {os.path.basename(str(cmd[0]))}")

    def Popen(self, cmd: Any, *a: Any, **kw: Any) -> Any:  # noqa: N802 - the name it stands in for
        self._capture(cmd)
        raise errors.ReplayExecutionError(f"{BOUNDARY}: runner")


@contextlib.contextmanager
def sandboxed(case: Case) -> Iterator[pytest.MonkeyPatch]:
    import subprocess

    from reproflow.export import _uvlock
    from reproflow.replay import _envbuild, _execute, _source

    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("REPROFLOW_CACHE_DIR", str(case.sandbox / "cache"))
        mp.setenv("HOME", str(case.sandbox / "home"))
        mp.setenv("TMPDIR", str(case.sandbox / "tmp"))
        mp.setenv("COLUMNS", "200")
        mp.delenv("REPROFLOW_STORE", raising=False)
        mp.setattr(tempfile, "tempdir", str(case.sandbox / "tmp"))
        mp.chdir(case.sandbox / "work")
        mp.setattr(_envbuild, "subprocess", _Boundary(subprocess, case))
        mp.setattr(_execute, "subprocess", _Boundary(subprocess, case))
        mp.setattr(_uvlock, "subprocess", _Boundary(subprocess, case))
        mp.setattr(_source, "subprocess", _Boundary(subprocess, case, ("git",)))
        yield mp
    finally:
        mp.undo()


def cli(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = run_cli(app, args)
        except Exception as exc:  # noqa: BLE001 - what run_cli lets through is a traceback for the user
            import traceback

            return 1, err.getvalue() + "Traceback (most recent call last):\n" + "".join(
                traceback.format_exception(exc)[-3:])
    return code, err.getvalue()


# ------------------------------------------------------------------ one case


@dataclass
class Outcome:
    field: str
    value: str
    results: list[str] = field(default_factory=list)  #: per command run: refused / boundary / exported

    @property
    def handled(self) -> bool:
        return bool(self.results)


def _check_refusal(code: int, err: str, what: str) -> str:
    assert "Traceback" not in err, f"{what}: traceback\n{err}"
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    if code == 0:
        return "ok"
    assert len(lines) == 1 and lines[0].startswith("error:"), f"{what}: exit {code} without one error line:\n{err}"
    return "boundary" if BOUNDARY in lines[0] else "refused"


def _check_commands(case: Case, v: str) -> None:
    """No word of a captured command came from the record as an option or with a control
    character (git's words are its own; the recorded commit is checked a plain revision)."""
    for argv in case.commands:
        prog = os.path.basename(argv[0])
        for word in argv[1:]:
            if v.startswith("-") and v not in ("-", "--") and (word == v or word.startswith(v)):
                raise AssertionError(f"{case.field}={case.value!r}: {prog} got the record's value as an option: {argv}")
            if any(c in word for c in "\x00\n\r"):
                raise AssertionError(f"{case.field}={case.value!r}: {prog} got a control character: {argv}")


_SHELL = re.compile(r"[;&|`$<>(){}\n\r\x00]")


def _check_export(case: Case, name: str, text: str, raw: str) -> None:
    """An export that was written: no line of it made by the record, nothing of the record
    unquoted in a shell line."""
    v = fill(raw, case)
    if name == "dockerfile":
        keywords = ("FROM", "RUN", "ENV", "LABEL", "COPY", "ADD", "WORKDIR", "CMD", "ARG", "#")
        prev = ""
        for line in text.splitlines():
            assert not line or line.startswith(keywords) or prev.endswith("\\"), f"{case.field}={raw!r}: injected line {line!r}"
            prev = line
    if name == "requirements":
        for line in text.splitlines():
            if line.strip() and not line.startswith("#"):
                assert not line.startswith("-") or line.startswith("-e /"), f"{case.field}={raw!r}: option line {line!r}"
    if v and _SHELL.search(v) and v in text:
        for line in _shell_lines(name, text):
            if v in line:
                quoted = shlex.quote(v) in line or json.dumps(v) in line
                assert quoted, f"{case.field}={raw!r}: unquoted in a shell line of {name}: {line!r}"
    for ch in ("\x00", "\r", "\u2028"):
        assert ch not in text, f"{case.field}={raw!r}: control character in {name}"


def _shell_lines(name: str, text: str) -> list[str]:
    """The lines of an export a shell runs: a Dockerfile's RUN (and CMD) with their continuation
    lines, an Apptainer definition's %post, %runscript and %environment sections."""
    out: list[str] = []
    if name == "dockerfile":
        inside = False
        for line in text.splitlines():
            if not inside:
                inside = line.startswith(("RUN ", "CMD "))
            if inside:
                out.append(line)
                inside = line.endswith("\\")
    elif name == "apptainer":
        section = ""
        for line in text.splitlines():
            if line.startswith("%"):
                section = line.split()[0]
            elif section in ("%post", "%runscript", "%environment"):
                out.append(line)
    return out


def _pack(case: Case, raw: str) -> list[tuple[int, str]]:
    from reproflow.pack._format import tar_info

    v = fill(raw, case)
    rid = "0f0e0d0c-0000-4000-8000-000000000001"
    record = b'{"schema_version":"1.2"}'
    members = {f"store/runs/{rid}/run.json": record}
    run_id = rid
    if case.field == "pack member name":
        members[v] = b"x"
    else:
        run_id = v
    manifest = {"format": "reproflow-pack", "format_version": "1.0", "run_id": run_id,
                "members": {n: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in members.items()}}
    path = case.sandbox / "work" / "p.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        head = json.dumps(manifest).encode()
        tar.addfile(tar_info("reproflow-pack.json", len(head)), io.BytesIO(head))
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return [cli(["unpack", str(path), "--store", str(case.sandbox / "store2")]), cli(["replay", str(path), "--dry-run"])]


def try_case(field_name: str, raw: str, base: Path) -> Outcome:
    """Run one case in a fresh sandbox under ``base``; raise AssertionError on any broken promise."""
    case = _prepare(base)
    case.field, case.value = field_name, raw
    stage, setter = FIELDS[field_name]
    v = fill(raw, case)
    globals_before = {p: os.path.lexists(p) for p in GLOBAL}
    spec = base_spec(case)
    outcome = Outcome(field_name, raw)
    outside_before, inside_before = snapshot(case.outside), snapshot(case.sandbox)
    with sandboxed(case):
        if stage == "pack":
            runs = _pack(case, raw)
            for code, err in runs:
                outcome.results.append(_check_refusal(code, err, f"{field_name}={raw!r}"))
        else:
            setter(spec, v)
            run_id = write_spec(spec)
            inside_before = snapshot(case.sandbox)
            store = str(case.sandbox / "store")
            if stage == "export":
                for fmt in ("dockerfile", "apptainer", "requirements"):
                    out = case.sandbox / "work" / f"export.{fmt}"
                    code, err = cli(["export", run_id, "--format", fmt, "-o", str(out), "--store", store])
                    res = _check_refusal(code, err, f"{field_name}={raw!r} export {fmt}")
                    if res == "ok":
                        _check_export(case, fmt, out.read_text(), raw)
                        out.unlink()
                        res = "exported"
                    outcome.results.append(res)
                code, err = cli(["export", run_id, "--format", "pylock", "-o", str(case.sandbox / "work" / "p.toml"),
                                 "--store", store])
                outcome.results.append(_check_refusal(code, err, f"{field_name}={raw!r} export pylock"))
            else:
                args = ["replay", run_id, "--store", store, "--json"]
                extra = list(spec.args)
                if stage == "tasks" and "--engine" not in extra:
                    extra += ["--engine", "tasks"]
                if "--rebuild" in extra:
                    extra.remove("--rebuild")
                    extra += ["--python", sys.executable]
                else:
                    extra.append("--in-place")
                code, err = cli(args + extra)
                outcome.results.append(_check_refusal(code, err, f"{field_name}={raw!r} replay"))
                code, err = cli(["replay", run_id, "--store", store, "--dry-run", *extra])
                assert "Traceback" not in err, f"{field_name}={raw!r} dry run: traceback\n{err}"
                _check_commands(case, v)
    _check_fs(case, raw, v, outside_before, inside_before, globals_before)
    return outcome


def _check_fs(case: Case, raw: str, v: str, outside_before: dict[str, tuple[str, str]],
              inside_before: dict[str, tuple[str, str]], globals_before: dict[str, bool]) -> None:
    what = f"{case.field}={raw!r}"
    outside_after = snapshot(case.outside)
    allowed: set[str] = set()
    if case.field == "task.input stored copy at its path" and v.replace("file://", "").startswith(str(case.outside)):
        # documented: an input missing at its recorded path is restored there from its stored
        # copy (only when missing: nothing is overwritten or deleted)
        allowed = {os.path.relpath(v.replace("file://", ""), case.outside)}
    changed = {k for k in set(outside_before) | set(outside_after) if outside_before.get(k) != outside_after.get(k)}
    assert not (changed - allowed), f"{what}: written or deleted outside the sandbox: {sorted(changed - allowed)}"
    assert all(k not in outside_before for k in changed), f"{what}: changed outside: {sorted(changed)}"
    inside_after = snapshot(case.sandbox)
    lost = {k for k, meta in inside_before.items() if inside_after.get(k) != meta and meta[0] != "dir"}
    assert not lost, f"{what}: deleted or changed what it did not create: {sorted(lost)}"
    for p, existed in globals_before.items():
        if not existed:
            assert not os.path.lexists(p), f"{what}: created {p}"


def _one(pair: tuple[str, str]) -> tuple[str, str, Outcome | str]:
    name, raw = pair
    with tempfile.TemporaryDirectory(prefix="rf-hostile-") as tmp:
        try:
            return name, raw, try_case(name, raw, Path(tmp))
        except AssertionError as exc:
            return name, raw, str(exc)


def sweep(fields: list[str] | None = None, values: list[str] | None = None, jobs: int = 1) -> dict[str, int]:
    """Every field with every value (the numbers in docs/security.md); broken cases are printed."""
    names = fields or list(FIELDS)
    pairs = [(n, v) for n in names for v in (values or VALUES)]
    counts = {"fields": len(names), "cases": 0, "handled": 0, "calls": 0, "refusals": 0, "tracebacks": 0,
              "broken": 0}
    with contextlib.ExitStack() as stack:
        if jobs > 1:
            import multiprocessing

            pool = stack.enter_context(multiprocessing.get_context("fork").Pool(jobs))
            results: Any = pool.imap_unordered(_one, pairs)
        else:
            results = map(_one, pairs)
        for name, raw, out in results:
            _count(counts, name, raw, out)
    return counts


def _count(counts: dict[str, int], name: str, raw: str, out: Outcome | str) -> None:
    counts["cases"] += 1
    if isinstance(out, str):
        counts["broken"] += 1
        counts["tracebacks"] += "traceback" in out
        print(f"BROKEN {name}={raw!r}: {out[:600]}", flush=True)
        return
    counts["handled"] += out.handled
    counts["calls"] += len(out.results)
    counts["refusals"] += sum(r == "refused" for r in out.results)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fields", nargs="*", help="field kinds to try (default: all)")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="cases at once (processes)")
    opts = parser.parse_args()
    result = sweep(opts.fields or None, jobs=opts.jobs)
    print(json.dumps(result))
    sys.exit(1 if result["broken"] else 0)
