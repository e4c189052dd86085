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
_EXTENSION_RE = re.compile(r"[^.]\.[A-Za-z][A-Za-z0-9]{0,7}$")
#: Calls (by qualified-name prefix) whose string arguments are file-system locations.
_FILE_CALL_PREFIXES = (
    "builtins.open", "io.open", "pathlib.", "os.", "shutil.", "glob.", "pandas.read_", "polars.read_",
    "polars.scan_", "numpy.load", "numpy.save", "numpy.loadtxt", "numpy.genfromtxt", "json.load",
    "pickle.load", "torch.load", "torch.save", "joblib.load", "joblib.dump", "h5py.File", "xarray.open_",
    "zarr.open", "sqlite3.connect", "tarfile.open", "zipfile.ZipFile", "fsspec.open",
)  # fmt: skip
_FILE_METHODS = frozenset(
    {"open", "read_text", "read_bytes", "write_text", "write_bytes", "to_csv", "to_parquet", "to_json",
     "to_pickle", "to_excel", "savefig", "save", "load", "joinpath", "mkdir", "exists", "is_file", "is_dir"}
)  # fmt: skip
#: Absolute paths that mean the same thing on every POSIX machine.
_PORTABLE_PREFIXES = ("/dev/", "/proc/", "/sys/", "/etc/", "/usr/", "/bin/", "/sbin/", "/lib", "/tmp", "/var/tmp")
#: Top-level folders where machine-specific data usually lives.
_DATA_ROOTS = frozenset(
    {"data", "mnt", "media", "scratch", "srv", "opt", "var", "gpfs", "lustre", "nfs", "net", "shared",
     "project", "projects", "work", "storage", "Volumes", "datasets", "home", "Users", "root"}
)  # fmt: skip
#: Calls whose first argument is a URL route (HTTP clients, web routers), not a file.
_ROUTE_METHODS = frozenset(
    {"get", "post", "put", "patch", "delete", "head", "options", "request", "stream", "route", "api_route",
     "add_url_rule", "add_api_route", "websocket", "mount", "url_for", "redirect"}
)  # fmt: skip
#: String methods whose argument is a pattern compared against, not a location used.
_COMPARE_METHODS = frozenset(
    {"startswith", "endswith", "removeprefix", "removesuffix", "replace", "split", "rsplit", "strip",
     "lstrip", "rstrip", "find", "rfind", "index", "rindex", "count", "partition", "rpartition"}
)  # fmt: skip


def classify(text: str) -> str | None:
    """``"home"`` for a home directory, ``"absolute"`` for another machine path, ``"absolute-maybe"``
    for an absolute path that may be a URL route (reported only when used as a file), else None."""
    if text == "~":
        return "home"
    if "\n" in text or "://" in text or len(text) < 2:
        return None
    if _HOME_RE.match(text):
        return "home"
    if _WINDOWS_ABS_RE.match(text):
        return "absolute"
    if _POSIX_ABS_RE.match(text) and not text.startswith(_PORTABLE_PREFIXES) and text.strip("/"):
        if "{" in text or "<" in text:
            return None  # a template ("/runs/{id}", "/items/<int:id>"): a route, not a location
        parts = [p for p in text.split("/") if p]
        if parts[0] in _DATA_ROOTS or _EXTENSION_RE.search(parts[-1]):
            return "absolute"
        return "absolute-maybe"  # "/v2/flows/filter" may be a URL route: judged by its use
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


def _is_file_use(ctx: ModuleContext, node: ast.AST) -> bool:
    """The literal goes straight into a file-system call (``open``, ``Path``, ``pd.read_csv``, ...)."""
    parent = ctx.parents.get(node)
    if isinstance(parent, ast.keyword):
        parent = ctx.parents.get(parent)
    if isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Div):
        return True  # Path("/x") / "y" or "/x" / name
    if not isinstance(parent, ast.Call) or node is parent.func:
        return False
    name = ctx.call_name(parent) or ""
    if name.startswith(_FILE_CALL_PREFIXES):
        return True
    return isinstance(parent.func, ast.Attribute) and parent.func.attr in _FILE_METHODS


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
        if isinstance(parent.func, ast.Attribute) and parent.func.attr in _ROUTE_METHODS and parent.args[:1] == [node]:
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
    for node in ctx.nodes:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node in docstrings or isinstance(ctx.parents.get(node), ast.JoinedStr) and ctx.parents[node].values[0] is not node:  # type: ignore[attr-defined]
                continue
            kind = classify(node.value)
            if kind is None or _is_pattern_use(ctx, node) or kind == "home" and _is_tool_state(ctx, node):
                continue
            if kind == "absolute-maybe":
                if not _is_file_use(ctx, node):
                    continue
                kind = "absolute"
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
