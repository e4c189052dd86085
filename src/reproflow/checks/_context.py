"""One parsed module, with what every rule needs: names resolved, scopes, a small data flow.

Rules never walk raw source. They ask a :class:`ModuleContext` what a call resolves to
(``np.random.rand`` → ``numpy.random.rand``, ``from random import random`` → ``random.random``),
which function a node sits in, where a name was assigned in that function, and whether a value
is consumed in a way where order does not matter (``sorted(...)``, ``len(...)``, ``x in ...``).
"""

from __future__ import annotations

import ast
import builtins
import io
import re
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Union

from .._ast import parse as parse_source

ScopeNode = Union[ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda]
FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]

_FUNCTION_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_NESTED_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_BUILTIN_NAMES = frozenset(dir(builtins))

_IGNORE_RE = re.compile(r"#\s*reproflow\s*:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)

#: Calls whose result does not depend on the order of the iterable they are given.
ORDERLESS_CALLS = frozenset(
    {
        "builtins.sorted",
        "builtins.set",
        "builtins.frozenset",
        "builtins.len",
        "builtins.sum",
        "builtins.min",
        "builtins.max",
        "builtins.any",
        "builtins.all",
        "builtins.bool",
        "collections.Counter",
        "math.fsum",
        "numpy.sort",
        "numpy.unique",
        "heapq.nsmallest",
        "heapq.nlargest",
    }
)
#: Calls that keep the order of what they are given: look at what consumes *them*.
ORDER_PRESERVING_CALLS = frozenset(
    {
        "builtins.list",
        "builtins.tuple",
        "builtins.iter",
        "builtins.filter",
        "builtins.map",
        "builtins.enumerate",
        "builtins.reversed",
        "builtins.zip",
        "itertools.chain",
        "itertools.islice",
    }
)

#: Decorators that mark a function as a pipeline task or flow (its return value is an output).
TASK_DECORATOR_SUFFIXES = ("task", "flow", "repro_task", "asset", "op")


@dataclass
class Assignment:
    """``name`` gets (something derived from) ``value`` at ``line`` inside one scope."""

    name: str
    value: ast.expr
    line: int
    node: ast.AST  #: the statement or expression that assigns


@dataclass
class Scope:
    """A module, function or lambda body: its own names, assignments and nodes."""

    node: ScopeNode
    params: dict[str, ast.arg] = field(default_factory=dict)
    assignments: list[Assignment] = field(default_factory=list)
    nodes: list[ast.AST] = field(default_factory=list)  #: every node, nested scopes excluded
    import_names: set[str] = field(default_factory=set)

    @property
    def local_names(self) -> set[str]:
        names = {a.name for a in self.assignments} | set(self.params)
        return names - self.import_names


def _target_names(target: ast.AST) -> Iterator[str]:
    """Names bound by an assignment target (``a``, ``a, b``, ``*rest``)."""
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from _target_names(elt)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


def base_name(node: ast.AST) -> str | None:
    """The variable at the root of ``a``, ``a.b.c``, ``a[0]``, ``a.b[1].c``."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def const_str(node: ast.AST | None) -> str | None:
    """The value of a string literal (or the literal start of an f-string), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def keyword(call: ast.Call, name: str) -> ast.keyword | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw
    return None


def is_none(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


class ModuleContext:
    """A parsed module and the facts rules share. Build with :meth:`from_source`."""

    def __init__(
        self, tree: ast.Module, source: str, filename: str, *, declared_env: frozenset[str] = frozenset()
    ) -> None:
        self.tree = tree
        #: Environment variables the project declares as inputs (``declared-env``), for RPF401.
        self.declared_env = declared_env
        self.source = source
        self.filename = filename
        self.lines = source.splitlines()
        self.parents: dict[ast.AST, ast.AST] = {}
        #: Every node of the module, breadth first (walk it once, not once per rule).
        self.nodes: list[ast.AST] = list(ast.walk(tree))
        self.all_calls: list[ast.Call] = []
        for node in self.nodes:
            if isinstance(node, ast.Call):
                self.all_calls.append(node)
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
        self.aliases: dict[str, str] = {}
        self._collect_imports()
        self.scopes: dict[ast.AST, Scope] = {}
        self._build_scope(tree)
        self.module_functions: dict[str, FunctionNode] = {
            n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        self.module_classes: dict[str, ast.ClassDef] = {
            n.name: n for n in tree.body if isinstance(n, ast.ClassDef)
        }
        self._qual_cache: dict[ast.AST, str | None] = {}
        #: Per-module results rules share (e.g. which libraries the module seeds).
        self.memo: dict[str, object] = {}

    @classmethod
    def from_source(
        cls, source: str, filename: str = "<string>", *, declared_env: frozenset[str] = frozenset()
    ) -> ModuleContext:
        """Parse ``source``; raises :class:`SyntaxError` as :func:`ast.parse` does."""
        tree = parse_source(source, filename, type_comments=False)
        return cls(tree, source, filename, declared_env=declared_env)

    # ---------------------------------------------------------------------------------------
    # Names
    # ---------------------------------------------------------------------------------------

    def _collect_imports(self) -> None:
        for node in self.nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name == "*":
                        continue
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def imports(self, *prefixes: str) -> bool:
        """Whether the module imports anything from one of these top-level packages."""
        return any(
            value == p or value.startswith(p + ".") for value in self.aliases.values() for p in prefixes
        )

    def qualname(self, node: ast.AST) -> str | None:
        """The dotted name an expression refers to, through import aliases; None if unknown.

        ``np.random.rand`` with ``import numpy as np`` → ``"numpy.random.rand"``; ``len`` →
        ``"builtins.len"``; a name that is a parameter or local variable of its function → None.
        """
        if node in self._qual_cache:
            return self._qual_cache[node]
        result: str | None = None
        if isinstance(node, ast.Name):
            scope = self.scope_of(node)
            shadowed = node.id in scope.local_names if scope.node is not self.tree else False
            if not shadowed:
                if node.id in self.aliases:
                    result = self.aliases[node.id]
                elif node.id in _BUILTIN_NAMES and node.id not in self.module_scope.local_names:
                    result = f"builtins.{node.id}"
        elif isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            result = f"{base}.{node.attr}" if base else None
        self._qual_cache[node] = result
        return result

    def call_name(self, call: ast.Call) -> str | None:
        return self.qualname(call.func)

    @staticmethod
    def method_name(call: ast.Call) -> str | None:
        """``x.y.z(...)`` → ``"z"``; a plain ``f(...)`` → None."""
        return call.func.attr if isinstance(call.func, ast.Attribute) else None

    def local_function(self, call: ast.Call) -> FunctionNode | None:
        """The module-level ``def`` a call refers to by plain name, if any."""
        if isinstance(call.func, ast.Name) and call.func.id in self.module_functions:
            scope = self.scope_of(call.func)
            if scope.node is self.tree or call.func.id not in scope.local_names:
                return self.module_functions[call.func.id]
        return None

    # ---------------------------------------------------------------------------------------
    # Scopes
    # ---------------------------------------------------------------------------------------

    def _build_scope(self, node: ScopeNode) -> None:
        scope = Scope(node)
        self.scopes[node] = scope
        if isinstance(node, _FUNCTION_TYPES):
            args = node.args
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if a is not None:
                    scope.params[a.arg] = a
            body: list[ast.AST] = [node.body] if isinstance(node, ast.Lambda) else list(node.body)  # type: ignore[list-item]
        else:
            body = list(node.body)
        stack = list(reversed(body))
        nested: list[ScopeNode] = []
        while stack:
            cur = stack.pop()
            scope.nodes.append(cur)
            self._record_assignment(scope, cur)
            if isinstance(cur, _NESTED_TYPES):
                # Decorators and defaults run in this scope; the body is its own.
                outer: list[ast.AST] = list(getattr(cur, "decorator_list", []))
                if isinstance(cur, ast.ClassDef):
                    outer += [*cur.bases, *cur.keywords]
                    for stmt in cur.body:  # a class body runs in the enclosing scope for us
                        outer.append(stmt)
                else:
                    outer += [d for d in [*cur.args.defaults, *cur.args.kw_defaults] if d is not None]
                    nested.append(cur)
                    if not isinstance(cur, ast.Lambda) and not isinstance(self.parents.get(cur), ast.ClassDef):
                        scope.assignments.append(Assignment(cur.name, ast.Constant(None), cur.lineno, cur))
                stack.extend(reversed(outer))
                continue
            stack.extend(reversed(list(ast.iter_child_nodes(cur))))
        for child in nested:
            self._build_scope(child)

    @staticmethod
    def _record_assignment(scope: Scope, node: ast.AST) -> None:
        add = scope.assignments.append
        if isinstance(node, ast.Assign):
            for target in node.targets:
                for name in _target_names(target):
                    add(Assignment(name, node.value, node.lineno, node))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            for name in _target_names(node.target):
                add(Assignment(name, node.value, node.lineno, node))
        elif isinstance(node, ast.AugAssign):
            for name in _target_names(node.target):
                add(Assignment(name, node.value, node.lineno, node))
        elif isinstance(node, ast.NamedExpr):
            add(Assignment(node.target.id, node.value, node.lineno, node))
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            line = getattr(node, "lineno", getattr(node.iter, "lineno", 0))
            for name in _target_names(node.target):
                add(Assignment(name, node.iter, line, node))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    for name in _target_names(item.optional_vars):
                        add(Assignment(name, item.context_expr, node.lineno, node))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                scope.import_names.add(name)

    @cached_property
    def module_scope(self) -> Scope:
        return self.scopes[self.tree]

    def scope_of(self, node: ast.AST) -> Scope:
        """The innermost function (or the module) whose body holds ``node``."""
        cur = self.parents.get(node)
        child = node
        while cur is not None:
            if isinstance(cur, _FUNCTION_TYPES):
                # A default value or decorator belongs to the enclosing scope.
                if isinstance(cur, ast.Lambda):
                    if child is cur.body:
                        return self.scopes[cur]
                elif child in cur.body:
                    return self.scopes[cur]
            child = cur
            cur = self.parents.get(cur)
        return self.module_scope

    def enclosing_function(self, node: ast.AST) -> FunctionNode | None:
        """The innermost ``def`` (not lambda) around ``node``."""
        cur = self.parents.get(node)
        while cur is not None:
            if isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return cur
            cur = self.parents.get(cur)
        return None

    def statement_of(self, node: ast.AST) -> ast.stmt | None:
        cur: ast.AST | None = node
        while cur is not None and not isinstance(cur, ast.stmt):
            cur = self.parents.get(cur)
        return cur

    def assignments_to(self, name: str, scope: Scope, before: int | None = None) -> list[Assignment]:
        """Assignments to ``name`` in ``scope`` (and the module for globals), latest last."""
        found = [a for a in scope.assignments if a.name == name and (before is None or a.line <= before)]
        if not found and scope.node is not self.tree and name not in scope.local_names:
            found = [a for a in self.module_scope.assignments if a.name == name]
        return found

    def latest_value(self, name_node: ast.Name, depth: int = 0) -> ast.expr | None:
        """The expression last assigned to a name before its use, within its scope."""
        scope = self.scope_of(name_node)
        for a in reversed(self.assignments_to(name_node.id, scope, before=name_node.lineno)):
            if a.node is self.statement_of(name_node) and not isinstance(a.node, (ast.For, ast.AsyncFor)):
                continue  # `x = f(x)`: look at the earlier x
            return a.value
        return None

    def resolve_origin(self, node: ast.AST, depth: int = 0) -> Iterator[ast.AST]:
        """Yield ``node`` and the expressions it was derived from, through local assignments.

        ``ds = tf.data.Dataset.range(9); ds.shuffle(3)``: the origins of ``ds`` include the call
        to ``tf.data.Dataset.range``. Follows method chains, ``/`` on paths and plain names.
        """
        if depth > 8:
            return
        yield node
        if isinstance(node, ast.Call):
            yield from self.resolve_origin(node.func, depth + 1)
        elif isinstance(node, ast.Attribute):
            yield from self.resolve_origin(node.value, depth + 1)
        elif isinstance(node, ast.BinOp):
            yield from self.resolve_origin(node.left, depth + 1)
        elif isinstance(node, ast.Name):
            value = self.latest_value(node)
            if value is not None:
                yield from self.resolve_origin(value, depth + 1)

    def param_annotation(self, name_node: ast.Name) -> ast.expr | None:
        scope = self.scope_of(name_node)
        arg = scope.params.get(name_node.id)
        if arg is None or name_node.id in {a.name for a in scope.assignments}:
            return None
        return arg.annotation

    # ---------------------------------------------------------------------------------------
    # Order of consumption
    # ---------------------------------------------------------------------------------------

    def consumed_unordered(self, node: ast.AST) -> bool:
        """Whether the value of ``node`` ends up where its iteration order cannot matter.

        True inside ``sorted(...)``, ``set(...)``, ``len(...)``, ``sum(...)``, a set comprehension,
        an ``in`` test, a truth test; also through order-keeping wrappers such as ``list(...)`` or
        a generator expression that is itself consumed that way.
        """
        cur = node
        while True:
            parent = self.parents.get(cur)
            if parent is None or isinstance(parent, ast.stmt) and not isinstance(parent, (ast.If, ast.While, ast.Assert)):
                return False
            if isinstance(parent, (ast.If, ast.While, ast.Assert)):
                return cur is parent.test
            if isinstance(parent, ast.Call):
                if cur is parent.func:
                    return False
                name = self.call_name(parent)
                if name in ORDERLESS_CALLS:
                    return True
                if name in ORDER_PRESERVING_CALLS:
                    cur = parent
                    continue
                if isinstance(parent.func, ast.Attribute) and parent.func.attr in {"update", "union", "issubset", "issuperset", "isdisjoint", "intersection", "difference"}:
                    return True
                return False
            if isinstance(parent, ast.comprehension):
                if cur is not parent.iter:
                    return False
                comp = self.parents[parent]
                if isinstance(comp, ast.SetComp):
                    return True
                cur = comp
                continue
            if isinstance(parent, ast.Compare):
                if cur in parent.comparators:
                    idx = parent.comparators.index(cur)
                    return isinstance(parent.ops[idx], (ast.In, ast.NotIn))
                return False
            if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.Not):
                return True
            if isinstance(parent, ast.BoolOp):
                return self.consumed_unordered(parent) or isinstance(self.parents.get(parent), (ast.If, ast.While))
            if isinstance(parent, ast.IfExp):
                return cur is parent.test
            if isinstance(parent, ast.BinOp) and isinstance(parent.op, (ast.BitOr, ast.BitAnd, ast.Sub, ast.BitXor)):
                return True  # set algebra
            if isinstance(parent, ast.Starred):
                cur = parent
                continue
            return False

    # ---------------------------------------------------------------------------------------
    # Comments, docstrings, decorators
    # ---------------------------------------------------------------------------------------

    @cached_property
    def ignores(self) -> dict[int, frozenset[str] | None]:
        """Line → codes ignored there by ``# reproflow: ignore[...]`` (None: every code)."""
        out: dict[int, frozenset[str] | None] = {}
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(self.source).readline))
        except (tokenize.TokenError, SyntaxError):  # pragma: no cover - ast.parse passed
            return out
        for tok in tokens:
            if tok.type != tokenize.COMMENT:
                continue
            match = _IGNORE_RE.search(tok.string)
            if not match:
                continue
            line = tok.start[0]
            codes = match.group("codes")
            if codes is None:  # bare `# reproflow: ignore`: every code
                out[line] = None
            elif line not in out or out[line] is not None:  # `ignore[]` lists nothing: ignores nothing
                parsed = frozenset(c.strip().upper() for c in codes.split(",") if c.strip())
                out[line] = (out.get(line) or frozenset()) | parsed
        return out

    def ignored(self, code: str, node: ast.AST) -> bool:
        """Whether an inline comment on the node's statement silences ``code``."""
        ignores = self.ignores
        if not ignores:
            return False
        line = getattr(node, "lineno", None)
        if line is None:
            return False
        stmt = self.statement_of(node)
        first = line
        last = getattr(node, "end_lineno", line) or line
        if stmt is not None:
            first = min(first, stmt.lineno)
            body = getattr(stmt, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                last = max(last, body[0].lineno - 1)
            else:
                last = max(last, stmt.end_lineno or last)
        for ln in range(first, last + 1):
            if ln in ignores:
                codes = ignores[ln]
                if codes is None or code in codes or any(code.startswith(c) for c in codes):
                    return True
        return False

    @cached_property
    def docstrings(self) -> set[ast.AST]:
        out: set[ast.AST] = set()
        for node in self.nodes:
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                    out.add(body[0].value)
        return out

    def decorator_names(self, fn: FunctionNode) -> list[str]:
        names = []
        for dec in fn.decorator_list:
            target = dec.func if isinstance(dec, ast.Call) else dec
            name = self.qualname(target)
            if name is None and isinstance(target, ast.Attribute):
                name = target.attr
            if name is None and isinstance(target, ast.Name):
                name = target.id
            if name:
                names.append(name)
        return names

    def is_task(self, fn: FunctionNode) -> bool:
        """Whether ``fn`` is a task or flow: decorated (Prefect, reproflow, Dagster-like) or
        wrapped by a call such as ``clean_task = repro_task(clean)``."""
        if any(n.rsplit(".", 1)[-1] in TASK_DECORATOR_SUFFIXES for n in self.decorator_names(fn)):
            return True
        return fn.name in self.wrapped_tasks

    @cached_property
    def wrapped_tasks(self) -> set[str]:
        """Names of functions passed to ``task(fn)``, ``repro_task(fn)``, ``flow(fn)``, ..."""
        out: set[str] = set()
        for node in self.nodes:
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Name):
                target = node.func
                if isinstance(target, ast.Call):  # repro_task(seed=1)(fn)
                    target = target.func
                name = self.qualname(target) or (target.id if isinstance(target, ast.Name) else getattr(target, "attr", ""))
                if name.rsplit(".", 1)[-1] in TASK_DECORATOR_SUFFIXES:
                    out.add(node.args[0].id)
        return out

    def calls(self, scope: Scope | None = None) -> Iterator[ast.Call]:
        """Every call in ``scope`` (nested scopes excluded), or in the whole module."""
        if scope is None:
            yield from self.all_calls
            return
        for node in scope.nodes:
            if isinstance(node, ast.Call):
                yield node

    def find_calls(self, predicate: Callable[[str], bool]) -> Iterator[tuple[ast.Call, str]]:
        for call in self.calls():
            name = self.call_name(call)
            if name is not None and predicate(name):
                yield call, name


__all__ = [
    "Assignment",
    "FunctionNode",
    "ModuleContext",
    "ORDERLESS_CALLS",
    "Scope",
    "base_name",
    "const_str",
    "is_none",
    "keyword",
]
