"""RPF401: environment variables read without a default and not declared as inputs."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from ._context import ModuleContext, const_str
from ._registry import Hit, rule
from .._ast import parse as parse_source

_ENVIRON = frozenset({"os.environ", "os.environb"})
_GETENV = frozenset({"os.getenv", "os.getenvb"})


def _has_or_default(ctx: ModuleContext, node: ast.AST) -> bool:
    """``os.getenv("X") or "fallback"``: the ``or`` supplies a default."""
    parent = ctx.parents.get(node)
    return isinstance(parent, ast.BoolOp) and isinstance(parent.op, ast.Or) and parent.values[0] is node and len(parent.values) > 1


@rule(
    "RPF401",
    "undeclared-environment-variable",
    severity="warning",
    summary="An environment variable is read without a default and is not declared as an input.",
    rationale="""A value read from the environment is a hidden input: it changes what the
    pipeline does, but it is not a parameter, so a replay elsewhere gets a different value or a
    `KeyError`.""",
    fix="""Give it a default (`os.environ.get("NAME", "value")`), pass the value in as a task
    parameter, or declare the variable as an input in `pyproject.toml`:
    `[tool.reproflow] declared-env = ["NAME"]` (reproflow records the environment).""",
)
def undeclared_environment_variable(ctx: ModuleContext) -> Iterator[Hit]:
    declared = ctx.declared_env
    for node in ctx.nodes:
        key: ast.AST | None = None
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and ctx.qualname(node.value) in _ENVIRON:
            key = node.slice
            how = f"`{ast.unparse(node)}` raises KeyError when it is unset"
        elif isinstance(node, ast.Call):
            name = ctx.call_name(node)
            is_get = isinstance(node.func, ast.Attribute) and node.func.attr == "get" and ctx.qualname(node.func.value) in _ENVIRON
            if not (name in _GETENV or is_get):
                continue
            has_default = len(node.args) > 1 or any(k.arg == "default" for k in node.keywords)
            if has_default or _has_or_default(ctx, node) or not node.args:
                continue
            key = node.args[0]
            how = f"`{ast.unparse(node)}` has no default"
        else:
            continue
        name_text = const_str(key)
        if name_text is None or isinstance(key, ast.JoinedStr) or name_text in declared:
            continue  # a computed name cannot be declared; don't guess
        yield Hit(node, f"environment variable {name_text} is a hidden input: {how} and it is not declared")


def _reads(node: ast.AST) -> str | None:
    """The constant name of an environment variable this node reads, by syntax alone:
    ``os.environ["X"]``, ``environ.get("X")``, ``os.getenv("X")``, ``getenv("X")``."""
    def environ(n: ast.AST) -> bool:
        return (isinstance(n, ast.Attribute) and n.attr in ("environ", "environb")) or (
            isinstance(n, ast.Name) and n.id in ("environ", "environb"))

    key: ast.AST | None = None
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and environ(node.value):
        key = node.slice
    elif isinstance(node, ast.Call) and node.args:
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in ("get", "pop", "setdefault") and environ(f.value):
            key = node.args[0]
        elif (isinstance(f, ast.Attribute) and f.attr in ("getenv", "getenvb")) or (
                isinstance(f, ast.Name) and f.id in ("getenv", "getenvb")):
            key = node.args[0]
    name = const_str(key)
    return None if name is None or isinstance(key, ast.JoinedStr) else name


def _is_main_guard(test: ast.AST) -> bool | None:
    """For an ``if`` test: True for ``__name__ == "__main__"`` (either side), False for ``!=``,
    None for anything else."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.Eq, ast.NotEq))):
        return None
    sides = (test.left, test.comparators[0])
    if "__main__" in {const_str(n) for n in sides} and any(isinstance(n, ast.Name) and n.id == "__name__" for n in sides):
        return isinstance(test.ops[0], ast.Eq)
    return None


def environment_names_read(source: str, qualname: str | None) -> list[str]:
    """Names of the environment variables a function reads (constant names only), sorted: those
    read in the function itself (``qualname``: ``"Class.method"``, ``"outer.<locals>.f"``), its
    body, decorators and default values, and those read where the module runs when it is
    imported: its top level and class bodies, but not other functions (a flow's defaults and
    decorators: the replay passes the flow the parameters it was recorded with) nor the
    ``if __name__ == "__main__":`` block (it runs when the file is a script, and what it reads
    reaches a task through parameters, recorded as they were). Unparsable source: none. The
    replay uses it to name a variable set otherwise than when the task was recorded."""
    try:
        tree = parse_source(source)
    except (SyntaxError, ValueError, SystemError):
        return []
    names: set[str] = set()

    def at_import(node: ast.AST) -> None:
        """Collect what ``node`` reads when it runs, leaving out the code it only defines."""
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return  # its decorators and defaults count for the task's own function only (below)
        if isinstance(node, ast.Lambda):
            for part in (*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)):
                at_import(part)
            return
        if isinstance(node, ast.If) and (guard := _is_main_guard(node.test)) is not None:
            for stmt in node.orelse if guard else node.body:
                at_import(stmt)
            return
        name = _reads(node)
        if name is not None:
            names.add(name)
        for child in ast.iter_child_nodes(node):  # a class body runs as the class is made
            at_import(child)

    at_import(tree)
    body: ast.AST | None = tree
    for part in (qualname or "").split("."):
        if part == "<locals>" or body is None:
            continue
        body = next((n for n in ast.iter_child_nodes(body) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                               ast.ClassDef)) and n.name == part), None)
    if body is not None and body is not tree:
        names.update(n for n in (_reads(x) for x in ast.walk(body)) if n is not None)
    return sorted(names)


__all__ = ["environment_names_read"]
