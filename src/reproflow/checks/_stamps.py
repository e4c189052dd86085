"""RPF202: a file written in a format that records the clock, by a call that puts it there.

Some formats keep the time they were written in their bytes: gzip's header (MTIME), each zip
member's date and time, a PDF's CreationDate, an SVG's ``dc:date``. Written by the calls below
with their defaults, the file differs on every run while its content is the same, so its hash
never matches and a replay can never verify it (the replay does say why: see
``DataRef.untimed_sha256``). Each call has a way to write a fixed time instead.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from ._context import ModuleContext, const_str, keyword
from ._registry import Hit, rule

#: DataFrame writers that compress by the path's suffix: (path position, keyword)
_FRAME_WRITERS = {"to_csv": (0, "path_or_buf"), "to_json": (0, "path_or_buf"), "to_pickle": (0, "path")}
_PATH_CALLS = frozenset({"pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath", "os.path.join", "builtins.str"})


def _argument(call: ast.Call, position: int, name: str) -> ast.expr | None:
    kw = keyword(call, name)
    if kw is not None:
        return kw.value
    return call.args[position] if len(call.args) > position and not isinstance(call.args[position], ast.Starred) else None


def _suffix(ctx: ModuleContext, node: ast.AST | None) -> str:
    """The literal end of a path expression (``"out/fig.pdf"``, ``f"{d}/fig.pdf"``,
    ``out / "fig.pdf"``, ``Path("fig.pdf")``), lower-cased; "" when it is not literal."""
    for _ in range(8):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value.lower()
        if isinstance(node, ast.JoinedStr) and node.values:
            last = node.values[-1]
            return last.value.lower() if isinstance(last, ast.Constant) and isinstance(last.value, str) else ""
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.Add)):
            node = node.right
        elif isinstance(node, ast.Call) and node.args and ctx.call_name(node) in _PATH_CALLS:
            node = node.args[-1]
        else:
            return ""
    return ""


def _writes(mode: ast.AST | None, default: str) -> bool:
    text = const_str(mode) if mode is not None else default
    return text is not None and any(c in text for c in "wax")


def _fixes_mtime(call: ast.Call) -> bool:
    """pandas' ``compression={"method": "gzip", "mtime": 0}``."""
    kw = keyword(call, "compression")
    return kw is not None and isinstance(kw.value, ast.Dict) and any(
        const_str(k) == "mtime" for k in kw.value.keys if k is not None)


@rule(
    "RPF202",
    "clock-stamped-file",
    severity="warning",
    summary="A file written in a format that records the clock (gzip, zip, PDF, SVG) by a call that puts the time there.",
    rationale="""gzip's header, each zip member, a PDF's CreationDate and an SVG's dc:date hold the
    time the file was written: the same content gives other bytes on every run, so the file's
    hash never matches and a replay can never verify it.""",
    fix="""Write a fixed time: gzip.GzipFile(path, "wb", mtime=0) instead of gzip.open, pandas'
    compression={"method": "gzip", "mtime": 0}, zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    for ZipFile.writestr, matplotlib's savefig(..., metadata={"CreationDate": None}) for PDF
    ({"Date": None} for SVG), or set SOURCE_DATE_EPOCH, which matplotlib, LaTeX and many tools use
    as the date.""",
)
def clock_stamped_file(ctx: ModuleContext) -> Iterator[Hit]:
    epoch = any(isinstance(n, ast.Constant) and n.value == "SOURCE_DATE_EPOCH" for n in ast.walk(ctx.tree))
    for call in ctx.calls():
        name = ctx.call_name(call)
        method = ctx.method_name(call)
        if name == "gzip.open" and _writes(_argument(call, 1, "mode"), "rb"):
            yield Hit(call, "`gzip.open` writes the clock into the gzip header (MTIME): the file differs on every run",
                      'write through gzip.GzipFile(path, "wb", mtime=0) instead')
        elif name == "gzip.GzipFile" and _writes(_argument(call, 1, "mode"), "rb") and _argument(call, 4, "mtime") is None:
            yield Hit(call, "`gzip.GzipFile` without `mtime=` writes the clock into the gzip header",
                      "pass mtime=0")
        elif name == "gzip.compress" and keyword(call, "mtime") is None:
            yield Hit(call, "`gzip.compress` without `mtime=` writes the clock into the gzip header", "pass mtime=0")
        elif name == "shutil.make_archive":
            yield Hit(call, "`shutil.make_archive` stores each file's modification time in the archive (and, "
                            "compressed with gzip, the clock in its header): the archive differs on every run",
                      "build the archive with fixed times (zipfile.ZipInfo with date_time=(1980, 1, 1, 0, 0, 0); "
                      "tarfile members with mtime=0 and gzip.GzipFile(..., mtime=0))")
        elif method == "writestr" and call.args and (
                const_str(call.args[0]) is not None or isinstance(call.args[0], ast.JoinedStr)):
            yield Hit(call, "`ZipFile.writestr` given a name stamps the member with the clock: the archive "
                            "differs on every run",
                      'pass zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)) instead of the name')
        elif method in _FRAME_WRITERS and not _fixes_mtime(call):
            suffix = _suffix(ctx, _argument(call, *_FRAME_WRITERS[method]))
            if suffix.endswith(".gz"):
                yield Hit(call, f"`{method}` to a .gz path writes the clock into the gzip header",
                          'pass compression={"method": "gzip", "mtime": 0}')
            elif suffix.endswith(".zip"):
                yield Hit(call, f"`{method}` to a .zip path stamps the archive's member with the clock",
                          "write the plain file, then zip it with zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))")
        elif method == "savefig" and not epoch and keyword(call, "metadata") is None:
            fmt = const_str(_argument(call, 99, "format")) or ""
            suffix = _suffix(ctx, call.args[0] if call.args else None)
            kind = "pdf" if fmt.lower() == "pdf" or suffix.endswith(".pdf") else \
                "svg" if fmt.lower() == "svg" or suffix.endswith(".svg") else None
            if kind is not None:
                what, fix = (("its CreationDate", 'pass metadata={"CreationDate": None}') if kind == "pdf" else
                             ("its dc:date", 'pass metadata={"Date": None} (and set rcParams["svg.hashsalt"])'))
                yield Hit(call, f"`savefig` to {kind.upper()} writes the clock into {what}: the figure's file "
                                "differs on every run", f"{fix}, or set SOURCE_DATE_EPOCH")


__all__: list[str] = []
