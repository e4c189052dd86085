"""RPF302: a task writes a file through a library that opens it in C, at a path fixed in the code.

reproflow sees a task's writes through Python's ``open`` (an audit hook), and the paths a task is
given (a file it creates, a folder it writes into). A library that opens the file in C or C++
(pyarrow's Parquet and Feather writers under pandas, ``torch.save``, h5py, netCDF4, PyTables,
zarr, OpenCV) calls no Python ``open``: at a path the task builds from constants, nothing tells
reproflow the file was written, so it is no output, and a replay never compares it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from ._context import FunctionNode, ModuleContext, Scope, const_str
from ._registry import Hit, rule

#: Methods that write through a C library, with the position of the path argument and its keyword.
_WRITE_METHODS = {
    "to_parquet": (0, "path"), "to_feather": (0, "path"), "to_orc": (0, "path"), "to_hdf": (0, "path_or_buf"),
    "to_netcdf": (0, "path"), "to_zarr": (0, "store"),
}  # fmt: skip
#: Calls (qualified names) that write through a C library: (path position, keyword, the mode
#: argument's position and keyword, or None when the call always writes).
_WRITE_CALLS: dict[str, tuple[int, str, tuple[int, str] | None]] = {
    "torch.save": (1, "f", None),
    "pyarrow.parquet.write_table": (1, "where", None),
    "pyarrow.feather.write_feather": (1, "dest", None),
    "pyarrow.orc.write_table": (1, "where", None),
    "cv2.imwrite": (0, "filename", None),
    "h5py.File": (0, "name", (1, "mode")),
    "netCDF4.Dataset": (0, "filename", (1, "mode")),
    "tables.open_file": (0, "filename", (1, "mode")),
    "zarr.open": (0, "store", (1, "mode")),
}
#: Calls that build a path from their first argument (its place is the first argument's).
_PATH_BUILDERS = frozenset({
    "pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath", "builtins.str", "os.fspath", "os.path.join",
    "os.path.abspath", "os.path.normpath", "os.path.realpath", "os.path.expanduser",
})  # fmt: skip
#: Path methods whose result lies where the path they are called on does.
_PATH_METHODS = frozenset({"joinpath", "with_suffix", "with_name", "with_stem", "resolve", "absolute", "format"})


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    for k in call.keywords:
        if k.arg == keyword:
            return k.value
    return call.args[position] if len(call.args) > position and not isinstance(call.args[position], ast.Starred) else None


def _writes(ctx: ModuleContext, call: ast.Call) -> ast.expr | None:
    """The path argument of a call that writes through a C library, else None."""
    name = ctx.call_name(call)
    if name in _WRITE_CALLS:
        position, keyword, mode = _WRITE_CALLS[name]
        if mode is not None:
            text = const_str(_argument(call, *mode))
            if text is None or not any(c in text for c in "wax+"):
                return None  # opened for reading (the default), or a mode not known here
        return _argument(call, position, keyword)
    method = ctx.method_name(call)
    if method in _WRITE_METHODS and (name is None or not name.startswith(("builtins.", "pathlib.", "os."))):
        return _argument(call, *_WRITE_METHODS[method])
    return None


def _fixed_in_code(ctx: ModuleContext, scope: Scope, expr: ast.AST, depth: int = 0) -> bool:
    """Whether the place ``expr`` names is fixed in the code: its leftmost part is a string
    constant or a module-level name, not one of the task's parameters (a file or folder reproflow
    is given) nor anything it cannot follow (a helper's return value: not reported)."""
    if depth > 8:
        return False
    if isinstance(expr, ast.Constant):
        return isinstance(expr.value, str)
    if isinstance(expr, ast.JoinedStr):
        first = expr.values[0] if expr.values else None
        if isinstance(first, ast.FormattedValue):
            return _fixed_in_code(ctx, scope, first.value, depth + 1)
        return isinstance(first, ast.Constant)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Div, ast.Add, ast.Mod)):
        return _fixed_in_code(ctx, scope, expr.left, depth + 1)
    if isinstance(expr, ast.Call):
        if ctx.call_name(expr) in _PATH_BUILDERS and expr.args:
            return _fixed_in_code(ctx, scope, expr.args[0], depth + 1)
        if isinstance(expr.func, ast.Attribute) and expr.func.attr in _PATH_METHODS:
            return _fixed_in_code(ctx, scope, expr.func.value, depth + 1)
        return False
    if isinstance(expr, (ast.Attribute, ast.Subscript)):
        return False  # cfg.out_dir, paths[0]: what a parameter holds, as far as can be told
    if isinstance(expr, ast.Name):
        if expr.id in scope.params:
            return False
        found = ctx.assignments_to(expr.id, scope)
        if not found:
            return False
        return all(not isinstance(a.node, (ast.For, ast.AsyncFor, ast.comprehension))
                   and _fixed_in_code(ctx, ctx.scope_of(a.node), a.value, depth + 1) for a in found)
    return False


def _is_task_only(ctx: ModuleContext, fn: FunctionNode) -> bool:
    """A task (its writes are its outputs), not a flow."""
    return ctx.is_task(fn) and not any(n.rsplit(".", 1)[-1].endswith("flow") for n in ctx.decorator_names(fn))


@rule(
    "RPF302",
    "unseen-file-write",
    severity="warning",
    summary="A task writes a file through a library that opens it in C, at a path fixed in the code.",
    rationale="""reproflow sees a task's writes through Python's `open`, and the files and folders
    it is passed. pyarrow (pandas' `to_parquet`, `to_feather`), `torch.save`, h5py, netCDF4,
    PyTables, zarr and OpenCV open their files in C: at a path built from constants inside the
    task, the file is no recorded output, and a replay never compares it.""",
    fix="""Pass the path (or its folder) to the task as a parameter: reproflow then finds the file
    after the task and hashes it (`@repro_task(outputs=["path"])` makes that explicit).""",
)
def unseen_file_write(ctx: ModuleContext) -> Iterator[Hit]:
    for scope in ctx.scopes.values():
        fn = scope.node
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or not _is_task_only(ctx, fn):
            continue
        for call in ctx.calls(scope):
            path = _writes(ctx, call)
            if path is not None and _fixed_in_code(ctx, scope, path):
                shown = ast.unparse(path)
                shown = shown if len(shown) <= 50 else shown[:47] + "..."
                name = ctx.call_name(call)
                what = name if name in _WRITE_CALLS else f".{ctx.method_name(call)}()"
                yield Hit(call, f"`{what}` writes `{shown}` in C, at a path fixed in task `{fn.name}`: no "
                                "recorded output, so a replay never compares it",
                          fix=f"pass `{shown}` (or its folder) to `{fn.name}` as a parameter")
