"""``requirements.txt``: every recorded distribution pinned, installable with pip or uv."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from ..errors import ExportError
from ._common import ExportContext, Pin
from ._uvlock import index_urls, lock_index_pins

#: ``--pin`` strategies: how an index package's recorded version becomes a specifier
PIN_STRATEGIES = ("exact", "compatible", "minimum")

_PIN_HEADER = {
    "compatible": "pins: compatible (~=): each index package may be any later release of its recorded "
    "series, so this file does NOT reproduce the recorded versions exactly",
    "minimum": "pins: minimum (>=): each index package may be any release at or above its recorded "
    "version, so this file does NOT reproduce the recorded versions exactly",
}


def pinned(name: str, version: str, strategy: str) -> str:
    """The requirement for an index package under a pin strategy.

    ``exact`` is ``name==V``; ``minimum`` is ``name>=V``; ``compatible`` is ``name~=V`` (PEP 440:
    ``~=1.4.2`` allows 1.4.x from 1.4.2 on), or ``name>=V,==V.*`` for a one-part version such as
    ``2``, where ``~=`` is not allowed.
    """
    if strategy == "exact":
        return f"{name}=={version}"
    if strategy == "minimum":
        return f"{name}>={version}"
    from packaging.version import InvalidVersion, Version

    try:
        release = Version(version).release
    except InvalidVersion:  # not PEP 440: only an exact pin can say it
        return f"{name}=={version}"
    if len(release) >= 2:
        return f"{name}~={version}"
    return f"{name}>={version},=={release[0]}.*"


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
    The ``pin`` option (``exact``, ``compatible``, ``minimum``) loosens index pins, said in the
    header; ``hashes`` needs ``exact``.
    """
    from ._pylock import check_complete

    want_hashes = bool(ctx.options.get("hashes"))
    strategy = str(ctx.options.get("pin") or "exact")
    if strategy not in PIN_STRATEGIES:
        raise ExportError(f"unknown pin strategy {strategy!r}; choose one of: {', '.join(PIN_STRATEGIES)}")
    if want_hashes and strategy != "exact":
        raise ExportError("--hashes needs exact pins (a hash names one file); drop --hashes or use --pin exact")
    lines = [f"# {line}" for line in ctx.header_lines("requirements")]
    if strategy != "exact":
        lines.append(f"# {_PIN_HEADER[strategy]} (VCS, archive and local lines stay exact)")
    lines.append("# install into a fresh environment: uv pip install --no-deps -r requirements.txt")
    body: list[str] = []
    notes: list[str] = []
    pins = ctx.pins()
    if want_hashes:
        locked = lock_index_pins(ctx, pins)
        check_complete(ctx, "requirements.txt with --hashes", len(pins), locked.skipped)
    for pin in pins:
        req = pinned(pin.name, pin.version, strategy) if pin.kind == "index" else pin.requirement()
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


__all__ = ["PIN_STRATEGIES", "best_index_hash", "export_requirements", "index_urls", "pinned"]
