"""Run the rules over files, source text or one function, applying configuration and ignores."""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import linecache
import os
import sys
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ..errors import CheckPathNotFound
from ..records import Finding
from .._version import __version__
from ..capture._digest import FingerprintRows
from ._config import CheckConfig, find_config
from ._context import FunctionNode, ModuleContext
from ._registry import all_rules, parse_error_finding
from .. import _forksafe

PathLike = Union[str, "os.PathLike[str]"]

#: Folders never searched when a directory is checked.
SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "env", ".env", "__pycache__", "node_modules", ".tox", ".nox",
     ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist", "site-packages", ".reproflow", ".eggs"}
)  # fmt: skip


@dataclass
class _Analysed:
    """One module's findings, each with the node it was reported on."""

    ctx: Optional[ModuleContext]
    findings: list[tuple[Finding, Optional[ast.AST]]]


def _analyse(source: str, filename: str, config: CheckConfig) -> _Analysed:
    try:
        ctx = ModuleContext.from_source(source, filename, declared_env=config.declared_env)
    except SyntaxError as exc:
        return _Analysed(None, [(parse_error_finding(filename, exc), None)])
    except ValueError as exc:  # source holds NUL bytes
        err = SyntaxError(str(exc))
        return _Analysed(None, [(parse_error_finding(filename, err), None)])
    out: list[tuple[Finding, Optional[ast.AST]]] = []
    for code, rule in all_rules().items():
        if not config.enabled(code, filename):
            continue
        for hit in rule.hits(ctx):
            if not ctx.ignored(code, hit.node):
                out.append((rule.finding(hit, filename, ctx.lines), hit.node))
    out.sort(key=lambda fn: (fn[0].line or 0, fn[0].col or 0, fn[0].code))
    return _Analysed(ctx, out)


def check_source(source: str, filename: str = "<string>", config: Optional[CheckConfig] = None) -> list[Finding]:
    """Check Python source text.

    Args:
        source: the module's text.
        filename: the path reported in findings (and matched by per-file ignores).
        config: which rules run; default: every rule, no per-file ignores (no discovery).

    Returns:
        The findings in source order. A file that does not parse gives one ``RPF000`` finding.
    """
    return [f for f, _ in _analyse(source, filename, config or CheckConfig()).findings]


def _read(path: Path) -> str:
    with tokenize.open(path) as fh:  # honours PEP 263 encoding cookies
        return fh.read()


def python_files(paths: Iterable[PathLike]) -> list[Path]:
    """Every Python file under ``paths`` (files as given, folders searched), sorted, deduplicated.

    Raises:
        CheckPathNotFound: a path does not exist.
    """
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found[path] = None
        elif path.is_dir():
            below: list[Path] = []
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
                below.extend(Path(root) / name for name in files if name.endswith((".py", ".pyi")))
            for file in sorted(below, key=lambda p: p.as_posix()):
                found[file] = None
        else:
            raise CheckPathNotFound.at(str(raw))
    return list(found)


def check_paths(
    paths: Iterable[PathLike],
    config: Optional[CheckConfig] = None,
    *,
    select: Optional[Iterable[str]] = None,
    ignore: Optional[Iterable[str]] = None,
) -> list[Finding]:
    """Check Python files and folders.

    Args:
        paths: files and folders (folders are searched for ``*.py``; virtual environments,
            caches and build folders are skipped).
        config: settings for every file; default: each file's nearest ``pyproject.toml``
            with a ``[tool.reproflow]`` table.
        select: codes or prefixes that replace each file's selection (like ``--select``).
        ignore: codes or prefixes added to each file's ignores (like ``--ignore``).

    Returns:
        Findings ordered by file, then line.

    Raises:
        CheckPathNotFound: a path does not exist.
        CheckConfigError: a ``[tool.reproflow]`` table is invalid.
    """
    paths = list(paths)
    files = python_files(paths)
    cache: dict[Path, CheckConfig] = {}
    overridden: dict[int, CheckConfig] = {}
    select = list(select) if select else None
    ignore = list(ignore) if ignore else None
    if (select or ignore) and not files:
        CheckConfig().with_overrides(select, ignore)  # still reject unknown codes
    findings: list[Finding] = []
    for file in files:
        cfg = config if config is not None else find_config(file, cache)
        if select or ignore:
            key = id(cfg)
            if key not in overridden:
                overridden[key] = cfg.with_overrides(select, ignore)
            cfg = overridden[key]
        shown = str(file)
        try:
            source = _read(file)
        except (SyntaxError, UnicodeDecodeError) as exc:
            findings.append(parse_error_finding(shown, SyntaxError(f"cannot decode: {exc}")))
            continue
        findings.extend(f for f, _ in _analyse(source, shown, cfg).findings)
    return findings


# -------------------------------------------------------------------------------------------
# One function, at run time
# -------------------------------------------------------------------------------------------

_MODULES: dict[str, _Analysed] = {}
_LOCK = _forksafe.lock()


def _unwrap(fn: Any) -> Any:
    """The user's function behind a Prefect task, a decorator chain or a bound method."""
    for _ in range(10):
        inner = getattr(fn, "fn", None)  # prefect.Task
        if callable(inner) and inner is not fn:
            fn = inner
            continue
        inner = getattr(fn, "__func__", None)  # bound/class/static method
        if inner is not None:
            fn = inner
            continue
        break
    return inspect.unwrap(fn)


def _module_source(filename: str) -> Optional[str]:
    path = Path(filename)
    if path.is_file():
        try:
            return _read(path)
        except (OSError, SyntaxError, UnicodeDecodeError):
            return None
    lines = linecache.getlines(filename)  # notebooks and exec'd code register their source here
    return "".join(lines) if lines else None


def _shown_path(filename: str, config: CheckConfig) -> str:
    path = Path(filename)
    if not path.is_absolute():
        return filename
    for base in (config.root, Path.cwd()):
        if base is None:
            continue
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            continue
    return filename


@dataclass
class _ModuleText:
    """A module's text, and ``digest``: the SHA-256 of that text and of the stat of what its
    settings and the paths findings show follow from (the working folder, and every
    ``pyproject.toml`` from the module's folder up, where :func:`find_config` looks), so a
    cached finding is used without reading the settings. Hashed once a module, not once a task."""

    source: str
    digest: str


_TEXTS: dict[str, Optional[_ModuleText]] = {}


def _settings_stamp(filename: str) -> str:
    path = Path(filename)
    if not path.is_file():
        return "no file"
    parts = [os.getcwd()]
    folder = path.resolve().parent
    for candidate in [folder, *folder.parents]:
        try:
            st = os.stat(candidate / "pyproject.toml")
        except OSError:
            continue
        parts.append(f"{candidate}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}")
    return "\n".join(parts)


def _module_text(filename: str) -> Optional[_ModuleText]:
    """The module's text as it is read once per process (None: no source to check)."""
    with _LOCK:
        if filename not in _TEXTS:
            source = _module_source(filename)
            if source is None:
                _TEXTS[filename] = None
            else:
                digest = hashlib.sha256(f"{_settings_stamp(filename)}\0{source}".encode("utf-8", "surrogatepass"))
                _TEXTS[filename] = _ModuleText(source, digest.hexdigest())
        return _TEXTS[filename]


def _module_analysis(filename: str) -> Optional[_Analysed]:
    text = _module_text(filename)
    if text is None:
        return None
    with _LOCK:
        if filename not in _MODULES:
            config = find_config(filename) if Path(filename).is_file() else CheckConfig()
            _MODULES[filename] = _analyse(text.source, _shown_path(filename, config), config)
        return _MODULES[filename]


def _rules_stamp() -> str:
    """The version and the stat of every file of this package: the rules that gave a cached
    finding (an edited rule in a development checkout counts, not only a new release)."""
    parts = [__version__, "%d.%d" % sys.version_info[:2]]  # ast's tree differs between Pythons
    folder = os.path.dirname(os.path.abspath(__file__))
    try:
        for name in sorted(os.listdir(folder)):
            if name.endswith(".py"):
                st = os.stat(os.path.join(folder, name))
                parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}")
    except OSError:
        parts.append("unlisted")
    return "\n".join(parts)


class _FindingsCache:
    """A task function's findings across processes: each process would parse and analyse the
    task's module again at the function's first call (25 ms for a small flow module here, 80 ms
    for a 1,500-line one: every ``python flow.py`` paid it, issue 16). One row a function (its
    file, name and first line: rewritten when anything changes, so the table does not grow with
    edits), valid while its fingerprint holds: the module's text, what its settings and the paths
    findings show follow from (:class:`_ModuleText`), the function, and the rules
    (:func:`_rules_stamp`). Kept in the hash cache's SQLite file; a cache that cannot be opened
    or read only costs the analysis."""

    #: rows kept: a function of a script in a folder that is gone is never asked for again
    MAX_ROWS = 5000

    def __init__(self) -> None:
        self._rows = FingerprintRows("findings", "place", "findings", max_rows=self.MAX_ROWS)
        self._stamp: Optional[str] = None

    def key(self, text: _ModuleText, filename: str, code: Any) -> tuple[str, str]:
        if self._stamp is None:
            self._stamp = _rules_stamp()
        h = hashlib.sha256()
        for part in (self._stamp, text.digest, code.co_name, str(code.co_firstlineno)):
            h.update(part.encode("utf-8", "surrogatepass") + b"\0")
        place = json.dumps([filename, getattr(code, "co_qualname", code.co_name), code.co_firstlineno])
        return place, h.hexdigest()

    def get(self, place: str, fingerprint: str) -> Optional[list[Finding]]:
        found = self._rows.get(place, fingerprint)
        try:
            return None if found is None else [Finding.model_validate(item) for item in found]
        except (ValueError, TypeError):  # pydantic's ValidationError is a ValueError
            return None

    def put(self, place: str, fingerprint: str, found: list[Finding]) -> None:
        self._rows.put(place, fingerprint, [f.model_dump(mode="json") for f in found])


_findings = _FindingsCache()


def _find_def(ctx: ModuleContext, fn: Any) -> Optional[FunctionNode]:
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__name__", None)
    if code is None or name is None:
        return None
    candidates = [
        n for n in ast.walk(ctx.tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name
    ]
    for node in candidates:
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        if code.co_firstlineno in {first, node.lineno}:
            return node
    return candidates[0] if len(candidates) == 1 else None


def _relevant_spans(ctx: ModuleContext, fn: FunctionNode) -> list[tuple[int, int]]:
    """Line ranges whose findings concern ``fn``: its own, the module functions and classes it
    calls (transitively), and the module-level assignments of the globals it reads."""
    spans: list[tuple[int, int]] = []
    seen: set[ast.AST] = set()
    todo: list[ast.AST] = [fn]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        decorators = getattr(node, "decorator_list", [])
        start = min([node.lineno, *(d.lineno for d in decorators)])  # type: ignore[attr-defined]
        spans.append((start, node.end_lineno or node.lineno))  # type: ignore[attr-defined]
        locals_ = {a.name for s in ctx.scopes.values() if _inside(s.node, node) for a in s.assignments} if not isinstance(node, ast.ClassDef) else set()
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                target = ctx.local_function(sub)
                if target is not None:
                    todo.append(target)
                elif isinstance(sub.func, ast.Name) and sub.func.id in ctx.module_classes:
                    todo.append(ctx.module_classes[sub.func.id])
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and sub.id not in locals_:
                for a in ctx.module_scope.assignments:
                    if a.name == sub.id and isinstance(a.node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                        spans.append((a.node.lineno, a.node.end_lineno or a.node.lineno))  # type: ignore[attr-defined]
    return spans


def _inside(inner: ast.AST, outer: ast.AST) -> bool:
    return (
        getattr(inner, "lineno", -1) >= getattr(outer, "lineno", 0)
        and (getattr(inner, "end_lineno", 0) or 0) <= (getattr(outer, "end_lineno", 0) or 0)
    )


def check_function(fn: Callable[..., Any]) -> list[Finding]:
    """The findings that concern one function, for recording with its task runs.

    The function's module is analysed once per process (cached, thread-safe) with the settings
    of its nearest ``pyproject.toml``. Kept: findings inside the function, inside the module
    functions and classes it calls (transitively), and on the module-level assignments of the
    globals it reads. Seeds set anywhere in the module count, as with ``reproflow check``.

    Returns an empty list when the source is not available (built-ins, C extensions, code
    typed at a prompt without a source cache).
    """
    target = _unwrap(fn)
    code = getattr(target, "__code__", None)
    if code is None:
        return []
    text = _module_text(code.co_filename)
    if text is None:
        return []
    place, fingerprint = _findings.key(text, code.co_filename, code)
    cached = _findings.get(place, fingerprint)
    if cached is not None:
        return cached
    analysed = _module_analysis(code.co_filename)
    if analysed is None:
        return []
    if analysed.ctx is None:  # the module does not parse (it was edited after import)
        found = [f.model_copy() for f, _ in analysed.findings]
    else:
        node = _find_def(analysed.ctx, target)
        if node is None:
            return []
        spans = _relevant_spans(analysed.ctx, node)
        found = [
            f.model_copy()
            for f, _ in analysed.findings
            if f.line is not None and any(lo <= f.line <= hi for lo, hi in spans)
        ]
    _findings.put(place, fingerprint, found)
    return found


def clear_function_cache() -> None:
    """Forget analysed modules (after editing source in a long-lived process)."""
    with _LOCK:
        _MODULES.clear()
        _TEXTS.clear()


__all__ = ["check_function", "check_paths", "check_source", "clear_function_cache", "python_files"]
