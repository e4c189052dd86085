"""The rule registry: every rule is a small object with one shared signature.

A rule is called with a :class:`~reproflow.checks._context.ModuleContext` and returns the
:class:`~reproflow.records.Finding` objects it found, unfiltered (configuration and inline
``# reproflow: ignore`` comments are applied by the engine). Each rule is testable alone::

    from reproflow.checks import get_rule
    from reproflow.checks._context import ModuleContext

    ctx = ModuleContext.from_source("import random\\nx = random.random()\\n", "m.py")
    get_rule("RPF101")(ctx)   # → [Finding(code="RPF101", line=2, ...)]
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Optional

from ..records import Finding
from ._context import ModuleContext

Severity = Literal["error", "warning", "info"]

#: Modules that define rules; imported on first use of the registry.
_RULE_MODULES = (
    "reproflow.checks._randomness",
    "reproflow.checks._clock",
    "reproflow.checks._stamps",
    "reproflow.checks._paths",
    "reproflow.checks._unseen",
    "reproflow.checks._environ",
    "reproflow.checks._network",
    "reproflow.checks._ordering",
    "reproflow.checks._hardware",
)


@dataclass(frozen=True)
class Hit:
    """One place a rule fires: the node, what is wrong there, and a fix when it is specific."""

    node: ast.AST
    message: str
    fix: Optional[str] = None


@dataclass(frozen=True)
class Rule:
    """A reproducibility rule: stable code, documentation, and the function that finds hits."""

    code: str  #: "RPF101"; never reused for a different meaning
    name: str  #: kebab-case slug, e.g. "unseeded-python-random"
    severity: Severity
    summary: str  #: one line, what the rule reports
    rationale: str  #: why it breaks reproducibility
    fix: str  #: the general fix
    find: Callable[[ModuleContext], Iterable[Hit]]

    def hits(self, ctx: ModuleContext) -> list[Hit]:
        """The raw hits in one module, in source order, one per location."""
        seen: set[tuple[int, int]] = set()
        out = []
        for hit in self.find(ctx):
            key = (getattr(hit.node, "lineno", 0), getattr(hit.node, "col_offset", 0))
            if key in seen:
                continue
            seen.add(key)
            out.append(hit)
        out.sort(key=lambda h: (getattr(h.node, "lineno", 0), getattr(h.node, "col_offset", 0)))
        return out

    def finding(self, hit: Hit, path: str, lines: Optional[list[str]] = None) -> Finding:
        """The :class:`Finding` for a hit; ``col`` is 1-based, in characters (not bytes)."""
        line = getattr(hit.node, "lineno", None)
        col = getattr(hit.node, "col_offset", None)
        if col is not None and line is not None and lines is not None and 0 < line <= len(lines):
            col = len(lines[line - 1].encode("utf-8")[:col].decode("utf-8", errors="replace"))
        return Finding(
            code=self.code,
            message=hit.message,
            path=path,
            line=line,
            col=None if col is None else col + 1,
            severity=self.severity,
            fix=hit.fix or self.fix,
        )

    def __call__(self, ctx: ModuleContext) -> list[Finding]:
        """Run the rule on one module; no configuration, no inline ignores."""
        return [self.finding(hit, ctx.filename, ctx.lines) for hit in self.hits(ctx)]

    @property
    def help_anchor(self) -> str:
        return f"{self.code.lower()}-{self.name}"


_REGISTRY: dict[str, Rule] = {}
_loaded = False


def rule(
    code: str,
    name: str,
    *,
    severity: Severity,
    summary: str,
    rationale: str,
    fix: str,
) -> Callable[[Callable[[ModuleContext], Iterable[Hit]]], Rule]:
    """Register the decorated ``find(ctx) -> Iterable[Hit]`` function as a rule."""

    def decorate(find: Callable[[ModuleContext], Iterable[Hit]]) -> Rule:
        if code in _REGISTRY:
            raise RuntimeError(f"rule code {code} registered twice")
        made = Rule(code, name, severity, " ".join(summary.split()), " ".join(rationale.split()), " ".join(fix.split()), find)
        _REGISTRY[code] = made
        return made

    return decorate


def all_rules() -> dict[str, Rule]:
    """Every registered rule by code, sorted by code."""
    global _loaded
    if not _loaded:
        for module in _RULE_MODULES:
            importlib.import_module(module)
        _loaded = True
    return dict(sorted(_REGISTRY.items()))


def get_rule(code: str) -> Rule:
    """The rule with this code; :class:`KeyError` if there is none."""
    return all_rules()[code.upper()]


#: Reported (always, whatever the selection) when a file cannot be parsed.
PARSE_ERROR_CODE = "RPF000"


def parse_error_finding(path: str, exc: SyntaxError) -> Finding:
    return Finding(
        code=PARSE_ERROR_CODE,
        message=f"cannot parse this file, so it was not checked: {exc.msg}",
        path=path,
        line=exc.lineno,
        col=exc.offset,
        severity="error",
        fix="fix the syntax error (or check it with the Python version it is written for)",
    )


__all__ = ["Hit", "PARSE_ERROR_CODE", "Rule", "Severity", "all_rules", "get_rule", "parse_error_finding", "rule"]
