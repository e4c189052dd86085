"""Index pins locked by uv: every artifact (URL, size, sha256) of each recorded ``name==version``.

An installed environment does not keep the URL or hash of what it installed; the index that
served it does. ``uv pip compile --no-deps --format pylock.toml`` reads the indexes (simple JSON
or HTML, ``file://`` folders included) and writes each release's wheels and sdist as a PEP 751
package table, so reproflow reads no index by hand. It is given the recorded index settings
and nothing of this machine's uv configuration (``--no-config``, ``UV_*`` index variables
removed): the first recorded index is the default one, the rest are extra indexes, searched as
pip searches them (``--index-strategy unsafe-best-match``).

uv stops at the first pin it cannot find: that pin is set aside with uv's own reason, the
indexes are asked once which of the other releases they list (:mod:`._index`, names only), what
they do not list is set aside too, and the rest is locked again. So the result names every pin
that could not be locked, and a complete lock costs one uv run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name

from ..values._urls import strip_credentials
from ..errors import ExportError
from ._common import ExportContext, Pin

#: PyPI: what pip and uv read when nothing replaces it.
DEFAULT_INDEX = "https://pypi.org/simple"

#: uv's words for "this pin is not on the indexes": "there is no version of NAME==V",
#: "NAME was not found in the package registry / in the cache", "NAME==V has no wheels ...".
_MISSING = re.compile(
    r"(?:there is no version of |Because |and |, )(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"
    r"(?:\[[^\]]*\])?(?:==[^\s,]+)?\s+(?:was not found|has no|is not available|cannot be used)"
    r"|there is no version of (?P<name2>[A-Za-z0-9][A-Za-z0-9._-]*)=="
)

#: uv variables that would add indexes or configuration of this machine to the lookup.
_UV_VARS = ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS",
            "UV_NO_INDEX", "UV_CONFIG_FILE", "UV_INDEX_STRATEGY", "UV_NO_CONFIG")  # fmt: skip


def index_urls(ctx: ExportContext) -> list[str]:
    """Indexes to look artifacts up on: the ``index_url`` option, else the recorded ones (the
    default index first; capture keeps PyPI there unless the configuration replaced it), else PyPI."""
    opt = ctx.options.get("index_url")
    if opt:
        return [opt] if isinstance(opt, str) else list(opt)
    return list(ctx.environment.index_urls) or [DEFAULT_INDEX]


@dataclass
class Locked:
    """What uv locked: a PEP 751 package table per normalized name, and the pins it could not."""

    packages: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def sha256s(self, name: str) -> list[str]:
        """Every artifact hash of a locked package (sorted; empty when not locked)."""
        pkg = self.packages.get(canonicalize_name(name), {})
        arts = list(pkg.get("wheels", [])) + ([pkg["sdist"]] if "sdist" in pkg else [])
        return sorted({a["hashes"]["sha256"] for a in arts if "sha256" in a.get("hashes", {})})


def lock_index_pins(ctx: ExportContext, pins: list[Pin]) -> Locked:
    """Lock the index pins of a run with uv: one ``uv pip compile`` when every pin is there, a
    few more when some are not.

    Raises:
        ExportError: uv failed for a reason other than a missing pin (an unreachable index).
    """
    cached = ctx.options.get("_locked")
    if isinstance(cached, Locked):
        return cached
    from ._index import listed

    result = Locked()
    indexes = index_urls(ctx)
    where = ", ".join(strip_credentials(u) for u in indexes)
    todo = {p.normalized: p for p in pins if p.kind == "index"}
    asked = False
    while todo:
        ok, out = _compile(ctx, list(todo.values()), indexes)
        if ok:
            result.packages.update(_packages(out))
            break
        name = _missing_pin(out, todo)
        if name is None:
            raise ExportError(
                f"uv could not look the recorded packages up on {where}: {_cause(out)}; pass a reachable "
                "index with --index-url (a file:// folder works offline)"
            )
        pin = todo.pop(name)
        result.skipped.append({"name": pin.normalized, "version": pin.version,
                               "reason": f"release not found on {where} ({_cause(out)})"})  # fmt: skip
        if not asked:
            # uv names one missing pin per failed run: ask the indexes once which releases they
            # list, so many missing pins cost one more uv run, not one run each.
            asked = True
            for other, answer in listed(indexes, [(p.name, p.version) for p in todo.values()]).items():
                if answer is False:
                    gone = todo.pop(other)
                    result.skipped.append({"name": gone.normalized, "version": gone.version,
                                           "reason": f"release not found on {where}"})  # fmt: skip
    result.skipped.sort(key=lambda s: s["name"])
    ctx.options["_locked"] = result
    return result


def _compile(ctx: ExportContext, pins: list[Pin], indexes: list[str]) -> tuple[bool, str]:
    from ..replay._uv import find_uv

    env = {k: v for k, v in os.environ.items() if k not in _UV_VARS}
    with tempfile.TemporaryDirectory(prefix="reproflow-lock-") as tmp:
        reqs = os.path.join(tmp, "pins.txt")
        with open(reqs, "w", encoding="utf-8") as fh:
            fh.write("".join(f"{p.name}=={p.version}\n" for p in pins))
        out = os.path.join(tmp, "pylock.toml")
        cmd = [find_uv(), "pip", "compile", reqs, "--format", "pylock.toml", "--output-file", out,
               "--no-deps", "--no-config", "--no-header", "--quiet", "--python-version", ctx.python_minor(),
               "--index-strategy", "unsafe-best-match", "--default-index", indexes[0]]  # fmt: skip
        for extra in indexes[1:]:
            cmd += ["--index", extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            return False, proc.stderr or proc.stdout
        with open(out, encoding="utf-8") as fh:
            return True, fh.read()


def _packages(text: str) -> dict[str, dict[str, Any]]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    return {canonicalize_name(p["name"]): p for p in tomllib.loads(text).get("packages", [])}


def _missing_pin(stderr: str, todo: dict[str, Pin]) -> str | None:
    for m in _MISSING.finditer(stderr):
        name = canonicalize_name(m.group("name") or m.group("name2"))
        if name in todo:
            return name
    return None


def _cause(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("cause:") or ln.startswith("╰─▶"):
            return ln.split(":", 1)[1].strip() if ln.startswith("cause:") else ln[3:].strip()
    return lines[-1] if lines else "uv gave no reason"


__all__ = ["DEFAULT_INDEX", "Locked", "index_urls", "lock_index_pins"]
