"""Container recipes: a Dockerfile and an Apptainer definition file for a recorded run.

Both start from a base image that matches the recorded interpreter and OS (``python:X.Y.Z-slim-
<debian>``), or an ``nvidia/cuda`` runtime image matching the driver's CUDA version when the
run saw a GPU; install the Debian packages that owned the shared libraries the run loaded, at
their recorded versions (``apt-get install pkg=version``); install the pinned environment with
uv (``--no-deps``: the record is the whole resolution); put the code at its recorded commit in
``/app``; and run the flow with its recorded parameters as the default command.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex

from ..errors import UnsafeRecord
from ..values._untrusted import text_problem
from ._common import ExportContext, Pin

#: Environment variables that change numerical results or hashing, copied when recorded.
NUMERICS_ENV = (
    "PYTHONHASHSEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "CUBLAS_WORKSPACE_CONFIG",
    "TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC", "TZ", "LANG", "LC_ALL",
)  # fmt: skip

VENV = "/opt/venv"
APP = "/app"  #: where the recorded code goes in the image


#: what a Debian package name and version may hold (Debian Policy 5.6.1, 5.6.12): a record is
#: untrusted input, and these words go into a shell command
_DEB_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]{0,127}")
_DEB_VERSION = re.compile(r"(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]{0,127}(?<!-)")


def os_packages(ctx: ExportContext) -> tuple[list[str], list[str]]:
    """``(["pkg=version", ...], notes)``: the Debian packages that owned the shared libraries the
    run loaded, when the image is Debian like the recorded system; otherwise none, and a note."""
    from ..capture.system import run_libraries

    libs = run_libraries(ctx.store, ctx.run)
    if libs is None or libs.package_manager is None:
        return [], []
    owned = {(lib.package, lib.package_version) for lib in libs.libraries
             if lib.origin in ("dpkg", "rpm") and lib.package and lib.package_version}  # fmt: skip
    if not owned:
        return [], []
    distro = ctx.environment.platform.distro_id
    if libs.package_manager != "dpkg" or ctx.cuda_image() is not None or distro != "debian":
        names = ", ".join(sorted(f"{n} {v}" for n, v in owned))
        return [], [f"OS packages not installed (recorded on {distro or 'an unknown system'} with "
                    f"{libs.package_manager}, the image differs): {names}"]  # fmt: skip
    pins, notes = [], []
    for name, version in sorted(owned):  # type: ignore[type-var]
        if _DEB_NAME.fullmatch(name or "") and _DEB_VERSION.fullmatch(version or ""):
            pins.append(f"{name}={version}")
        else:
            notes.append(f"OS package left out, its recorded name or version is not Debian's: {name!r} {version!r}")
    names = sorted(p.partition("=")[0] for p in pins)
    if len(set(names)) != len(names):  # two versions of one package (two processes on two hosts)
        dup = sorted({n for n in names if names.count(n) > 1})
        notes.append(f"OS packages recorded at more than one version, left out: {', '.join(dup)}")
        pins = [p for p in pins if p.partition("=")[0] not in dup]
    return pins, notes


def _env(ctx: ExportContext) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in NUMERICS_ENV:
        var = ctx.environment.env_vars.get(name)
        if var is not None and not var.redacted and var.value is not None:
            problem = text_problem(var.value, f"environment variable {name}")
            if problem:  # a newline would start a new instruction of the recipe
                raise UnsafeRecord.because(problem)
            out[name] = var.value
    seed = ctx.run.record.pythonhashseed
    if seed and "PYTHONHASHSEED" not in out:
        out["PYTHONHASHSEED"] = seed
    return out


def python_path(ctx: ExportContext, code_dir: str = APP) -> list[str]:
    """What the recorded process could import from its own code, moved under ``code_dir``.

    The image's command runs the flow file with ``runpy`` from ``python -c``, which puts only the
    working folder on ``sys.path``; the recorded run had more: the flow file's folder (``python
    flows/x.py`` puts it first, so a sibling module imports), the root of the flow's package, and
    any folder of the code on the recorded ``sys.path`` (``PYTHONPATH=src``, a ``src/`` layout
    added by hand). Installed packages (site-packages, a virtual environment inside the project)
    are left out: the image installs its own.
    """
    root = ctx.context.git.root or ctx.context.source.root
    py = ctx.environment.python
    prefixes = tuple(os.path.join(p, "") for p in {py.prefix, py.base_prefix} if p)
    out: list[str] = []
    ep = ctx.entrypoint()
    rec = ctx.run.record
    if ep is not None:
        rel = ep[0] if not os.path.isabs(ep[0]) else ctx.relative_to_root(ep[0])
        if rel is not None:
            folder = posixpath.dirname(rel.replace(os.sep, "/"))
            if ctx.importable_module() is None:  # a script's folder is first on its sys.path; a module's is not
                out.append(posixpath.join(code_dir, folder) if folder else code_dir)
            module = rec.module.partition(":")[0] if rec.module else ""
            suffix = module.replace(".", "/") + ".py"
            if module and rel.replace(os.sep, "/").endswith(suffix):
                top = rel.replace(os.sep, "/")[: -len(suffix)].rstrip("/")
                out.append(posixpath.join(code_dir, top) if top else code_dir)
    for entry in ctx.environment.sys_path:
        path = os.path.normpath(os.path.join(rec.cwd or root or "/", entry))
        if not root or path.startswith(prefixes) or "site-packages" in path or "dist-packages" in path:
            continue
        rel = ctx.relative_to_root(path)
        if rel is not None and not rel.endswith((".zip", ".egg")):
            out.append(code_dir if rel == "." else posixpath.join(code_dir, rel))
    out.append(code_dir)
    return list(dict.fromkeys(out))


def _split(ctx: ExportContext) -> tuple[list[Pin], list[tuple[Pin, str]], list[Pin]]:
    """(pins installable from anywhere, (local pin, path under /app), local pins left out)."""
    remote: list[Pin] = []
    in_app: list[tuple[Pin, str]] = []
    missing: list[Pin] = []
    for pin in ctx.pins():
        if pin.kind in ("editable", "local") or (pin.kind == "archive" and pin.path):
            rel = ctx.relative_to_root(pin.path or "")
            if rel is None:
                missing.append(pin)
            else:
                in_app.append((pin, "/app" if rel == "." else f"/app/{rel}"))
        else:
            remote.append(pin)
    return remote, in_app, missing


def _quote_req(req: str) -> str:
    return shlex.quote(req) if any(c in req for c in " @;<>|&") else req


def _notes(ctx: ExportContext, missing: list[Pin]) -> list[str]:
    notes = []
    git = ctx.context.git
    if git.available and git.dirty:
        blob = f" (stored as blob sha256:{git.diff_blob})" if git.diff_blob else ""
        notes.append(f"WARNING: the run had uncommitted changes{blob}; they are not in this image")
    for pin in missing:
        stored = f"stored source sha256:{pin.source_blob}" if pin.source_blob else "source not stored"
        notes.append(f"not installed: {pin.name}=={pin.version} from local path {pin.path} ({stored})")
    _, opaque = ctx.plain_parameters()
    for name in opaque:
        notes.append(f"parameter {name!r} cannot be passed as JSON data (an opaque value, or an object "
                     "such as an argparse.Namespace); the flow default applies")
    for name, path in ctx.outside_paths(APP):
        notes.append(f"parameter {name!r} is the path {path}, outside the recorded code: mount it there")
    if ctx.entrypoint() is None:
        notes.append("no flow entry point was recorded; set the command when running the image")
    return notes


def export_dockerfile(ctx: ExportContext) -> str:
    """Render a Dockerfile (BuildKit; checked with dockerfile-parse and hadolint in the tests)."""
    remote, in_app, missing = _split(ctx)
    cuda = ctx.cuda_image()
    repo, commit = ctx.code_location()
    rec = ctx.run.record
    lines = ["# syntax=docker/dockerfile:1.7"]
    lines += [f"# {line}" for line in ctx.header_lines("Dockerfile")]
    lines += [f"# {n}" for n in _notes(ctx, missing)]
    lines.append(f"FROM {cuda or ctx.python_image()}")
    labels = {"io.reproflow.run-id": rec.run_id, "io.reproflow.flow": rec.flow_name}
    if repo:
        labels["org.opencontainers.image.source"] = repo
    if commit:
        labels["org.opencontainers.image.revision"] = commit
    lines.append("LABEL " + " \\\n      ".join(f"{k}={json.dumps(v)}" for k, v in labels.items()))
    lines.append(f"COPY --from=ghcr.io/astral-sh/uv:{ctx.uv_version()} /uv /uvx /bin/")
    env = {"UV_LINK_MODE": "copy", "VIRTUAL_ENV": VENV, "PATH": f"{VENV}/bin:$PATH",
           "PYTHONPATH": ":".join(python_path(ctx))}  # fmt: skip
    env.update(_env(ctx))
    lines.append("ENV " + " \\\n    ".join(f"{k}={json.dumps(v)}" for k, v in env.items()))
    needs_git = any(p.kind == "vcs" for p in remote)
    debs, deb_notes = os_packages(ctx)
    lines[1:1] = [f"# {n}" for n in deb_notes]
    if needs_git or debs:
        if debs:
            lines.append("# the Debian packages that owned the shared libraries the run loaded, at their recorded "
                         "versions (older ones: snapshot.debian.org)")
        if needs_git:
            lines.append("# hadolint ignore=DL3008")
        lines.append(
            "RUN apt-get update \\\n && apt-get install -y --no-install-recommends"
            + (" --allow-downgrades" if debs else "") + (" git ca-certificates" if needs_git else "")
            + "".join(f" \\\n      {d}" for d in debs) + " \\\n && rm -rf /var/lib/apt/lists/*"
        )
    if cuda:
        lines.append("ENV UV_PYTHON_INSTALL_DIR=/opt/python")
        venv = f"uv python install {ctx.python_version()} \\\n && uv venv --python {ctx.python_version()} {VENV}"
    else:
        venv = f"uv venv --python /usr/local/bin/python{ctx.python_minor()} {VENV}"
    install = f"RUN {venv}"
    if remote:
        reqs = " \\\n      ".join(_quote_req(p.requirement()) for p in remote)
        install += f" \\\n && uv pip install --no-cache --no-deps \\\n      {reqs}"
    lines.append(install)
    lines.append("WORKDIR /app")
    if repo and commit:
        lines.append(f"ADD --keep-git-dir=false {repo}#{commit} /app")
    else:
        at = f" (commit {commit})" if commit else ""
        lines.append(f"# build from a checkout of the recorded code{at}: the build context becomes /app")
        lines.append("COPY . /app")
    for pin, path in in_app:
        flag = "-e " if pin.kind == "editable" else ""
        lines.append(f"RUN uv pip install --no-cache --no-deps {flag}{shlex.quote(path)}")
    cmd = ctx.launch_command(code_dir=APP)
    if cmd:
        lines.append("CMD " + json.dumps(cmd))
    return "\n".join(lines) + "\n"


def export_apptainer(ctx: ExportContext) -> str:
    """Render an Apptainer definition file (header, %labels, %environment, %post, %runscript)."""
    remote, in_app, missing = _split(ctx)
    cuda = ctx.cuda_image()
    repo, commit = ctx.code_location()
    rec = ctx.run.record
    out = [f"# {line}" for line in ctx.header_lines("Apptainer definition")]
    out += [f"# {n}" for n in _notes(ctx, missing)]
    out += ["Bootstrap: docker", f"From: {cuda or ctx.python_image()}", ""]
    out += ["%labels", f"    io.reproflow.run-id {rec.run_id}", f"    io.reproflow.flow {rec.flow_name}"]
    if commit:
        out.append(f"    org.opencontainers.image.revision {commit}")
    out.append("")
    env = {"VIRTUAL_ENV": VENV, "PATH": f"{VENV}/bin:$PATH", "PYTHONPATH": ":".join(python_path(ctx))}
    env.update(_env(ctx))
    out.append("%environment")
    out += [f"    export {k}={_sh_env(v)}" for k, v in env.items()]
    out.append("")
    if not (repo and commit):
        out += ["%files", "    . /app", ""]
    post = ["set -eu", "export DEBIAN_FRONTEND=noninteractive"]
    apt = ["ca-certificates"]
    if cuda or (repo and commit) or any(p.kind == "vcs" for p in remote):
        apt.append("git")
    if cuda:
        apt.append("curl")
    debs, deb_notes = os_packages(ctx)
    out[:0] = [f"# {n}" for n in deb_notes]
    if debs:
        post.append("# the Debian packages that owned the shared libraries the run loaded, at their recorded versions")
    post.append("apt-get update && apt-get install -y --no-install-recommends "
                + ("--allow-downgrades " if debs else "") + " ".join(apt + debs))  # fmt: skip
    post.append("rm -rf /var/lib/apt/lists/*")
    uv = ctx.uv_version()
    if cuda:
        post.append(f"curl -LsSf https://astral.sh/uv/{uv}/install.sh | env UV_INSTALL_DIR=/usr/local/bin sh")
        post.append("export UV_PYTHON_INSTALL_DIR=/opt/python")
        post.append(f"uv python install {ctx.python_version()}")
        post.append(f"uv venv --python {ctx.python_version()} {VENV}")
    else:
        post.append(f"python -m pip install --no-cache-dir uv=={uv}")
        post.append(f"uv venv --python /usr/local/bin/python{ctx.python_minor()} {VENV}")
    if remote:
        reqs = " \\\n        ".join(shlex.quote(p.requirement()) for p in remote)
        post.append(f"uv pip install --python {VENV}/bin/python --no-cache --no-deps \\\n        {reqs}")
    if repo and commit:
        post.append(f"git clone -- {shlex.quote(repo)} /app")
        post.append(f"git -C /app checkout --detach {shlex.quote(commit)}")
    for pin, path in in_app:
        flag = "-e " if pin.kind == "editable" else ""
        post.append(f"uv pip install --python {VENV}/bin/python --no-cache --no-deps {flag}{shlex.quote(path)}")
    out.append("%post")
    out += [f"    {line}" for line in post]
    out.append("")
    out.append("%runscript")
    out.append("    cd /app")
    cmd = ctx.launch_command(code_dir=APP)
    if cmd:
        out.append("    exec " + " ".join(shlex.quote(a) for a in cmd) + ' "$@"')
    else:
        out.append('    exec "$@"')
    return "\n".join(out) + "\n"


def _sh_env(value: str) -> str:
    if "$" in value and value.startswith(VENV):
        return f'"{value}"'
    return shlex.quote(value)
