"""RPF601: iteration over sets or directory listings, whose order is not defined."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from ._context import ModuleContext, base_name
from ._registry import Hit, rule

LISTING_CALLS = frozenset({"os.listdir", "os.scandir", "os.walk", "os.fwalk", "glob.glob", "glob.iglob"})
_PATH_TYPES = frozenset({"pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath", "pathlib.WindowsPath"})
_PATH_METHODS_KEEP_TYPE = frozenset(
    {"resolve", "absolute", "expanduser", "with_name", "with_suffix", "with_stem", "joinpath", "parent", "cwd", "home"}
)
_SET_TYPES = frozenset({"builtins.set", "builtins.frozenset", "typing.Set", "typing.FrozenSet", "typing.AbstractSet", "collections.abc.Set"})
#: Methods that yield a set when called on a set.
_SET_METHODS = frozenset({"union", "intersection", "difference", "symmetric_difference", "copy"})
#: Wrappers that keep the order of what they wrap: look at what consumes *them*.
_WRAPPERS = frozenset(
    {"builtins.list", "builtins.tuple", "builtins.iter", "builtins.enumerate", "builtins.zip", "builtins.reversed",
     "builtins.filter", "builtins.map", "itertools.chain", "itertools.islice"}
)  # fmt: skip


def _is_path_like(ctx: ModuleContext, node: ast.AST, depth: int = 0) -> bool:
    if depth > 6:
        return False
    if isinstance(node, ast.Call):
        name = ctx.call_name(node)
        if name is not None:
            return name in _PATH_TYPES or name.rsplit(".", 1)[0] in _PATH_TYPES
        if isinstance(node.func, ast.Attribute) and node.func.attr in _PATH_METHODS_KEEP_TYPE:
            return _is_path_like(ctx, node.func.value, depth + 1)
        return False
    if isinstance(node, ast.Attribute):
        if node.attr in {"parent", "parents"}:
            return _is_path_like(ctx, node.value, depth + 1)
        return False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _is_path_like(ctx, node.left, depth + 1)
    if isinstance(node, ast.Name):
        annotation = ctx.param_annotation(node)
        if annotation is not None:
            text = ast.unparse(annotation)
            return any(t in text for t in ("Path", "PurePath"))
        value = ctx.latest_value(node)
        return value is not None and _is_path_like(ctx, value, depth + 1)
    return False


def _listing(ctx: ModuleContext, call: ast.Call) -> str | None:
    """A label for a directory-listing call, or None."""
    name = ctx.call_name(call)
    if name in LISTING_CALLS:
        return f"{name}()"
    method = ctx.method_name(call)
    if name is None and method in {"iterdir", "glob", "rglob", "walk"}:
        receiver = call.func.value  # type: ignore[attr-defined]
        if method in {"iterdir", "rglob"} or _is_path_like(ctx, receiver):
            return f"Path.{method}()"
    return None


def _is_set_expr(ctx: ModuleContext, node: ast.AST, depth: int = 0) -> bool:
    if depth > 6:
        return False
    if isinstance(node, ast.Set):
        # A literal of numbers iterates in a fixed order; strings and objects depend on hashing.
        return not all(isinstance(e, ast.Constant) and isinstance(e.value, (int, float, bool)) for e in node.elts)
    if isinstance(node, ast.SetComp):
        return True
    if isinstance(node, ast.Call):
        name = ctx.call_name(node)
        if name in {"builtins.set", "builtins.frozenset"}:
            return True
        if isinstance(node.func, ast.Attribute) and node.func.attr in _SET_METHODS:
            return _is_set_expr(ctx, node.func.value, depth + 1)
        return False
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitOr, ast.BitAnd, ast.Sub, ast.BitXor)):
        return _is_set_expr(ctx, node.left, depth + 1) or _is_set_expr(ctx, node.right, depth + 1)
    if isinstance(node, ast.Name):
        annotation = ctx.param_annotation(node)
        if annotation is not None:
            target = annotation.value if isinstance(annotation, ast.Subscript) else annotation
            return ctx.qualname(target) in _SET_TYPES or ast.unparse(target) in {"set", "frozenset", "Set", "FrozenSet", "AbstractSet"}
        value = ctx.latest_value(node)
        return value is not None and _is_set_expr(ctx, value, depth + 1)
    return False


def _ordered_use(ctx: ModuleContext, node: ast.AST, depth: int = 0) -> ast.AST | None:
    """Where a value's iteration order leaks into the program, or None if it cannot."""
    if ctx.consumed_unordered(node):
        return None
    top = node
    parent = ctx.parents.get(top)
    while isinstance(parent, ast.Call) and top in parent.args and ctx.call_name(parent) in _WRAPPERS:
        top, parent = parent, ctx.parents.get(parent)
    if isinstance(parent, (ast.For, ast.AsyncFor)) and parent.iter is top:
        return None if _accumulates_then_sorts(ctx, parent) else parent
    if isinstance(parent, ast.comprehension) and parent.iter is top:
        comp = ctx.parents[parent]
        assign = ctx.parents.get(comp)
        if isinstance(assign, (ast.Assign, ast.AnnAssign)) and assign.value is comp:
            # frames = [read(p) for p in listing]: a sequence in listing order, which leaks
            # wherever `frames` goes unless every use ignores order (sorted(frames), len(frames))
            return _use_keeping_order(ctx, assign, parent)
        return parent
    if isinstance(parent, (ast.Return, ast.Yield, ast.YieldFrom, ast.Starred)):
        return parent
    if isinstance(parent, ast.Subscript) and parent.value is top:
        return parent  # listing[0]
    if isinstance(parent, ast.Call) and top in parent.args:
        if ctx.call_name(parent) == "builtins.next":
            return parent
        if isinstance(parent.func, ast.Attribute) and parent.func.attr == "join" and isinstance(parent.func.value, ast.Constant):
            return parent
    if depth < 3 and isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is top:
        return _leak_through_name(ctx, parent, depth + 1)
    return None


def _accumulates_then_sorts(ctx: ModuleContext, loop: ast.For | ast.AsyncFor) -> bool:
    """The loop only collects into lists that are sorted afterwards.

    ``for p in d.iterdir(): out.append(p)`` followed by ``return sorted(out)`` is fine; a loop
    that yields, breaks, or returns something it found is not (the first match wins).
    """
    body = [n for stmt in loop.body for n in ast.walk(stmt)]
    collected: set[str] = set()
    bound = {n.id for n in ast.walk(loop.target) if isinstance(n, ast.Name)}
    for n in body:
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in {"append", "extend", "insert"}:
            name = base_name(n.func.value)
            if name:
                collected.add(name)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            bound.add(n.id)
    if not collected:
        return False
    for n in body:
        if isinstance(n, (ast.Yield, ast.YieldFrom, ast.Break)):
            return False
        if isinstance(n, ast.Return) and n.value is not None:
            for name in (x for x in ast.walk(n.value) if isinstance(x, ast.Name)):
                if name.id in bound or (name.id in collected and not ctx.consumed_unordered(name)):
                    return False
    scope = ctx.scope_of(loop)
    end = loop.end_lineno or loop.lineno
    return all(
        _sorted_in_place(ctx, name, loop)
        or any(
            isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load) and n.lineno > end
            and ctx.consumed_unordered(n)
            for n in scope.nodes
        )
        for name in collected
    )


def _name_uses(ctx: ModuleContext, name: str, assign: ast.AST) -> Iterator[ast.Name]:
    """Loads of ``name`` after ``assign`` and before it is next reassigned, in the same scope."""
    scope = ctx.scope_of(assign)
    start = getattr(assign, "end_lineno", None) or assign.lineno  # type: ignore[attr-defined]
    later = sorted(a.line for a in scope.assignments if a.name == name and a.line > start)
    stop = later[0] if later else None
    for node in scope.nodes:
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load):
            if node.lineno > start - (1 if isinstance(assign, (ast.For, ast.AsyncFor)) else 0) and (stop is None or node.lineno <= stop):
                yield node


def _sorted_in_place(ctx: ModuleContext, name: str, assign: ast.AST) -> bool:
    scope = ctx.scope_of(assign)
    for node in scope.nodes:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "sort":
            if base_name(node.func.value) == name and node.lineno >= assign.lineno:  # type: ignore[attr-defined]
                return True
    return False


def _use_keeping_order(ctx: ModuleContext, assign: ast.Assign | ast.AnnAssign, where: ast.AST) -> ast.AST | None:
    """The first use of the name ``assign`` binds whose order can matter (anything but an
    order-blind consumer such as ``sorted()``, ``set()``, ``len()``), or None; ``where`` when the
    target is not a plain name."""
    targets = assign.targets if isinstance(assign, ast.Assign) else [assign.target]
    if len(targets) != 1 or not isinstance(targets[0], ast.Name):
        return where
    name = targets[0].id
    if _sorted_in_place(ctx, name, assign):
        return None
    for use in _name_uses(ctx, name, assign):
        if not ctx.consumed_unordered(use):
            return use
    return None


def _leak_through_name(ctx: ModuleContext, assign: ast.Assign | ast.AnnAssign, depth: int) -> ast.AST | None:
    """``files = os.listdir(d)``: where ``files`` is then used in order, if anywhere."""
    targets = assign.targets if isinstance(assign, ast.Assign) else [assign.target]
    if len(targets) != 1 or not isinstance(targets[0], ast.Name):
        return None
    name = targets[0].id
    if _sorted_in_place(ctx, name, assign):
        return None
    for use in _name_uses(ctx, name, assign):
        where = _ordered_use(ctx, use, depth)
        if where is not None:
            return where
    return None


def _walk_sorted(ctx: ModuleContext, call: ast.Call) -> bool:
    """``for root, dirs, files in os.walk(d)``: dirs sorted in place and files sorted."""
    parent = ctx.parents.get(call)
    if not isinstance(parent, (ast.For, ast.AsyncFor)) or parent.iter is not call:
        return False
    names = [n.id for n in ast.walk(parent.target) if isinstance(n, ast.Name)]
    if len(names) < 3:
        return False
    dirs, files = names[1], names[2]
    body = [n for stmt in parent.body for n in ast.walk(stmt)]
    dirs_ok = any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "sort" and base_name(n.func.value) == dirs
        for n in body
    ) or any(isinstance(n, ast.Assign) and any(base_name(t) == dirs for t in n.targets) for n in body)
    file_uses = [n for n in body if isinstance(n, ast.Name) and n.id == files and isinstance(n.ctx, ast.Load)]
    files_ok = all(_ordered_use(ctx, n) is None for n in file_uses)
    return dirs_ok and files_ok


@rule(
    "RPF601",
    "unordered-iteration",
    severity="warning",
    summary="Iteration over a set or a directory listing without `sorted()`.",
    rationale="""`os.listdir`, `glob.glob`, `Path.iterdir()`/`glob()` return files in the order
    the filesystem stores them, which differs between machines and filesystems; a set of
    strings iterates in an order that changes with `PYTHONHASHSEED` on every run. Anything
    order-sensitive downstream (concatenation, floating-point sums, the first match,
    numbering) then changes too.""",
    fix="""Wrap it in `sorted(...)`: `for f in sorted(data_dir.glob("*.csv"))`,
    `for name in sorted(names)`; with `os.walk`, sort `dirs` in place and iterate
    `sorted(files)`.""",
)
def unordered_iteration(ctx: ModuleContext) -> Iterator[Hit]:
    for node in ctx.nodes:
        if isinstance(node, ast.Call):
            label = _listing(ctx, node)
            if label is not None:
                if label == "os.walk()" and _walk_sorted(ctx, node):
                    continue
                where = _ordered_use(ctx, node)
                if where is not None:
                    line = getattr(where, "lineno", node.lineno)
                    at = "" if line == node.lineno else f" (line {line})"
                    yield Hit(node, f"`{label}` returns entries in filesystem order, which differs between machines, and the result is used unsorted{at}")
                continue
            if isinstance(node.func, ast.Attribute) and node.func.attr == "pop" and not node.args and _is_set_expr(ctx, node.func.value):
                yield Hit(node, f"`{ast.unparse(node)}` removes an arbitrary element of a set")
        if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)) or (isinstance(node, ast.Call) and node.args):
            candidates: list[ast.AST] = [node.iter] if not isinstance(node, ast.Call) else list(node.args)
            for cand in candidates:
                if isinstance(cand, ast.Call) and _listing(ctx, cand) is not None:
                    continue
                if _is_set_expr(ctx, cand) and _ordered_use(ctx, cand) is not None:
                    yield Hit(cand, f"iterating over the set `{_short(cand)}` follows hash order, which can differ between runs")


def _short(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 50 else text[:47] + "..."


__all__ = ["LISTING_CALLS"]
