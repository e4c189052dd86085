"""RPF301: absolute paths and home directories written into the code."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from ._context import ModuleContext
from ._registry import Hit, rule

_HOME_RE = re.compile(
    r"""^(?:
        /home/[^/\s]+ | /Users/[^/\s]+ | /root(?:/|$) |
        [A-Za-z]:[\\/](?:Users|Documents\ and\ Settings)[\\/] |
        ~(?:[\\/]|$) | ~[A-Za-z_][\w.-]*(?:[\\/]|$)
    )""",
    re.VERBOSE,
)
_WINDOWS_ABS_RE = re.compile(r"^[A-Za-z]:[\\/][^\s]")
_POSIX_ABS_RE = re.compile(r"^/[A-Za-z0-9_.~-][^\s]*$")
#: Absolute paths that mean the same thing on every POSIX machine.
_PORTABLE_PREFIXES = ("/dev/", "/proc/", "/sys/", "/etc/", "/usr/", "/bin/", "/sbin/", "/lib", "/tmp", "/var/tmp")
#: String methods whose argument is a pattern compared against, not a location used.
_COMPARE_METHODS = frozenset(
    {"startswith", "endswith", "removeprefix", "removesuffix", "replace", "split", "rsplit", "strip",
     "lstrip", "rstrip", "find", "rfind", "index", "rindex", "count", "partition", "rpartition"}
)  # fmt: skip


def classify(text: str) -> str | None:
    """``"home"`` for a home directory, ``"absolute"`` for another machine path, else None."""
    if text == "~":
        return "home"
    if "\n" in text or "://" in text or len(text) < 2:
        return None
    if _HOME_RE.match(text):
        return "home"
    if _WINDOWS_ABS_RE.match(text):
        return "absolute"
    if _POSIX_ABS_RE.match(text) and not text.startswith(_PORTABLE_PREFIXES) and text.strip("/"):
        return "absolute"
    return None


def _is_tool_state(ctx: ModuleContext, node: ast.AST) -> bool:
    """``~/.cache/x``, ``os.path.join(os.path.expanduser("~"), ".cache")``, ``Path.home() / ".config"``:
    a tool's own state folder, not data the pipeline computes on."""
    text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
    if text is not None and text.startswith(("~/.", "~\\.")):
        return True
    cur = node
    parent = ctx.parents.get(cur)
    if isinstance(parent, ast.Call) and ctx.call_name(parent) in {"os.path.expanduser", "os.path.abspath"}:
        cur, parent = parent, ctx.parents.get(parent)
    nxt: ast.AST | None = None
    if isinstance(parent, ast.Call) and cur in parent.args:
        idx = parent.args.index(cur)
        nxt = parent.args[idx + 1] if idx + 1 < len(parent.args) else None
    elif isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Div) and parent.left is cur:
        nxt = parent.right
    return isinstance(nxt, ast.Constant) and isinstance(nxt.value, str) and nxt.value.startswith(".")


def _is_pattern_use(ctx: ModuleContext, node: ast.AST) -> bool:
    """The literal is compared against, concatenated onto a base, or used as a pattern."""
    parent = ctx.parents.get(node)
    if isinstance(parent, ast.JoinedStr):
        node, parent = parent, ctx.parents.get(parent)
    if isinstance(parent, ast.Compare):
        return True
    if isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Add) and parent.right is node:
        return True  # base_url + "/api/v1"
    if isinstance(parent, (ast.Tuple, ast.List, ast.Set)) and isinstance(ctx.parents.get(parent), (ast.Compare, ast.Call)):
        grand = ctx.parents.get(parent)
        if isinstance(grand, ast.Compare):
            return True
        node, parent = parent, grand
    if isinstance(parent, ast.Call) and node is not parent.func:
        if isinstance(parent.func, ast.Attribute) and parent.func.attr in _COMPARE_METHODS:
            return True
        name = ctx.call_name(parent) or ""
        if name.startswith(("re.", "fnmatch.", "urllib.parse.")):
            return True
    return False


@rule(
    "RPF301",
    "machine-specific-path",
    severity="warning",
    summary="An absolute path or home directory is written into the code.",
    rationale="""`/home/alice/data.csv`, `C:\\Users\\...`, `~/data` (expanded or not) and
    `Path.home()` point somewhere only on the machine (and for the user) that wrote them: on another machine,
    or in a container or CI runner, the run reads nothing, or something else.""",
    fix="""Make the path relative to the project (`Path(__file__).parent / "data"`), or pass it
    in as a task parameter (reproflow records parameters and hashes the files they name).""",
)
def machine_specific_path(ctx: ModuleContext) -> Iterator[Hit]:
    docstrings = ctx.docstrings
    for node in ast.walk(ctx.tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node in docstrings or isinstance(ctx.parents.get(node), ast.JoinedStr) and ctx.parents[node].values[0] is not node:  # type: ignore[attr-defined]
                continue
            kind = classify(node.value)
            if kind is None or _is_pattern_use(ctx, node) or kind == "home" and _is_tool_state(ctx, node):
                continue
            shown = node.value if len(node.value) <= 60 else node.value[:57] + "..."
            if kind == "home":
                yield Hit(node, f"`{shown}` is a home directory: it exists only for one user on one machine")
            else:
                yield Hit(node, f"absolute path `{shown}` ties the pipeline to this machine's file layout")
        elif isinstance(node, ast.Call):
            name = ctx.call_name(node)
            if name in {"pathlib.Path.home", "pathlib.PosixPath.home"} and not _is_tool_state(ctx, node):
                yield Hit(node, f"`{ast.unparse(node)}` resolves to a different folder for every user and machine")


__all__ = ["classify"]
