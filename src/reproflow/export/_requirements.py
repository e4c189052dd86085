"""``requirements.txt``: every recorded distribution pinned, installable with pip or uv."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from ._common import ExportContext, Pin
from ._uvlock import index_urls, lock_index_pins


def best_index_hash(ctx: ExportContext, pin: Pin) -> str | None:
    """The sha256 of the one file of an index pin this interpreter would install: the wheel whose
    tags rank first among ``packaging.tags.sys_tags()``, else the sdist (None if not locked)."""
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename

    table = lock_index_pins(ctx, ctx.pins()).packages.get(pin.normalized)
    if table is None:
        return None
    rank = {tag: i for i, tag in enumerate(sys_tags())}
    best: tuple[int, str] | None = None
    for wheel in table.get("wheels", []):
        filename = wheel.get("name") or unquote(urlparse(wheel.get("url") or wheel.get("path", "")).path).rsplit("/", 1)[-1]
        tags = parse_wheel_filename(filename)[3]
        score = min((rank[t] for t in tags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, wheel["hashes"]["sha256"])
    if best:
        return best[1]
    sdist = table.get("sdist")
    return sdist["hashes"]["sha256"] if sdist else None


def export_requirements(ctx: ExportContext) -> str:
    """Pinned requirements.

    Index packages become ``name==version``; with the ``hashes=True`` option each gets every
    ``--hash`` the index lists for that release (pip's hash-checking mode then applies to the
    whole file). Archives keep their PEP 610 hash, VCS installs become
    ``name @ git+URL@commit``, and local or editable packages become paths: those need their
    source on the installing machine (restore it from the store when a stored copy exists).
    """
    from ._pylock import check_complete

    want_hashes = bool(ctx.options.get("hashes"))
    lines = [f"# {line}" for line in ctx.header_lines("requirements")]
    lines.append("# install into a fresh environment: uv pip install --no-deps -r requirements.txt")
    body: list[str] = []
    notes: list[str] = []
    pins = ctx.pins()
    if want_hashes:
        locked = lock_index_pins(ctx, pins)
        check_complete(ctx, "requirements.txt with --hashes", len(pins), locked.skipped)
    for pin in pins:
        req = pin.requirement()
        if pin.kind == "index" and want_hashes:
            hashes = locked.sha256s(pin.name)
            if not hashes:  # left out (allow_partial): an unhashed line would fail pip's hash mode
                notes.append(f"{pin.name}=={pin.version}: not found on the index, left out")
                continue
            req += "".join(f" \\\n    --hash=sha256:{h}" for h in hashes)
        elif pin.kind == "archive" and pin.sha256:
            req += f" --hash=sha256:{pin.sha256}"
        if pin.kind in ("editable", "local"):
            stored = f"stored source sha256:{pin.source_blob}" if pin.source_blob else "source NOT stored"
            body.append(f"# {pin.name}=={pin.version} from a local {pin.kind} path ({stored})")
        body.append(req)
    if any(p.kind == "archive" and p.sha256 for p in ctx.pins()) and not want_hashes:
        lines.append("# note: pip checks every line once any line has --hash; uv checks only those lines")
    lines.extend(f"# warning: {n}" for n in notes)
    return "\n".join(lines + body) + "\n"


__all__ = ["best_index_hash", "export_requirements", "index_urls"]
