"""RPF401: environment variables read without a default and not declared as inputs."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from ._context import ModuleContext, const_str
from ._registry import Hit, rule

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


__all__: list[str] = []
