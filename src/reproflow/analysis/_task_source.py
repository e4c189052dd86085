"""The source of a recorded task's function, read back from its run's stored source snapshot.

``TaskRecord.function`` ("module:qualname") and ``TaskRecord.function_file`` (the file, absolute
or relative to the source root) say where the function was; the run's snapshot
(``ProcessContext.source``) holds that file as it was. Two runs' definitions compare by their
syntax tree, so a function that only moved (lines added above it, comments, formatting) is the
same, and one whose body or decorator changed is not. Prefect's ``task_key`` cannot tell these
apart: it hashes the code object, which holds the line number and the file's absolute path.
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import posixpath
import tarfile
from dataclasses import dataclass, field
from typing import Optional

from ..records import Run, TaskRecord
from ..store import Store
from .._ast import parse as parse_source


@dataclass(frozen=True)
class FunctionSource:
    """One function's definition as recorded."""

    label: str  #: "relative/file.py:qualname" (or "module:qualname" when the file is unknown)
    text: str  #: its source lines, decorators included
    digest: str  #: sha256 of its syntax tree (line numbers, comments and layout left out)


@dataclass
class SnapshotReader:
    """Reads function definitions out of one run's stored source snapshot, the archive once."""

    store: Store
    run: Run
    _files: Optional[dict[str, bytes]] = field(default=None, repr=False)

    def _relative(self, task: TaskRecord) -> Optional[str]:
        path = task.function_file
        if not path:
            return None
        root = self.run.context.source.root if self.run.context is not None else None
        if os.path.isabs(path):
            if not root:
                return None
            rel = os.path.relpath(path, root)
            if rel.startswith(".."):
                return None
            path = rel
        return posixpath.normpath(path.replace(os.sep, "/"))

    def _read(self, rel: str) -> Optional[bytes]:
        if self._files is None:
            self._files = {}
            src = self.run.context.source if self.run.context is not None else None
            if src is None or not src.blob:
                return None
            from ..errors import ReproflowError

            wanted = {self._relative(t) for t in self.run.final_tasks()}  # only the tasks' files are kept
            try:
                with tarfile.open(fileobj=io.BytesIO(self.store.get_blob(src.blob)), mode="r:*") as tar:
                    for member in tar:
                        name = posixpath.normpath(member.name)
                        if member.isfile() and name in wanted:
                            fh = tar.extractfile(member)
                            if fh is not None:
                                self._files[name] = fh.read()
            except (ReproflowError, tarfile.TarError, OSError, EOFError):
                self._files = {}
        return self._files.get(rel)

    def function(self, task: TaskRecord) -> Optional[FunctionSource]:
        """The task's function as the snapshot holds it; None when it cannot be found."""
        qual = (task.function or "").partition(":")[2]
        rel = self._relative(task)
        if not qual or "<locals>" in qual or rel is None:
            return None
        data = self._read(rel)
        if data is None:
            return None
        try:
            text = data.decode("utf-8")
            tree = parse_source(text)
        except (UnicodeDecodeError, SyntaxError, ValueError, SystemError):
            return None
        node = _find(tree.body, qual.split("."))
        if node is None:
            return None
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        lines = text.splitlines()[start - 1 : node.end_lineno]
        digest = hashlib.sha256(ast.dump(node).encode()).hexdigest()
        return FunctionSource(label=f"{rel}:{qual}", text="\n".join(lines), digest=digest)


def _find(body: list[ast.stmt], parts: list[str]) -> Optional[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The last definition named ``parts[0]`` at this level (a later one replaces an earlier one,
    as when the module runs), then inside it for the rest of a dotted qualname."""
    hit: Optional[ast.stmt] = None
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and stmt.name == parts[0]:
            hit = stmt
    if hit is None:
        return None
    if len(parts) == 1:
        return hit if isinstance(hit, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    return _find(hit.body, parts[1:])


def changed_lines(a: str, b: str) -> tuple[int, int]:
    """(lines added, lines removed) from ``a`` to ``b``."""
    import difflib

    added = removed = 0
    for line in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return added, removed


__all__ = ["FunctionSource", "SnapshotReader", "changed_lines"]
