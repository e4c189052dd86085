"""The house follows the design (docs/architecture.md): layers import only downwards, no circles,
and no workflow engine is imported below ``reproflow.engines``.

The import graph is read from the source with ``ast`` (every ``import`` statement, also those inside
functions), so a lazy import cannot hide a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: bottom to top; a module may import its own layer and the layers below it
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground", ("reproflow.records", "reproflow.errors", "reproflow.values", "reproflow._version", "reproflow._forksafe",
                "reproflow._ast")),
    ("store", ("reproflow.store",)),
    ("capture", ("reproflow.capture", "reproflow.checks")),
    ("recorder", ("reproflow.recorder",)),
    ("engines", ("reproflow.engines",)),
    ("tools", ("reproflow.replay", "reproflow.export", "reproflow.pack")),
    ("analysis", ("reproflow.analysis",)),
    ("faces", ("reproflow.cli", "reproflow.flows", "reproflow.snakemake", "reproflow.airflow", "reproflow")),
]
ENGINES = ("prefect", "prefect_dask", "airflow", "snakemake")


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "reproflow").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    is_pkg = path.name == "__init__.py"
    pkg = name if is_pkg else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:  # `from . import _spool` imports a module, not its package's names
                found.add(f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target)
    return found


def _layer(module: str) -> int:
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    return rank


GRAPH = {m: {t for t in _imports(m, p) if t in MODULES and t != m} for m, p in MODULES.items()}


def test_every_module_has_a_layer() -> None:
    assert [m for m in MODULES if _layer(m) < 0] == []


def test_layers_import_only_downwards() -> None:
    upward = [f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
              for m, targets in GRAPH.items() for t in targets
              if _layer(t) > _layer(m)]
    assert upward == []


def test_no_engine_is_imported_below_the_engine_adapters() -> None:
    engines_layer = [name for name, _ in LAYERS].index("engines")
    found = []
    for m, path in MODULES.items():
        if _layer(m) >= engines_layer:
            continue
        for t in _imports(m, path):
            if t.split(".")[0] in ENGINES:
                found.append(f"{m} imports {t}")
    assert found == []


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_no_import_circles_between_packages() -> None:
    edges = {}
    for m, targets in GRAPH.items():
        for t in targets:
            a, b = _package(m), _package(t)
            if a != b and "reproflow" not in (a, b):
                edges.setdefault(a, set()).add(b)
    assert _cycles(edges) == []


def test_no_import_circles_between_modules() -> None:
    # a package's __init__ re-exporting its own submodules is not a circle of design
    edges = {m: {t for t in ts if not (MODULES[t].name == "__init__.py" and m.startswith(t + "."))}
             for m, ts in GRAPH.items()}
    assert _cycles(edges) == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize("layer", [name for name, _ in LAYERS])
def test_the_architecture_page_names_every_layer(layer: str) -> None:
    page = (SRC.parent / "docs" / "architecture.md").read_text()
    assert f"**{layer}**" in page


def test_every_import_of_reproflow_names_a_module_that_exists() -> None:
    """A relative import one dot short (code moved between packages) fails only when that line
    runs, which for a function-level import may be a rare path: find it here."""
    missing = []
    for m, path in MODULES.items():
        for t in _imports(m, path):
            if t.startswith("reproflow") and t not in MODULES:
                missing.append(f"{m} imports {t}")
    assert missing == []
