"""PEP 751 ``pylock.toml``: the recorded environment as a standard lock file.

A lock entry needs each artifact's URL and hash. A recorded environment knows name, version
and PEP 610 origin, so index packages are looked up on the package index (the ``index_url``
option, else the recorded index configuration, else PyPI): every wheel and the sdist of that
exact release are listed, and installers pick the one that fits. VCS, directory and archive
origins map onto the matching pylock tables directly.
"""

from __future__ import annotations

from typing import Any

from ..errors import ExportError
from ._common import ExportContext, Pin
from ._requirements import index_urls


def _package(ctx: ExportContext, pin: Pin, skipped: list[dict[str, str]]) -> dict[str, Any] | None:
    from ._index import release_files

    entry: dict[str, Any] = {"name": pin.normalized, "version": pin.version}
    if pin.kind == "index":
        found = release_files(index_urls(ctx), pin.name, pin.version)
        if found is None:
            skipped.append({"name": pin.normalized, "version": pin.version,
                            "reason": "release not found on " + ", ".join(index_urls(ctx))})  # fmt: skip
            return None
        index, files = found
        entry["index"] = index
        wheels = [f for f in files if f.is_wheel]
        sdists = [f for f in files if not f.is_wheel]
        if sdists:
            entry["sdist"] = _artifact(sdists[0])
        if wheels:
            entry["wheels"] = [_artifact(f) for f in sorted(wheels, key=lambda f: f.filename)]
        return entry
    if pin.kind == "vcs":
        if not pin.commit:
            skipped.append({"name": pin.normalized, "version": pin.version, "reason": "VCS install without a commit id"})
            return None
        vcs: dict[str, Any] = {"type": pin.vcs or "git", "url": pin.url, "commit-id": pin.commit}
        if pin.requested_revision:
            vcs["requested-revision"] = pin.requested_revision
        entry["vcs"] = vcs
        return entry
    if pin.kind in ("editable", "local"):
        entry["directory"] = {"path": pin.path, "editable": pin.kind == "editable"}
        return entry
    if not pin.sha256:
        skipped.append({"name": pin.normalized, "version": pin.version,
                        "reason": "archive installed without a recorded hash"})  # fmt: skip
        return None
    archive: dict[str, Any] = {"hashes": {"sha256": pin.sha256}}
    if pin.path:
        archive["path"] = pin.path
    else:
        archive["url"] = pin.url
    entry["archive"] = archive
    return entry


def _artifact(f: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": f.filename, "url": f.url, "hashes": {"sha256": f.hashes["sha256"]}}
    if f.size is not None:
        out["size"] = f.size
    return out


def export_pylock(ctx: ExportContext) -> str:
    """Render ``pylock.toml``; entries that cannot be locked are listed under ``[tool.reproflow]``."""
    import tomli_w

    from .. import __version__

    packages: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for pin in ctx.pins():
        entry = _package(ctx, pin, skipped)
        if entry is not None:
            packages.append(entry)
    if not packages:
        raise ExportError(
            f"no package of run {ctx.run_id} could be locked: "
            + "; ".join(f"{s['name']}: {s['reason']}" for s in skipped[:3])
        )
    plat = ctx.environment.platform
    marker = f"python_version == '{ctx.python_minor()}' and sys_platform == '{_sys_platform(plat.system)}'"
    doc: dict[str, Any] = {
        "lock-version": "1.0",
        "environments": [marker],
        "requires-python": f"=={ctx.python_minor()}.*",
        "created-by": "reproflow",
        "packages": packages,
        "tool": {
            "reproflow": {
                "version": __version__,
                "run-id": ctx.run_id,
                "python": ctx.python_version(),
                "platform-machine": plat.machine,
                "skipped": skipped,
            }
        },
    }
    header = "".join(f"# {line}\n" for line in ctx.header_lines("pylock.toml"))
    return header + tomli_w.dumps(doc)


def _sys_platform(system: str) -> str:
    return {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(system, system.lower())
