"""CRESP (Computational Research Environment Standardization Protocol), both ways.

Export writes ``cresp.toml`` in the layout of the protocol's documentation, as TOML 1.0:
top-level ``cresp_version``, ``experiment_name``, ``random_seed`` (before any table), then
``[hardware]``, ``[software]`` with ``[[software.packages]]``, ``[pyproject]``, ``[[data]]``,
``[execution]`` and ``[version]``.

Import reads the three dialects in circulation into one :class:`CrespImport`:

* ``docs``: the protocol documentation's layout (what export writes);
* ``template``: the cookiecutter template's ``cresp.toml`` (``[experiment]``,
  ``[[datasets]]``, ``[execution] main_command``), which uses TOML 1.1 multi-line inline
  tables and so needs ``tomli>=2.4``;
* ``yaml``: the CRESP tool's ``cresp.yaml`` (``metadata``, ``stages[].outputs[]`` with hashes,
  ``reproduction.random_seed``).

What maps becomes fields; what does not is kept in ``unmapped`` so nothing is silently lost.
"""

from __future__ import annotations

import os
from typing import Any, Literal, Optional

from pydantic import BaseModel, Field

from ..capture._files import hash_local
from ..errors import ExportError
from ._common import ExportContext

CRESP_VERSION = "1.0"


# ------------------------------------------------------------------------------------ export
def _gb(n: int | None) -> str | None:
    return f"{round(n / (1 << 30))}GB" if n else None


def export_cresp(ctx: ExportContext) -> str:
    """Render cresp.toml (TOML 1.0, written with tomli_w; parse it back with tomllib)."""
    rec = ctx.run.record
    hw = ctx.context.hardware
    env = ctx.environment
    doc: dict[str, Any] = {
        "cresp_version": CRESP_VERSION,
        "experiment_name": rec.flow_name,
        "description": f"Prefect flow {rec.flow_name!r}, run {rec.run_id}"
        + (f" ({rec.flow_run_name})" if rec.flow_run_name else "") + ", recorded by reproflow",
        "date": rec.started_at.date().isoformat(),
    }
    if rec.seed is not None:
        doc["random_seed"] = rec.seed
    hardware: dict[str, Any] = {}
    if hw.cpu.model:
        cores = f", {hw.cpu.logical_cores} cores" if hw.cpu.logical_cores else ""
        hardware["CPU"] = f"{hw.cpu.model}{cores}"
    if hw.gpus:
        first = hw.gpus[0]
        mem = f", {_gb(first.memory_total_bytes)}" if first.memory_total_bytes else ""
        hardware["GPU"] = f"{first.name}{mem} x{len(hw.gpus)}"
    if hw.memory_total_bytes:
        hardware["RAM"] = _gb(hw.memory_total_bytes)
    if hardware:
        doc["hardware"] = hardware
    packages: list[dict[str, Any]] = [
        {"name": "Python", "version": env.python.version, "source": env.python.implementation.lower()}
    ]
    if ctx.options.get("hashes"):
        from ._pylock import check_complete
        from ._uvlock import lock_index_pins

        check_complete(ctx, "cresp.toml with --hashes", len(ctx.pins()), lock_index_pins(ctx, ctx.pins()).skipped)
    for pin in ctx.pins():
        pkg: dict[str, Any] = {"name": pin.name, "version": pin.version, "source": "pip" if pin.kind == "index" else pin.kind}
        if pin.sha256:
            pkg["hash"] = pin.sha256
        elif pin.kind == "index" and ctx.options.get("hashes"):
            from ._requirements import best_index_hash

            digest = best_index_hash(ctx, pin)  # the file this platform would install
            if digest:
                pkg["hash"] = digest
        if pin.kind == "vcs":
            pkg["url"] = f"{pin.vcs or 'git'}+{pin.url}@{pin.commit}"
        elif pin.kind in ("editable", "local", "archive") and (pin.path or pin.url):
            pkg["url"] = pin.url or pin.path
        packages.append(pkg)
    doc["software"] = {"os": env.platform.distro or f"{env.platform.system} {env.platform.release}",
                       "packages": packages}  # fmt: skip
    doc["pyproject"] = {
        "project": {
            "name": rec.flow_name,
            "requires-python": f"=={ctx.python_minor()}.*",
            "dependencies": [p.requirement() for p in ctx.pins() if p.kind not in ("editable", "local")],
        }
    }
    data = []
    for ref in ctx.external_inputs():
        source = ref.uri
        if "://" not in source and os.path.isabs(source):  # inside the code: relative, as CRESP reads it
            source = ctx.relative_to_root(source) or source
        item: dict[str, Any] = {"name": os.path.basename(ref.uri.rstrip("/")) or ref.uri, "source": source}
        if ref.sha256:
            item["sha256"] = ref.sha256
        if ref.size is not None:
            item["size_bytes"] = ref.size
        data.append(item)
    if data:
        doc["data"] = data
    execution: dict[str, Any] = {"verify_script": f"reproflow replay {rec.run_id} --dry-run"}
    command = _command(ctx)
    if command:
        execution["command"] = command
    doc["execution"] = execution
    git = ctx.context.git
    if git.available and git.commit:
        version: dict[str, Any] = {"commit": git.commit}
        if git.remote_url:
            version["repo"] = git.remote_url
        if git.branch:
            version["branch"] = git.branch
        version["dirty"] = git.dirty
        doc["version"] = version
    header = "".join(f"# {line}\n" for line in ctx.header_lines("cresp.toml"))
    return header + _render(doc)


def _command(ctx: ExportContext) -> str | None:
    """The command line that was run, from the repository root where cresp.toml sits: the
    recorded argv (``python <script> <args>``, ``python -m <module> <args>``, or a console script
    by name), else the flow's file
    when the argv says nothing reusable (``python -c``, an interactive session)."""
    import shlex

    rec = ctx.run.record
    argv = list(rec.argv)
    cwd = rec.cwd
    prefix = ""
    if cwd:
        rel_cwd = ctx.relative_to_root(cwd)
        if rel_cwd not in (None, "."):
            prefix = f"cd {shlex.quote(rel_cwd)} && "
    if argv and rec.main_module:  # ``python -m NAME ARGS``: argv[0] was the module's file
        return prefix + shlex.join(["python", "-m", rec.main_module, *argv[1:]])
    if argv and argv[0] not in ("", "-c", "-"):
        first = argv[0]
        if os.path.isabs(first) and cwd:
            inside = os.path.relpath(first, cwd)
            first = inside if not inside.startswith(os.pardir) else first
        if first.endswith(".py"):
            return prefix + shlex.join(["python", first, *argv[1:]])
        return prefix + shlex.join([os.path.basename(first), *argv[1:]])
    ep = ctx.entrypoint()
    return f"python {shlex.quote(ep[0])}" if ep is not None else None


def _render(doc: dict[str, Any]) -> str:
    """TOML 1.0 in CRESP's documented shape: scalars first, then one header per table and
    ``[[software.packages]]`` / ``[[data]]`` as arrays of tables (tomli_w alone would inline
    short ones)."""
    import tomli_w

    def table(name: str, body: dict[str, Any], aot: bool = False) -> str:
        head = f"[[{name}]]" if aot else f"[{name}]"
        return f"\n{head}\n" + tomli_w.dumps(body)

    scalars = {k: v for k, v in doc.items() if not isinstance(v, dict) and k != "data"}
    out = tomli_w.dumps(scalars)
    if "hardware" in doc:
        out += table("hardware", doc["hardware"])
    software = dict(doc["software"])
    packages = software.pop("packages", [])
    out += table("software", software)
    for pkg in packages:
        out += table("software.packages", pkg, aot=True)
    out += table("pyproject.project", doc["pyproject"]["project"])
    for item in doc.get("data", []):
        out += table("data", item, aot=True)
    out += table("execution", doc["execution"])
    if "version" in doc:
        out += table("version", doc["version"])
    return out


# ------------------------------------------------------------------------------------ import
class CrespPackage(BaseModel):
    name: str
    version: Optional[str] = None
    source: Optional[str] = None
    hash: Optional[str] = None
    url: Optional[str] = None

    def requirement(self, *, with_hash: bool = True) -> Optional[str]:
        """A pip requirement for Python packages (None for Python itself or non-pip sources)."""
        if self.name.lower() == "python":
            return None
        if self.url and self.url.startswith(("git+", "hg+", "svn+", "bzr+")):
            return f"{self.name} @ {self.url}"
        if self.source not in (None, "pip", "pypi", "uv") or not self.version:
            return None
        line = f"{self.name}=={self.version}"
        if with_hash and self.sha256:
            line += f" --hash=sha256:{self.sha256}"
        return line

    @property
    def sha256(self) -> Optional[str]:
        """The hash as a sha256 hex digest, where it is one."""
        h = (self.hash or "").lower().removeprefix("sha256:")
        return h if len(h) == 64 and all(c in "0123456789abcdef" for c in h) else None


class CrespData(BaseModel):
    name: Optional[str] = None
    source: str  #: URL or path as written
    sha256: Optional[str] = None
    size_bytes: Optional[int] = None


class DataCheck(BaseModel):
    """Whether a CRESP data entry's file still hashes to its recorded sha256."""

    source: str
    path: Optional[str] = None
    expected: Optional[str] = None
    actual: Optional[str] = None
    status: Literal["ok", "changed", "missing", "remote", "no-hash"]


class CrespImport(BaseModel):
    """What a cresp.toml / cresp.yaml says, in one shape whatever its dialect."""

    dialect: Literal["docs", "template", "yaml"]
    path: str
    cresp_version: Optional[str] = None
    experiment_name: Optional[str] = None
    description: Optional[str] = None
    random_seed: Optional[int] = None
    python_version: Optional[str] = None
    os: Optional[str] = None
    hardware: dict[str, Any] = Field(default_factory=dict)
    packages: list[CrespPackage] = Field(default_factory=list)
    data: list[CrespData] = Field(default_factory=list)
    command: Optional[str] = None
    verify_script: Optional[str] = None
    repo: Optional[str] = None
    commit: Optional[str] = None
    environment_file: Optional[str] = None
    authors: list[str] = Field(default_factory=list)  #: "Name <email>"
    date: Optional[str] = None
    project_url: Optional[str] = None
    branch: Optional[str] = None
    pyproject: dict[str, Any] = Field(default_factory=dict)  #: the [pyproject] table as written
    #: every key no field above holds, by dotted path (``software.conda.channels``), with its value
    other: dict[str, Any] = Field(default_factory=dict)
    unmapped: list[str] = Field(default_factory=list)  #: the dotted paths of ``other``

    def requirements(self) -> str:
        """A requirements.txt of the pip packages it pins, with hashes only if every line can
        have one: pip refuses a file that mixes hashed and unhashed requirements."""
        lines = [f"# from {os.path.basename(self.path)} ({self.dialect} dialect of CRESP)"]
        if self.python_version:
            lines.append(f"# Python {self.python_version}")
        pinned = [p for p in self.packages if p.requirement(with_hash=False)]
        hashed = bool(pinned) and all(p.sha256 and p.requirement() != p.requirement(with_hash=False) for p in pinned)
        if not hashed and any(p.sha256 for p in pinned):
            missing = [p.name for p in pinned if not p.sha256 or p.requirement() == p.requirement(with_hash=False)]
            lines.append(f"# hashes left out: {len(missing)} of {len(pinned)} packages have none "
                         f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}), and pip "
                         "refuses a file that mixes hashed and unhashed lines")  # fmt: skip
        lines += [str(p.requirement(with_hash=hashed)) for p in pinned]
        return "\n".join(lines) + "\n"

    def check_data(self, root: str | os.PathLike[str] | None = None) -> list[DataCheck]:
        """Hash every local data entry (relative to ``root``, default the file's folder)."""
        base = os.fspath(root) if root is not None else os.path.dirname(os.path.abspath(self.path))
        out: list[DataCheck] = []
        for d in self.data:
            if "://" in d.source and not d.source.startswith("file://"):
                out.append(DataCheck(source=d.source, expected=d.sha256, status="remote"))
                continue
            path = d.source[len("file://") :] if d.source.startswith("file://") else d.source
            path = path if os.path.isabs(path) else os.path.join(base, path)
            if not d.sha256:
                out.append(DataCheck(source=d.source, path=path, status="no-hash"))
            elif not os.path.exists(path):
                out.append(DataCheck(source=d.source, path=path, expected=d.sha256, status="missing"))
            else:  # a folder hashes as reproflow's tree hash, as the export wrote it
                actual = str(hash_local(path).sha256)
                status: Literal["ok", "changed"] = "ok" if actual == d.sha256.lower() else "changed"
                out.append(DataCheck(source=d.source, path=path, expected=d.sha256, actual=actual, status=status))
        return out


def _toml_loads(text: str, path: str) -> dict[str, Any]:
    """Parse TOML, with a TOML 1.1 parser where one is installed (tomli >= 2.4)."""
    try:
        import tomli as toml_parser  # tomli >= 2.4 reads TOML 1.1 (multi-line inline tables)
    except ImportError:  # pragma: no cover - depends on the installed tomli
        import tomllib as toml_parser  # type: ignore[no-redef]
    try:
        return toml_parser.loads(text)
    except toml_parser.TOMLDecodeError as exc:
        hint = ""
        if _tomli_version() < (2, 4):
            hint = "; CRESP's template uses TOML 1.1 (multi-line inline tables): `pip install 'tomli>=2.4'`"
        raise ExportError(f"cannot parse {path} as TOML ({exc}){hint}") from None


def _tomli_version() -> tuple[int, ...]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return tuple(int(x) for x in version("tomli").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return (0,)


def import_cresp(path: str | os.PathLike[str]) -> CrespImport:
    """Read a cresp.toml or cresp.yaml (any of the three dialects) into a :class:`CrespImport`.

    Raises:
        ExportError: the file is missing, unparsable, or not a CRESP description.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ExportError(f"cannot read CRESP file {path}: {exc.strerror or exc}") from None
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ExportError(f"cannot parse {path} as YAML ({' '.join(str(exc).split())})") from None
        if not isinstance(data, dict):
            raise ExportError(f"{path} is not a CRESP description (expected a mapping)")
        return _from_yaml(data, path)
    data = _toml_loads(text, path)
    if "experiment" in data and isinstance(data["experiment"], dict):
        return _from_template(data, path)
    if "cresp_version" in data or "experiment_name" in data:
        return _from_docs(data, path)
    raise ExportError(
        f"{path} is not a CRESP description: no cresp_version, experiment_name or [experiment]"
    )


def _str(v: Any) -> Optional[str]:
    return None if v in (None, "") else str(v)


def _int(v: Any) -> Optional[int]:
    try:
        return None if v in (None, "") else int(v)
    except (TypeError, ValueError):
        return None


def _find(d: dict[str, Any], key: str) -> tuple[Any, Optional[str]]:
    """(value, dotted path) of ``key`` at the top level, else in whichever table holds it.

    A TOML key written after a table header belongs to that table: the protocol's own example
    writes ``random_seed`` after ``[matproject]`` and ``project_url`` after
    ``[virtualization.auto_scaling]``, so they parse as keys of those tables."""
    if key in d:
        return d[key], key
    stack: list[tuple[str, dict[str, Any]]] = [(k, v) for k, v in d.items() if isinstance(v, dict)]
    while stack:
        prefix, table = stack.pop(0)
        if key in table and not isinstance(table[key], dict):
            return table[key], f"{prefix}.{key}"
        stack += [(f"{prefix}.{k}", v) for k, v in table.items() if isinstance(v, dict)]
    return None, None


def _leftover(d: dict[str, Any], read: set[str], prefix: str = "") -> dict[str, Any]:
    """Everything in ``d`` whose dotted path is not in ``read`` (nor under a path in it)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        path = f"{prefix}{key}"
        if path in read:
            continue
        if isinstance(value, dict) and any(r.startswith(path + ".") for r in read):
            out.update(_leftover(value, read, path + "."))
        elif value not in (None, "", [], {}):
            out[path] = value
    return out


def _author(name: Any, email: Any) -> Optional[str]:
    name, email = _str(name), _str(email)
    if name and email:
        return f"{name} <{email}>"
    return name or email


def _from_docs(d: dict[str, Any], path: str) -> CrespImport:
    read = {"cresp_version", "author", "email", "date", "experiment_name", "description", "hardware",
            "software.os", "software.packages", "software.conda.environment_file", "pyproject", "data",
            "execution.command", "execution.verify_script", "version.repo", "version.commit",
            "version.branch"}  # fmt: skip
    software = d.get("software", {}) or {}
    packages = [
        CrespPackage(name=str(p.get("name")), version=_str(p.get("version")), source=_str(p.get("source")),
                     hash=_str(p.get("hash")), url=_str(p.get("url")))  # fmt: skip
        for p in software.get("packages", []) or []
        if isinstance(p, dict) and p.get("name")
    ]
    py = next((p.version for p in packages if p.name.lower() == "python"), None)
    data = [
        CrespData(name=_str(x.get("name")), source=str(x.get("source") or x.get("path") or ""),
                  sha256=_str(x.get("sha256")), size_bytes=_int(x.get("size_bytes")))  # fmt: skip
        for x in d.get("data", []) or []
        if isinstance(x, dict)
    ]
    execution = d.get("execution", {}) or {}
    version = d.get("version", {}) or {}
    seed, seed_at = _find(d, "random_seed")
    url, url_at = _find(d, "project_url")
    read |= {p for p in (seed_at, url_at) if p}
    conda = software.get("conda", {}) if isinstance(software.get("conda"), dict) else {}
    author = _author(d.get("author"), d.get("email"))
    other = _leftover(d, read)
    return CrespImport(
        dialect="docs",
        path=path,
        cresp_version=_str(d.get("cresp_version")),
        experiment_name=_str(d.get("experiment_name")),
        description=_str(d.get("description")),
        random_seed=_int(seed),
        python_version=py,
        os=_str(software.get("os")),
        hardware={k: v for k, v in (d.get("hardware") or {}).items()},
        packages=packages,
        data=data,
        command=_str(execution.get("command")),
        verify_script=_str(execution.get("verify_script")),
        repo=_str(version.get("repo")),
        commit=_str(version.get("commit")),
        branch=_str(version.get("branch")),
        environment_file=_str(conda.get("environment_file")),
        authors=[author] if author else [],
        date=_str(d.get("date")),
        project_url=_str(url),
        pyproject=dict(d.get("pyproject") or {}),
        other=other,
        unmapped=sorted(other),
    )


def _from_template(d: dict[str, Any], path: str) -> CrespImport:
    exp = d.get("experiment", {}) or {}
    env = exp.get("environment", {}) or {}
    software = env.get("software", {}) or {}
    system = env.get("system", {}) or {}
    python = software.get("python", {}) or {}
    packages: list[CrespPackage] = []
    for p in (software.get("conda", {}) or {}).get("packages", []) or []:
        if isinstance(p, dict) and p.get("name"):
            packages.append(CrespPackage(name=p["name"], version=_str(p.get("version")), source="conda"))
    for p in system.get("packages", []) or []:
        if isinstance(p, dict) and p.get("name"):
            packages.append(CrespPackage(name=p["name"], version=_str(p.get("version")), source="system"))
    os_info = system.get("os", {}) or {}
    os_name = " ".join(x for x in (_str(os_info.get("name")), _str(os_info.get("version"))) if x) or None
    data = [
        CrespData(name=_str(x.get("name")), source=str(x.get("source") or ""), sha256=_str(x.get("sha256")),
                  size_bytes=_int(x.get("size_bytes")))  # fmt: skip
        for x in d.get("datasets", []) or []
        if isinstance(x, dict) and (x.get("source") or x.get("sha256"))
    ]
    execution = d.get("execution", {}) or {}
    deps = (env.get("dependencies", {}) or {}).get("package_manager", {}) or {}
    hardware = {k: v for k, v in (env.get("hardware", {}) or {}).items() if v not in ("", [], {})}
    read = {"cresp_version", "repo_url", "experiment.name", "experiment.description", "experiment.authors",
            "experiment.environment.hardware", "experiment.environment.system.os",
            "experiment.environment.system.packages", "experiment.environment.software.conda.packages",
            "experiment.environment.software.python.version", "datasets", "execution.main_command",
            "execution.command", "execution.verify_script", "environment_verification.verify_script",
            "reproduction.random_seed"}  # fmt: skip
    env_file = deps.get("lock_file") or deps.get("config_file")
    if env_file:
        read.add("experiment.environment.dependencies.package_manager." + ("lock_file" if deps.get("lock_file") else "config_file"))
    verify = execution.get("verify_script") or (d.get("environment_verification", {}) or {}).get("verify_script")
    authors = [a for x in exp.get("authors", []) or [] if isinstance(x, dict) and (a := _author(x.get("name"), x.get("email")))]
    other = _leftover(d, read)
    return CrespImport(
        dialect="template",
        path=path,
        cresp_version=_str(d.get("cresp_version")),
        experiment_name=_str(exp.get("name")),
        description=_str(exp.get("description")),
        random_seed=_int((d.get("reproduction", {}) or {}).get("random_seed")),
        python_version=_str(python.get("version")),
        os=os_name,
        hardware=hardware,
        packages=packages,
        data=data,
        command=_str(execution.get("main_command") or execution.get("command")),
        verify_script=_str(verify),
        repo=_str(d.get("repo_url")),
        environment_file=_str(env_file),
        authors=authors,
        other=other,
        unmapped=sorted(other),
    )


def _from_yaml(d: dict[str, Any], path: str) -> CrespImport:
    meta = d.get("metadata", {}) or {}
    env = d.get("environment", {}) or {}
    data: list[CrespData] = []
    for stage in d.get("stages", []) or []:
        if not isinstance(stage, dict):
            continue
        for o in stage.get("outputs", []) or []:
            if isinstance(o, dict) and o.get("path"):
                method = str(o.get("hash_method") or "sha256").lower()
                data.append(CrespData(name=_str(stage.get("id")), source=str(o["path"]),
                                      sha256=_str(o.get("hash")) if method == "sha256" else None))  # fmt: skip
    read = {"version", "metadata.title", "metadata.description", "metadata.authors", "environment.file",
            "stages", "reproduction.random_seed"}  # fmt: skip
    authors = [a for x in meta.get("authors", []) or [] if isinstance(x, dict) and (a := _author(x.get("name"), x.get("email")))]
    other = _leftover(d, read)
    return CrespImport(
        dialect="yaml",
        path=path,
        cresp_version=_str(d.get("version")),
        experiment_name=_str(meta.get("title")),
        description=_str(meta.get("description")),
        random_seed=_int((d.get("reproduction", {}) or {}).get("random_seed")),
        data=data,
        environment_file=_str(env.get("file")),
        authors=authors,
        other=other,
        unmapped=sorted(other),
    )


__all__ = ["CrespData", "CrespImport", "CrespPackage", "DataCheck", "export_cresp", "import_cresp"]
