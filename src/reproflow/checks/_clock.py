"""RPF201: wall-clock time that reaches a task's return value or something written out.

A clock read that only feeds a log line, a comparison or a sleep is fine, and so is
``time.perf_counter()`` (a duration, not a date). What breaks reproduction is a timestamp that
ends up *in the result*: returned by a task or flow, written to a file, or used to name one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from ._context import ModuleContext, Scope, const_str
from ._flow import Taint
from ._registry import Hit, rule

CLOCK_CALLS = frozenset(
    {
        "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today",
        "datetime.date.today", "time.time", "time.time_ns", "time.localtime", "time.gmtime",
        "time.ctime", "time.asctime", "pandas.Timestamp.now", "pandas.Timestamp.utcnow",
        "pandas.Timestamp.today", "pandas.datetime.now", "arrow.now", "arrow.utcnow",
        "pendulum.now", "pendulum.today",
    }
)  # fmt: skip
#: Calls that read the clock when given the string "now"/"today".
_NOW_STRING_CALLS = frozenset({"numpy.datetime64", "pandas.Timestamp", "pandas.to_datetime"})
#: time.strftime() with a single argument formats the current time.
_FORMAT_NOW = frozenset({"time.strftime"})

#: Methods (and functions) that write their arguments or their receiver out.
WRITE_METHODS = frozenset(
    {
        "write", "writelines", "write_text", "write_bytes", "to_csv", "to_parquet", "to_json",
        "to_pickle", "to_excel", "to_feather", "to_hdf", "to_sql", "to_netcdf", "to_zarr",
        "to_orc", "to_stata", "to_html", "to_markdown", "to_latex", "savefig", "save",
        "savez", "savez_compressed", "savetxt", "dump", "safe_dump", "dump_all", "to_file",
        "write_table", "write_dataset", "writerow", "writerows", "put_object", "upload_file",
    }
)  # fmt: skip
_OPEN_CALLS = frozenset({"builtins.open", "io.open", "gzip.open", "bz2.open", "lzma.open", "fsspec.open"})


def _is_clock(ctx: ModuleContext, call: ast.Call, local_clocks: set[str]) -> bool:
    name = ctx.call_name(call)
    if name in CLOCK_CALLS:
        return True
    if name in _NOW_STRING_CALLS and call.args and const_str(call.args[0]) in {"now", "today"}:
        return True
    if name in _FORMAT_NOW and len(call.args) == 1:
        return True
    fn = ctx.local_function(call)
    return fn is not None and fn.name in local_clocks


def _returns(scope: Scope) -> Iterator[ast.expr]:
    for node in scope.nodes:
        if isinstance(node, (ast.Return, ast.Yield, ast.YieldFrom)) and node.value is not None:
            yield node.value
    if isinstance(scope.node, ast.Lambda):
        yield scope.node.body


def _local_clock_functions(ctx: ModuleContext) -> set[str]:
    """Module-level functions whose return value carries the wall-clock time (a fixpoint)."""
    found: set[str] = set()
    for _ in range(len(ctx.module_functions) + 1):
        changed = False
        for name, fn in ctx.module_functions.items():
            if name in found:
                continue
            scope = ctx.scopes[fn]
            taint = Taint(ctx, scope, lambda c: _is_clock(ctx, c, found))
            if any(taint.source_in(v) is not None for v in _returns(scope)):
                found.add(name)
                changed = True
        if not changed:
            break
    return found


_CONSOLE = frozenset({"sys.stdout", "sys.stderr", "sys.__stdout__", "sys.__stderr__"})


def _is_write(ctx: ModuleContext, call: ast.Call) -> bool:
    name = ctx.call_name(call)
    if name == "builtins.print":
        return any(k.arg == "file" and ctx.qualname(k.value) not in _CONSOLE for k in call.keywords)
    if isinstance(call.func, ast.Attribute) and ctx.qualname(call.func.value) in _CONSOLE:
        return False
    if name in _OPEN_CALLS:
        mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
        text = const_str(mode)
        return text is not None and any(c in text for c in "wax")
    method = name.rsplit(".", 1)[-1] if name else ctx.method_name(call)
    return method in WRITE_METHODS


def _write_parts(call: ast.Call) -> Iterator[ast.AST]:
    yield from call.args
    for kw in call.keywords:
        yield kw.value
    if isinstance(call.func, ast.Attribute):
        yield call.func.value


def _is_output_function(ctx: ModuleContext, fn: ast.AST) -> bool:
    """A task or flow: its return value is a recorded, hashed output."""
    return isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and ctx.is_task(fn)


def _describe(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 50 else text[:47] + "..."


@rule(
    "RPF201",
    "wall-clock-in-output",
    severity="error",
    summary="Wall-clock time (`datetime.now()`, `time.time()`, ...) flows into a task's return value or written output.",
    rationale="""A timestamp in a result makes every run's output different, so content hashes
    never match and a replay can never be verified, even when the computation is identical.""",
    fix="""Keep timestamps out of results: log them, or let reproflow record them (every task
    record has start and end times). If a date is an input of the computation (a cut-off,
    "as of"), make it a task parameter so it is recorded and replayed.""",
)
def wall_clock_in_output(ctx: ModuleContext) -> Iterator[Hit]:
    local_clocks = _local_clock_functions(ctx)
    for scope in ctx.scopes.values():
        taint = Taint(ctx, scope, lambda c: _is_clock(ctx, c, local_clocks))
        sinks: list[tuple[ast.AST, str]] = []
        for call in ctx.calls(scope):
            if _is_write(ctx, call):
                for part in _write_parts(call):
                    src = taint.source_in(part)
                    if src is not None:
                        sinks.append((src, f"is written out by `{_describe(call)}` (line {call.lineno})"))
                        break
        if _is_output_function(ctx, scope.node):
            fn = scope.node
            assert isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            for value in _returns(scope):
                src = taint.source_in(value)
                if src is not None:
                    sinks.append((src, f"reaches the return value of task `{fn.name}` (line {value.lineno})"))
        for src, where in sinks:
            what = _describe(src)
            local = isinstance(src, ast.Call) and ctx.local_function(src) is not None
            clock = f"`{what}` returns wall-clock time and" if local else f"wall-clock time from `{what}`"
            yield Hit(src, f"{clock} {where}")


def clock_functions(ctx: ModuleContext) -> set[str]:
    """Names of module functions that return wall-clock time (used by check_function)."""
    return _local_clock_functions(ctx)


__all__ = ["CLOCK_CALLS", "WRITE_METHODS", "clock_functions"]
