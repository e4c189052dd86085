"""Findings as text, JSON and SARIF 2.1.0."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from ..records import Finding
from ._registry import PARSE_ERROR_CODE, all_rules

DOCS_URL = "https://github.com/reproflow/reproflow/blob/main/docs/checks.md"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def render_text(findings: Sequence[Finding]) -> str:
    """One block per finding (``path:line:col: CODE message`` and its fix), then a summary."""
    lines = []
    for f in findings:
        where = f"{f.path}:{f.line or 0}:{f.col or 0}"
        lines.append(f"{where}: {f.code} {f.message}")
        if f.fix:
            lines.append(f"    fix: {f.fix}")
    if findings:
        files = len({f.path for f in findings})
        errors = sum(1 for f in findings if f.severity == "error")
        noun = "finding" if len(findings) == 1 else "findings"
        lines.append(
            f"\n{len(findings)} {noun} ({errors} error{'s' if errors != 1 else ''}, "
            f"{len(findings) - errors} other) in {files} file{'s' if files != 1 else ''}; "
            "silence one with `# reproflow: ignore[CODE]`, see docs/checks.md"
        )
    else:
        lines.append("No reproducibility findings.")
    return "\n".join(lines) + "\n"


def render_json(findings: Sequence[Finding]) -> str:
    """A JSON array of findings (the :class:`~reproflow.records.Finding` fields)."""
    return json.dumps([f.model_dump(mode="json") for f in findings], indent=2) + "\n"


def _uri(path: str | None) -> str:
    if not path:
        return ""
    return PurePath(path).as_posix()


def sarif_log(findings: Sequence[Finding], *, tool_version: str | None = None) -> dict[str, Any]:
    """A SARIF 2.1.0 log with every rule described and one result per finding."""
    from .._version import __version__

    rules = all_rules()
    descriptors: list[dict[str, Any]] = [
        {
            "id": PARSE_ERROR_CODE,
            "name": "parse-error",
            "shortDescription": {"text": "The file cannot be parsed, so it was not checked."},
            "defaultConfiguration": {"level": "error"},
            "helpUri": f"{DOCS_URL}#rpf000-parse-error",
        }
    ]
    for rule in rules.values():
        descriptors.append(
            {
                "id": rule.code,
                "name": rule.name,
                "shortDescription": {"text": rule.summary},
                "fullDescription": {"text": rule.rationale},
                "help": {"text": f"Fix: {rule.fix}", "markdown": f"**Fix:** {rule.fix}"},
                "helpUri": f"{DOCS_URL}#{rule.help_anchor}",
                "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
                "properties": {"tags": ["reproducibility"]},
            }
        )
    index = {d["id"]: i for i, d in enumerate(descriptors)}
    results = []
    for f in findings:
        region: dict[str, int] = {}
        if f.line:
            region["startLine"] = f.line
        if f.col:
            region["startColumn"] = f.col
        location: dict[str, Any] = {"artifactLocation": {"uri": _uri(f.path)}}
        if f.path and not PurePath(f.path).is_absolute():
            location["artifactLocation"]["uriBaseId"] = "%SRCROOT%"
        if region:
            location["region"] = region
        result: dict[str, Any] = {
            "ruleId": f.code,
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f"{f.message}. Fix: {f.fix}" if f.fix else f.message},
            "locations": [{"physicalLocation": location}],
        }
        if f.code in index:
            result["ruleIndex"] = index[f.code]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "reproflow",
                        "version": tool_version or __version__,
                        "informationUri": DOCS_URL,
                        "rules": descriptors,
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "The folder reproflow check ran in."}}},
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def render_sarif(findings: Sequence[Finding]) -> str:
    return json.dumps(sarif_log(findings), indent=2) + "\n"


__all__ = ["render_json", "render_sarif", "render_text", "sarif_log"]
