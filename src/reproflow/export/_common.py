"""What every exporter needs: the loaded run, its environment, and a classified list of pins."""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import re
from collections.abc import Iterable
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from packaging.utils import canonicalize_name

from ..errors import ExportError
from ..records import DataRef, Distribution, Environment, ProcessContext, Run, TaskRecord
from ..store import Store

PinKind = Literal["index", "vcs", "editable", "local", "archive"]

#: Debian release per glibc version shipped with it: the python:*-slim-<codename> images are
#: Debian-based, so a recorded glibc picks the oldest Debian whose glibc is at least as new.
_DEBIAN_BY_VERSION = {"10": "buster", "11": "bullseye", "12": "bookworm", "13": "trixie"}
_DEBIAN_BY_GLIBC = [((2, 28), "buster"), ((2, 31), "bullseye"), ((2, 36), "bookworm"), ((2, 41), "trixie")]

#: Newest patch release of each CUDA minor that NVIDIA publishes as nvidia/cuda runtime images.
_CUDA_PATCH = {
    "11.8": "11.8.0", "12.0": "12.0.1", "12.1": "12.1.1", "12.2": "12.2.2", "12.3": "12.3.2",
    "12.4": "12.4.1", "12.5": "12.5.1", "12.6": "12.6.3", "12.8": "12.8.1", "12.9": "12.9.1",
    "13.0": "13.0.1",
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Pin:
    """One recorded distribution, classified by how it can be installed again."""

    name: str  #: as in METADATA
    version: str
    kind: PinKind
    url: str | None = None  #: VCS repository / archive URL
    commit: str | None = None  #: VCS commit id
    requested_revision: str | None = None
    path: str | None = None  #: local directory or archive path (editable/local/archive)
    sha256: str | None = None  #: archive hash where PEP 610 recorded one
    source_blob: str | None = None  #: stored source archive of a local package
    vcs: str | None = None

    @property
    def normalized(self) -> str:
        return canonicalize_name(self.name)

    def requirement(self) -> str:
        """The pip/uv requirement line that installs exactly this pin (no options)."""
        if self.kind == "index":
            return f"{self.name}=={self.version}"
        if self.kind == "vcs":
            ref = f"@{self.commit}" if self.commit else ""
            return f"{self.name} @ {self.vcs or 'git'}+{self.url}{ref}"
        if self.kind == "archive":
            return f"{self.name} @ {self.url}"
        assert self.path is not None
        return f"-e {self.path}" if self.kind == "editable" else self.path


def classify(dist: Distribution) -> Pin:
    """Turn a recorded distribution and its PEP 610 origin into a :class:`Pin`."""
    du = dist.direct_url
    if du is None:
        return Pin(dist.name, dist.version, "index")
    sha = None
    if du.archive_hash and du.archive_hash.startswith("sha256="):
        sha = du.archive_hash.split("=", 1)[1]
    if du.vcs:
        return Pin(
            dist.name, dist.version, "vcs", url=du.url, commit=du.commit_id,
            requested_revision=du.requested_revision, vcs=du.vcs,
        )  # fmt: skip
    local = _file_path(du.url)
    if du.editable:
        return Pin(dist.name, dist.version, "editable", url=du.url, path=local or du.url, source_blob=dist.source_blob)
    if local is not None and not _looks_like_archive(local):
        return Pin(dist.name, dist.version, "local", url=du.url, path=local, source_blob=dist.source_blob)
    return Pin(dist.name, dist.version, "archive", url=du.url, path=local, sha256=sha, source_blob=dist.source_blob)


def _file_path(url: str) -> str | None:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    return None


def _looks_like_archive(path: str) -> bool:
    return path.endswith((".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar"))


_ARCHIVE_HASH = re.compile(r"^[a-z0-9]{2,16}=[0-9a-f]{32,128}$")


def export_problems(run: Run, env: Environment) -> list[str]:
    """One line per record field that would go unsafely into an exported file (a Dockerfile's
    ``RUN`` line, an Apptainer ``%post`` script, a requirements line, a label): pins that are no
    PEP 508 name, PEP 440 version or plain URL, a commit that is no git object name, a Python
    version that is no version, and text with a control character (a newline would start a new
    instruction). Empty: nothing found."""
    from ..replay._envbuild import pin_problem
    from ..values import _untrusted as u

    assert run.context is not None
    ctx, rec, py, plat = run.context, run.record, env.python, env.platform
    checks: list[str | None] = [
        u.python_version_problem(py.version, "recorded Python version"),
        u.implementation_problem(py.implementation, "recorded Python implementation"),
        *(u.text_problem(v, f"platform {k}") for k, v in plat.model_dump().items()),
        u.text_problem(rec.flow_name, "flow name"),
        u.text_problem(rec.entrypoint, "flow entrypoint"),
        u.module_problem(rec.module),
        u.module_problem(rec.main_module, "main module", qualname=False),
        u.hashseed_problem(rec.pythonhashseed),
        u.text_problem(ctx.git.root, "git root"),
        u.text_problem(ctx.source.root, "source snapshot root"),
        u.cuda_problem(ctx.hardware.cuda_driver_version),
    ]
    if ctx.git.available:
        checks += [u.commit_problem(ctx.git.commit), u.word_problem(ctx.git.remote_url, "git remote URL"),
                   u.text_problem(ctx.git.diff_blob, "git diff blob")]
    checks += [u.text_problem(p, "sys.path entry") for p in env.sys_path]
    for x in [*env.index_urls, *env.find_links]:  # a URL, or a folder of distribution files
        checks.append(u.url_problem(x, "index URL") and u.local_path_problem(x, "index URL or folder"))
    for dist in env.distributions:
        checks.append(pin_problem(dist))
        du = dist.direct_url
        if du is None or du.vcs:
            continue
        if du.url.startswith("file://"):
            checks.append(u.local_path_problem(du.url, f"{dist.name}: local URL"))
        else:
            checks.append(u.url_problem(du.url, f"{dist.name}: archive URL"))
        if du.archive_hash is not None and not _ARCHIVE_HASH.match(du.archive_hash):
            checks.append(f"{dist.name}: archive hash {u.show(du.archive_hash)} is not algorithm=hex")
        checks.append(u.text_problem(dist.source_blob, f"{dist.name}: source blob"))
    return list(dict.fromkeys(c for c in checks if c))


@dataclasses.dataclass
class ExportContext:
    """A run with everything exporters read, loaded once."""

    store: Store
    run: Run
    environment: Environment
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: what the user should know about the result (a partial lock, ...); the CLI prints them
    notes: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def load(cls, store: Store, run_id: str, **options: Any) -> ExportContext:
        run = store.load_run(run_id)
        if run.context is None:  # pragma: no cover - load_run always loads it
            raise ExportError(f"run {run_id} has no process context; it cannot be exported")
        env = store.get_model_blob(run.context.environment_blob, Environment)
        problems = export_problems(run, env)
        if problems:  # a record is untrusted: nothing it says may become a command or a line
            from ..errors import UnsafeRecord

            raise UnsafeRecord.because(problems[0])
        if options.get("only_imported"):
            imported = run.end.imported_distributions if run.end is not None else None
            if imported is None:
                raise ExportError(
                    f"run {run.run_id} has no record of the distributions it imported (it is still running, "
                    f"ran its tasks in other processes, or was recorded before schema 1.3); drop --only-imported"
                )
            keep = set(imported)
            kept = [d for d in env.distributions if canonicalize_name(d.name) in keep]
            options["_installed_count"] = len(env.distributions)
            env = env.model_copy(update={"distributions": kept})
        return cls(store=store, run=run, environment=env, options=options)

    def imported(self) -> set[str] | None:
        """Normalised names of the distributions the run imported, or None where not recorded."""
        names = self.run.end.imported_distributions if self.run.end is not None else None
        return None if names is None else set(names)

    @property
    def context(self) -> ProcessContext:
        assert self.run.context is not None
        return self.run.context

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def pins(self, *, exclude: Iterable[str] = ()) -> list[Pin]:
        """Every recorded distribution as a pin, sorted by normalized name."""
        skip = {canonicalize_name(n) for n in exclude}
        pins = [classify(d) for d in self.environment.distributions]
        return sorted((p for p in pins if p.normalized not in skip), key=lambda p: p.normalized)

    def distribution(self, name: str) -> Distribution | None:
        want = canonicalize_name(name)
        for d in self.environment.distributions:
            if canonicalize_name(d.name) == want:
                return d
        return None

    def python_version(self) -> str:
        return self.environment.python.version

    def python_minor(self) -> str:
        return ".".join(self.python_version().split(".")[:2])

    def tasks(self) -> list[TaskRecord]:
        return self.run.final_tasks()

    def header_lines(self, what: str) -> list[str]:
        """A few comment lines saying where an exported file came from."""
        rec = self.run.record
        py = self.environment.python
        plat = self.environment.platform
        lines = [
            f"{what} generated by reproflow from run {rec.run_id} (flow {rec.flow_name!r})",
            f"recorded with {py.implementation} {py.version} on {plat.distro or plat.system} ({plat.machine})",
        ]
        git = self.context.git
        if git.available and git.commit:
            dirty = " with uncommitted changes" if git.dirty else ""
            lines.append(f"code at commit {git.commit}{dirty}")
        if self.options.get("only_imported"):
            lines.append(f"only the {len(self.environment.distributions)} distributions the run imported "
                         f"(of {self.options['_installed_count']} installed): dev tools and unused packages left out")  # fmt: skip
        return lines

    # ------------------------------------------------------------------ data
    def external_inputs(self) -> list[DataRef]:
        """Inputs read by tasks that no task of this run produced (the run's data), deduplicated."""
        produced = {(d.uri, d.sha256) for t in self.tasks() for d in t.outputs}
        seen: dict[tuple[str, str | None], DataRef] = {}
        for t in self.tasks():
            for d in t.inputs:
                key = (d.uri, d.sha256)
                if key not in produced and key not in seen:
                    seen[key] = d
        return list(seen.values())

    def final_outputs(self) -> list[DataRef]:
        """Outputs of the run's tasks, deduplicated by (uri, sha256)."""
        seen: dict[tuple[str, str | None], DataRef] = {}
        for t in self.tasks():
            for d in t.outputs:
                seen.setdefault((d.uri, d.sha256), d)
        return list(seen.values())

    # ------------------------------------------------------------------ entry point
    def entrypoint(self) -> tuple[str, str] | None:
        """(path relative to the source root, function name) of the flow, where recorded."""
        ep = self.run.record.entrypoint
        if ep and ":" in ep:
            path, func = ep.rsplit(":", 1)
            return path, func
        return None

    def plain_parameters(self, *, code_dir: str | None = None) -> tuple[dict[str, Any], list[str]]:
        """Flow parameters as plain JSON (what a Prefect flow validates back), and the names of
        those that cannot be given so: opaque ones, and objects recorded by their state (an
        ``argparse.Namespace``, a plain class), which validation does not build from a dict.

        Args:
            code_dir: where the recorded code lives now (``/app`` in a container); absolute path
                parameters inside the recorded source root are moved there.
        """
        from ..values._typed import from_typed_json, has_opaque, has_state_object

        out: dict[str, Any] = {}
        opaque: list[str] = []
        for name, value in self.run.record.parameters.items():
            if has_opaque(value) or has_state_object(value):
                opaque.append(name)
                continue
            # Instances (dataclasses, pydantic models, enums ...) as their plain fields, which the
            # flow's parameter validation builds back; no user code is imported here.
            out[name] = _to_plain(self._relocate(from_typed_json(value, rebuild=False), code_dir))
        return out, opaque

    def _relocate(self, value: Any, code_dir: str | None) -> Any:
        if code_dir is None:
            return value
        if isinstance(value, dict):
            return {k: self._relocate(v, code_dir) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._relocate(v, code_dir) for v in value)
        if isinstance(value, os.PathLike) and os.path.isabs(os.fspath(value)):
            rel = self.relative_to_root(os.fspath(value))
            if rel is not None:
                return code_dir if rel == "." else posixpath.join(code_dir, rel)
        return value

    def outside_paths(self, code_dir: str) -> list[tuple[str, str]]:
        """(parameter, path) of absolute path parameters that lie outside the recorded code, which
        a container will not have unless they are mounted."""
        params, _ = self.plain_parameters(code_dir=code_dir)
        out = []
        for name, value in params.items():
            if isinstance(value, str) and os.path.isabs(value) and not value.startswith(code_dir.rstrip("/") + "/"):
                raw = self.run.record.parameters.get(name)
                if isinstance(raw, dict) and raw.get("__rf__") == "path":
                    out.append((name, value))
        return out

    def launch_command(self, *, code_dir: str | None = None) -> list[str] | None:
        """An exec-form command that calls the flow with its recorded parameters, or None.

        A flow whose module is importable under its recorded name (a package's module, or one run
        as ``python -m NAME``) is imported by that name, so that its relative imports work; a
        flow script is loaded from its file."""
        ep = self.entrypoint()
        if ep is None:
            return None
        params, _ = self.plain_parameters(code_dir=code_dir)
        path, func = ep
        module = self.importable_module()
        if module is not None:
            return ["python", "-c", MODULE_LAUNCHER, module, func, json.dumps(params, sort_keys=True)]
        return ["python", "-c", LAUNCHER, path, func, json.dumps(params, sort_keys=True)]

    def importable_module(self) -> str | None:
        """The flow's module name where it is a package's module (``pkg.flows``; relative imports
        need the package) or ran as ``python -m NAME``, and the entrypoint's file is that
        module's file under the code's root (``src/pkg/flows.py``); else None (a top-level
        module or a script loads from its file as before)."""
        rec, ep = self.run.record, self.entrypoint()
        module = rec.module.partition(":")[0] if rec.module else None
        if not module or ep is None or os.path.isabs(ep[0]) or ("." not in module and not rec.main_module):
            return None
        rel = ep[0].replace(os.sep, "/")
        stem = module.replace(".", "/")
        for tail in (stem + ".py", stem + "/__init__.py"):
            if rel == tail or rel.endswith("/" + tail):
                return module
        return None

    # ------------------------------------------------------------------ base images
    def debian_codename(self) -> str:
        """The Debian release for a python:*-slim image closest to the recorded OS."""
        plat = self.environment.platform
        if (plat.distro_id or "").lower() == "debian" and plat.distro_version:
            major = plat.distro_version.split(".")[0]
            if major in _DEBIAN_BY_VERSION:
                return _DEBIAN_BY_VERSION[major]
        glibc = _glibc_version(plat.libc)
        if glibc is not None:
            for limit, codename in _DEBIAN_BY_GLIBC:
                if glibc <= limit:
                    return codename
            return _DEBIAN_BY_GLIBC[-1][1]
        return "bookworm"

    def python_image(self) -> str:
        return f"python:{self.python_version()}-slim-{self.debian_codename()}"

    def cuda_image(self) -> str | None:
        """An nvidia/cuda runtime image matching the recorded driver's CUDA version, if a GPU ran."""
        hw = self.context.hardware
        if not hw.gpus:
            return None
        cuda = hw.cuda_driver_version or "12.4"
        minor = ".".join(cuda.split(".")[:2])
        patch = _CUDA_PATCH.get(minor)
        if patch is None:  # an unknown newer CUDA: the newest we know that the driver supports
            known = sorted(_CUDA_PATCH, key=lambda v: tuple(int(x) for x in v.split(".")))
            fitting = [k for k in known if _vtuple(k) <= _vtuple(minor)] or known[:1]
            patch = _CUDA_PATCH[fitting[-1]]
        ubuntu = "24.04" if _vtuple(patch) >= (13, 0) else "22.04"
        return f"nvidia/cuda:{patch}-runtime-ubuntu{ubuntu}"

    def uv_version(self) -> str:
        d = self.distribution("uv")
        if d is not None:
            return d.version
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("uv")
        except PackageNotFoundError:  # pragma: no cover - uv is a dependency of reproflow
            return "latest"

    def code_location(self) -> tuple[str | None, str | None]:
        """(remote URL, commit) of the recorded code, where git knew both."""
        git = self.context.git
        if git.available and git.remote_url and git.commit:
            return git.remote_url, git.commit
        return None, git.commit if git.available else None

    def relative_to_root(self, path: str) -> str | None:
        """A local path relative to the git/source root, if it lies inside it."""
        root = self.context.git.root or self.context.source.root
        if not root:
            return None
        try:
            rel = os.path.relpath(path, root)
        except ValueError:
            return None
        if rel == os.curdir:
            return "."
        if rel.startswith(os.pardir):
            return None
        return posixpath.join(*rel.split(os.sep))


#: A one-line launcher: run the flow file, call the flow function with JSON parameters.
LAUNCHER = (
    "import json,runpy,sys; f,n,p=sys.argv[1:4]; "
    "ns=runpy.run_path(f, run_name='__reproflow__'); ns[n](**json.loads(p))"
)
MODULE_LAUNCHER = (
    "import importlib,json,sys; m,n,p=sys.argv[1:4]; "
    "getattr(importlib.import_module(m), n)(**json.loads(p))"
)


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_to_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _glibc_version(libc: str | None) -> tuple[int, int] | None:
    if not libc or "glibc" not in libc:
        return None
    try:
        major, minor = libc.split()[-1].split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return None


def _vtuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".") if x.isdigit())


def shell_quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
