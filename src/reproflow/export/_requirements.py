"""``requirements.txt``: every recorded distribution pinned, installable with pip or uv."""

from __future__ import annotations

from ._common import ExportContext, Pin

DEFAULT_INDEX = "https://pypi.org/simple"


def index_urls(ctx: ExportContext) -> list[str]:
    """Indexes to look artifacts up on: the ``index_url`` option, else the recorded ones, else PyPI."""
    opt = ctx.options.get("index_url")
    if opt:
        return [opt] if isinstance(opt, str) else list(opt)
    return list(ctx.environment.index_urls) or [DEFAULT_INDEX]


def best_index_hash(ctx: ExportContext, pin: Pin) -> str | None:
    """The sha256 of the one file of an index pin this interpreter would install: the wheel whose
    tags rank first among ``packaging.tags.sys_tags()``, else the sdist (None if not found)."""
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename

    from ._index import release_files

    found = release_files(index_urls(ctx), pin.name, pin.version)
    if found is None:
        return None
    rank = {tag: i for i, tag in enumerate(sys_tags())}
    best: tuple[int, str] | None = None
    sdist: str | None = None
    for f in found[1]:
        if not f.is_wheel:
            sdist = sdist or f.hashes["sha256"]
            continue
        tags = parse_wheel_filename(f.filename)[3]
        score = min((rank[t] for t in tags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, f.hashes["sha256"])
    return best[1] if best else sdist


def index_hashes(ctx: ExportContext, pin: Pin) -> list[str]:
    """sha256 digests of every file the index holds for an index pin (empty if none found)."""
    from ._index import release_files

    found = release_files(index_urls(ctx), pin.name, pin.version)
    if found is None:
        return []
    return sorted({f.hashes["sha256"] for f in found[1]})


def export_requirements(ctx: ExportContext) -> str:
    """Pinned requirements.

    Index packages become ``name==version``; with the ``hashes=True`` option each gets every
    ``--hash`` the index lists for that release (pip's hash-checking mode then applies to the
    whole file). Archives keep their PEP 610 hash, VCS installs become
    ``name @ git+URL@commit``, and local or editable packages become paths: those need their
    source on the installing machine (restore it from the store when a stored copy exists).
    """
    want_hashes = bool(ctx.options.get("hashes"))
    lines = [f"# {line}" for line in ctx.header_lines("requirements")]
    lines.append("# install into a fresh environment: uv pip install --no-deps -r requirements.txt")
    body: list[str] = []
    notes: list[str] = []
    for pin in ctx.pins():
        req = pin.requirement()
        if pin.kind == "index" and want_hashes:
            hashes = index_hashes(ctx, pin)
            if hashes:
                req += "".join(f" \\\n    --hash=sha256:{h}" for h in hashes)
            else:
                notes.append(f"{pin.name}=={pin.version}: no artifact hash found on the index")
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
