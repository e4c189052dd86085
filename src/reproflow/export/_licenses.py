"""License report of a recorded environment: each distribution's license, classified.

Sources, in order: the ``License-Expression``/``License`` metadata recorded as
``Distribution.license`` (an SPDX expression, a name, or sometimes the whole license text) and the
``License ::`` trove classifiers. Categories:

* ``permissive`` (MIT, BSD, Apache, ISC, PSF, ...);
* ``weak-copyleft`` (LGPL, MPL, EPL, CDDL, ...): file- or library-level obligations;
* ``strong-copyleft`` (GPL, AGPL, ...): obligations on the whole combined work;
* ``unknown``: nothing recognisable was recorded.

``A OR B`` takes the most permissive choice, ``A AND B`` the most restrictive.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, Field

from ..records import Distribution, Environment
from ._common import ExportContext

Category = Literal["permissive", "weak-copyleft", "strong-copyleft", "public-domain", "proprietary", "unknown"]
_RANK = {"public-domain": 0, "permissive": 1, "weak-copyleft": 2, "strong-copyleft": 3, "proprietary": 4, "unknown": 5}

# (pattern on an upper-cased SPDX id or name, category); first match wins, so LGPL/AGPL come
# before GPL.
_RULES: list[tuple[str, Category]] = [
    (r"^(L?GPL-?2\.0-OR-LATER WITH .*EXCEPTION)", "weak-copyleft"),
    (r"\bLGPL|LESSER GENERAL PUBLIC|LIBRARY GENERAL PUBLIC", "weak-copyleft"),
    (r"\bAGPL|AFFERO", "strong-copyleft"),
    (r"\bGPL|GENERAL PUBLIC LICENSE", "strong-copyleft"),
    (r"\bSSPL|\bOSL-|OPEN SOFTWARE LICENSE|\bEUPL|\bCECILL(?!-[BC])|\bRPL-|\bSLEEPYCAT", "strong-copyleft"),
    (r"\bMPL|MOZILLA PUBLIC|\bEPL|ECLIPSE PUBLIC|\bCDDL|COMMON DEVELOPMENT AND DISTRIBUTION|\bCPL-|\bMS-RL"
     r"|\bCECILL-C|\bERPL|\bAPSL|\bIPL-", "weak-copyleft"),
    (r"\bCC0|UNLICENSE|PUBLIC DOMAIN|\bWTFPL|\b0BSD", "public-domain"),
    (r"\bMIT\b|\bX11\b|\bBSD|\bAPACHE|\bISC\b|\bPSF|PYTHON SOFTWARE FOUNDATION|PYTHON-2\.0|\bZLIB|\bZPL"
     r"|\bHPND|\bBSL-1\.0|BOOST|\bNCSA|\bAFL|\bCC-BY-\d|\bCC-BY-4|\bMIT-CMU|\bUPL|\bW3C|\bCNRI"
     r"|\bARTISTIC|\bPOSTGRESQL|\bOFL|\bUNICODE|\bMULAN|\bCECILL-B|\bBLUEOAK|\bDFSG|\bEDL"
     r"|\bECL|\bZOPE|\bMIT-0|\bCMU|PERMISSIVE", "permissive"),
    (r"PROPRIETARY|COMMERCIAL|ALL RIGHTS RESERVED|\bBUSL|BUSINESS SOURCE|\bELASTIC|\bCC-BY-NC|\bNVIDIA",
     "proprietary"),
]  # fmt: skip
_UNKNOWN_VALUES = {"", "UNKNOWN", "NONE", "OTHER", "OTHER/PROPRIETARY LICENSE", "LICENSE", "SEE LICENSE",
                   "SEE LICENSE FILE", "DUAL LICENSE", "OSI APPROVED"}  # fmt: skip


class LicenseEntry(BaseModel):
    name: str
    version: str
    license: str  #: what was recorded, shortened ("" when nothing)
    category: Category
    source: Literal["expression", "metadata", "classifier", "text", "none"]
    copyleft: bool
    flags: list[str] = Field(default_factory=list)


class LicenseReport(BaseModel):
    run_id: str
    entries: list[LicenseEntry]

    @property
    def copyleft(self) -> list[LicenseEntry]:
        return [e for e in self.entries if e.copyleft]

    @property
    def unknown(self) -> list[LicenseEntry]:
        return [e for e in self.entries if e.category == "unknown"]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.category] = out.get(e.category, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: _RANK[kv[0]]))

    def to_markdown(self) -> str:
        lines = [f"# License report for run {self.run_id}", ""]
        lines.append(", ".join(f"{n} {c}" for c, n in self.counts().items()) or "no distributions recorded")
        lines.append("")
        flagged = [e for e in self.entries if e.flags]
        if flagged:
            lines += ["## Flagged", "", "| package | version | license | category | why |", "|---|---|---|---|---|"]
            for e in flagged:
                lines.append(f"| {e.name} | {e.version} | {_cell(e.license)} | {e.category} | {'; '.join(e.flags)} |")
            lines.append("")
        lines += ["## All packages", "", "| package | version | license | category |", "|---|---|---|---|"]
        for e in self.entries:
            lines.append(f"| {e.name} | {e.version} | {_cell(e.license)} | {e.category} |")
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or "—"


def classify_text(text: str) -> Category:
    """Classify one license id, name or expression."""
    expr = text.strip()
    if expr.upper() in _UNKNOWN_VALUES:
        return "unknown"
    tokens = re.findall(r"\(|\)|\bAND\b|\bOR\b|[^\s()]+(?:\s+WITH\s+[^\s()]+)?", expr)
    if any(t in ("AND", "OR") for t in tokens) and len(expr) < 200:
        return _expr(tokens)
    return _single(expr)


def _single(text: str) -> Category:
    up = text.upper()
    if up.strip() in _UNKNOWN_VALUES:
        return "unknown"
    if "WITH" in up and ("CLASSPATH-EXCEPTION" in up or "LINKING-EXCEPTION" in up or "GCC-EXCEPTION" in up):
        return "weak-copyleft"
    for pattern, cat in _RULES:
        if re.search(pattern, up):
            return cat
    return "unknown"


def _expr(tokens: list[str]) -> Category:
    """Evaluate AND/OR over categories: OR picks the freest, AND the most restrictive."""
    pos = 0

    def parse_or() -> Category:
        nonlocal pos
        left = parse_and()
        while pos < len(tokens) and tokens[pos] == "OR":
            pos += 1
            right = parse_and()
            left = min(left, right, key=lambda c: _RANK[c])
        return left

    def parse_and() -> Category:
        nonlocal pos
        left = parse_atom()
        while pos < len(tokens) and tokens[pos] == "AND":
            pos += 1
            right = parse_atom()
            left = max(left, right, key=lambda c: _RANK[c])
        return left

    def parse_atom() -> Category:
        nonlocal pos
        if pos >= len(tokens):
            return "unknown"
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            inner = parse_or()
            if pos < len(tokens) and tokens[pos] == ")":
                pos += 1
            return inner
        return _single(tok)

    return parse_or()


def _classifier_license(classifier: str) -> str:
    parts = [p.strip() for p in classifier.split("::")]
    return parts[-1] if len(parts) > 1 else classifier


def license_entry(dist: Distribution) -> LicenseEntry:
    """Classify one recorded distribution."""
    raw = (dist.license or "").strip()
    flags: list[str] = []
    source: Literal["expression", "metadata", "classifier", "text", "none"] = "none"
    category: Category = "unknown"
    shown = ""
    if raw and raw.upper() not in _UNKNOWN_VALUES:
        if "\n" in raw or len(raw) > 120:
            source, shown = "text", raw.splitlines()[0].strip()[:80]
            category = _single(raw[:600])
        else:
            source, shown = ("expression" if re.search(r"\b(AND|OR|WITH)\b|^[A-Za-z0-9.+-]+$", raw) else "metadata"), raw
            category = classify_text(raw)
    if category == "unknown":
        specific = [c for c in dist.license_classifiers if _classifier_license(c) not in ("OSI Approved", "")]
        if specific:
            names = [_classifier_license(c) for c in specific]
            cats = [_single(n) for n in names]
            # several classifiers usually mean a choice (dual licensing): take the freest.
            category = min(cats, key=lambda c: _RANK[c])
            source, shown = "classifier", " / ".join(names)
    if category == "unknown":
        flags.append("unknown license: check the package's LICENSE file")
    copyleft = category in ("weak-copyleft", "strong-copyleft")
    if category == "strong-copyleft":
        flags.append("strong copyleft: distributing the combined work may require releasing it under the same license")
    elif category == "weak-copyleft":
        flags.append("weak copyleft: modifications to this package must be shared under its license")
    elif category == "proprietary":
        flags.append("proprietary or restricted terms")
    return LicenseEntry(name=dist.name, version=dist.version, license=shown, category=category, source=source,
                        copyleft=copyleft, flags=flags)  # fmt: skip


def license_report(environment: Environment, run_id: str = "") -> LicenseReport:
    """Classify every distribution of an environment."""
    entries = sorted((license_entry(d) for d in environment.distributions), key=lambda e: e.name.lower())
    return LicenseReport(run_id=run_id, entries=entries)


def export_licenses(ctx: ExportContext) -> str:
    """Markdown by default; JSON when writing to a ``.json`` file or with ``as_json=True``."""
    report = license_report(ctx.environment, ctx.run_id)
    out = str(ctx.options.get("out") or "")
    if ctx.options.get("as_json") or out.endswith(".json"):
        data = report.model_dump(mode="json")
        data["counts"] = report.counts()
        return json.dumps(data, indent=2) + "\n"
    return report.to_markdown()


__all__ = ["LicenseEntry", "LicenseReport", "classify_text", "export_licenses", "license_entry", "license_report"]
