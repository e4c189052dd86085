"""PEP 751 ``pylock.toml``: the recorded environment as a standard lock file.

A lock entry needs each artifact's URL and hash. A recorded environment knows name, version
and PEP 610 origin, so index packages are locked by uv on the package indexes (the
``index_url`` option, else the recorded index configuration, whose default index is PyPI unless
it was replaced, see :mod:`._uvlock`): every wheel and the sdist of that exact release are
listed, and installers pick the one that fits. VCS, directory and archive origins map onto the
matching pylock tables directly.

A lock that leaves a package out is not the recorded environment: any package that cannot be
locked fails the export (naming each one) unless the ``allow_partial`` option is set; then
they are listed under ``[tool.reproflow] skipped`` and in the export's notes.
"""

from __future__ import annotations

from typing import Any

from ..errors import ExportError
from ._common import ExportContext, Pin
from ._uvlock import Locked, lock_index_pins


def _package(ctx: ExportContext, pin: Pin, locked: Locked, skipped: list[dict[str, str]]) -> dict[str, Any] | None:
    entry: dict[str, Any] = {"name": pin.normalized, "version": pin.version}
    if pin.kind == "index":
        table = locked.packages.get(pin.normalized)
        if table is None:
            return None  # in locked.skipped, with uv's reason
        for key in ("sdist", "wheels"):
            if key in table:
                entry[key] = table[key]
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


def check_complete(ctx: ExportContext, what: str, total: int, skipped: list[dict[str, str]]) -> None:
    """Fail an export that leaves packages out, unless ``allow_partial``; then add a note."""
    if not skipped:
        return
    listed = "; ".join(f"{s['name']}=={s['version']}: {s['reason']}" for s in skipped[:3])
    more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
    if not ctx.options.get("allow_partial"):
        raise ExportError(
            f"{what}: {len(skipped)} of {total} recorded packages of run {ctx.run_id} could not be locked: "
            f"{listed}{more}; pass --index-url with an index that holds them, or --allow-partial to "
            "write the export without them"
        )
    ctx.notes.append(f"{what} is partial: {len(skipped)} of {total} packages left out: {listed}{more}")


def export_pylock(ctx: ExportContext) -> str:
    """Render ``pylock.toml``; entries that cannot be locked are listed under ``[tool.reproflow]``."""
    import tomli_w

    from .._version import __version__

    pins = ctx.pins()
    locked = lock_index_pins(ctx, pins)
    packages: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = list(locked.skipped)
    for pin in pins:
        entry = _package(ctx, pin, locked, skipped)
        if entry is not None:
            packages.append(entry)
    skipped.sort(key=lambda s: s["name"])
    check_complete(ctx, "pylock.toml", len(pins), skipped)
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
