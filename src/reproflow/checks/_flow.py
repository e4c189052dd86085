"""A small intra-function data flow: which local names carry a value derived from some source.

Deliberately simple and predictable: within one function (or the module body), a name is
*tainted* when it is assigned an expression that contains a source call or a tainted name, when
it is a ``for`` target over a tainted iterable, or when a tainted value is stored into it
(``d["k"] = v``, ``obj.attr = v``, ``items.append(v)``). Order of statements is ignored (a loop
can carry a value backwards), which errs on the side of reporting.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator

from ._context import ModuleContext, Scope, base_name

#: Methods that put their argument into the receiver.
_MUTATORS = frozenset(
    {"append", "extend", "insert", "add", "update", "setdefault", "appendleft", "extendleft", "put", "__setitem__"}
)


def walk_expr(node: ast.AST) -> Iterator[ast.AST]:
    """Like :func:`ast.walk`, in source order (depth first)."""
    yield node
    for child in ast.iter_child_nodes(node):
        yield from walk_expr(child)


class Taint:
    """Names in one scope that carry a value from a source call.

    Args:
        ctx: the module.
        scope: the function or module body to analyse.
        is_source: decides whether a call produces a tainted value.
    """

    def __init__(self, ctx: ModuleContext, scope: Scope, is_source: Callable[[ast.Call], bool]) -> None:
        self.ctx = ctx
        self.scope = scope
        self.is_source = is_source
        self.tainted: dict[str, ast.AST] = {}  #: name → the source node it came from
        if any(isinstance(n, ast.Call) and is_source(n) for n in scope.nodes):
            self._solve()  # no source call in the scope: no local name can be tainted

    def source_in(self, expr: ast.AST | None) -> ast.AST | None:
        """The first source (call node) whose value reaches ``expr``, or None."""
        if expr is None:
            return None
        for node in walk_expr(expr):
            if isinstance(node, ast.Call) and self.is_source(node):
                return node
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in self.tainted:
                return self.tainted[node.id]
        return None

    def _flows(self) -> Iterator[tuple[str, ast.AST]]:
        for a in self.scope.assignments:
            yield a.name, a.value
        for node in self.scope.nodes:
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, (ast.Subscript, ast.Attribute)):
                        name = base_name(target)
                        if name:
                            yield name, node.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in _MUTATORS:
                    name = base_name(node.func.value)
                    if name:
                        for arg in [*node.args, *(k.value for k in node.keywords)]:
                            yield name, arg

    def _solve(self) -> None:
        flows = list(self._flows())
        for _ in range(10):
            changed = False
            for name, value in flows:
                if name in self.tainted:
                    continue
                src = self.source_in(value)
                if src is not None:
                    self.tainted[name] = src
                    changed = True
            if not changed:
                break


__all__ = ["Taint", "walk_expr"]
