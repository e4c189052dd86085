"""Map paths inside the recorded source root to the restored copy of it.

A replay never runs in, or writes into, the user's own checkout: it runs in the restored source
tree in its work folder. Paths that pointed into the recorded source root (the working folder,
absolute path parameters, inputs and outputs) are moved to the same relative place under the
restored root; everything outside the root (external data, another disk) is left as it is.

Matching is on whole path components, never on string prefixes: ``/a/bc`` is not under ``/a/b``;
a path that is not under the root as written is also tried with symlinks resolved on this machine.
"""

from __future__ import annotations

import copy
import os
import posixpath
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

_TAG = "__rf__"  # the typed-JSON tag of reproflow.values._typed
#: typed-JSON tags whose "v" holds a list of nested typed values
_SEQUENCE_TAGS = frozenset({"tuple", "set", "frozenset"})


def _parts(path: str) -> tuple[str, ...]:
    norm = os.path.normpath(path)
    return tuple(p for p in norm.replace("\\", "/").split("/") if p) if norm != os.sep else ()


def relative_to_root(path: str, root: str | None) -> str | None:
    """``path`` relative to ``root`` (posix separators, "." for the root itself), or None when
    ``path`` is not an absolute path inside ``root``.

    >>> relative_to_root("/a/b/c.txt", "/a/b")
    'c.txt'
    >>> relative_to_root("/a/bc/c.txt", "/a/b") is None
    True
    """
    if not root or not isinstance(path, str) or not os.path.isabs(path) or not os.path.isabs(root):
        return None
    p, r = _parts(path), _parts(root)
    if len(p) < len(r) or p[: len(r)] != r:
        return None
    rest = p[len(r):]
    return posixpath.join(*rest) if rest else "."


def relocate_path(path: str, recorded_root: str | None, restored_root: str) -> str:
    """``path`` moved from under ``recorded_root`` to the same place under ``restored_root``;
    unchanged when it is relative or outside the recorded root."""
    rel = relative_to_root(path, recorded_root)
    if rel is None:
        return path
    return restored_root if rel == "." else os.path.join(restored_root, *rel.split("/"))


@dataclass(frozen=True)
class Relocation:
    """The recorded source root and where the replay restored it.

    ``recorded_root`` None (nothing recorded) makes every mapping the identity.
    """

    recorded_root: str | None
    restored_root: str

    @property
    def reverse(self) -> Relocation:
        """The mapping back, from the restored tree to the recorded root."""
        if self.recorded_root is None:
            return self
        return Relocation(self.restored_root, self.recorded_root)

    def _move(self, path: str) -> str:
        rel = self._rel(path)
        if rel is None:
            return path
        return self.restored_root if rel == "." else os.path.join(self.restored_root, *rel.split("/"))

    def _rel(self, path: str) -> str | None:
        """Relative to the recorded root, lexically; else (a path reached through a symlink,
        a temporary folder under /var -> /private/var) once both sides are resolved here."""
        rel = relative_to_root(path, self.recorded_root)
        if rel is not None or self.recorded_root is None or not os.path.isabs(path):
            return rel
        real, real_root = os.path.realpath(path), os.path.realpath(self.recorded_root)
        if (real, real_root) == (os.path.normpath(path), os.path.normpath(self.recorded_root)):
            return None
        return relative_to_root(real, real_root)

    def path(self, path: str) -> str:
        """A local path (or ``file://``/``local://`` URL) moved into the restored tree."""
        for scheme in ("file://", "local://"):
            if path.startswith(scheme):
                return scheme + self._move(path[len(scheme):])
        return self._move(path)

    def relative(self, path: str) -> str | None:
        """``path`` relative to the recorded root, or None when it is outside it."""
        for scheme in ("file://", "local://"):
            if path.startswith(scheme):
                path = path[len(scheme):]
        return self._rel(path)

    def inside(self, path: str) -> bool:
        return self.relative(path) is not None

    def cwd(self, recorded_cwd: str | None) -> tuple[str, bool]:
        """The folder the replay runs in: the recorded cwd's counterpart in the restored tree,
        else the restored root. Returns (folder, whether the recorded cwd was inside the root)."""
        if recorded_cwd and self.inside(recorded_cwd):
            return self.path(recorded_cwd), True
        return self.restored_root, recorded_cwd is None

    def typed(self, value: Any) -> Any:
        """A typed-JSON value (see :mod:`reproflow.values._typed`) with its path values and absolute
        path strings under the recorded root moved into the restored tree."""
        if self.recorded_root is None:
            return value
        if isinstance(value, str):
            return self._move(value) if os.path.isabs(value) else value
        if isinstance(value, list):
            return [self.typed(v) for v in value]
        if not isinstance(value, dict):
            return value
        tag = value.get(_TAG)
        if tag is None:
            return {k: self.typed(v) for k, v in value.items()}
        if tag == "path" and isinstance(value.get("v"), str):
            return {**value, "v": self._move(value["v"])}
        if tag in _SEQUENCE_TAGS and isinstance(value.get("v"), list):
            return {**value, "v": [self.typed(v) for v in value["v"]]}
        if tag == "dict" and isinstance(value.get("items"), list):
            return {**value, "items": [[self.typed(k), self.typed(v)] for k, v in value["items"]]}
        if tag == "object":  # a dataclass, attrs class, pydantic model or named tuple: its fields
            out = {**value, "v": self.typed(value.get("v"))}
            if isinstance(value.get("extra"), dict):
                out["extra"] = self.typed(value["extra"])
            return out
        return value  # scalars with a tag (bytes, datetime, opaque, ...) hold no path

    def value(self, obj: Any) -> Any:
        """A Python value (an unpickled stored result) with its paths and absolute path strings
        under the recorded root moved into the restored tree: ``PurePath`` objects, strings, and
        both nested in lists, tuples (named ones too), sets and dicts. Other objects are returned
        as they are (their attributes are not rewritten)."""
        if self.recorded_root is None:
            return obj
        if isinstance(obj, str):
            return self._move(obj) if os.path.isabs(obj) else obj
        if isinstance(obj, PurePath):
            moved = self._move(str(obj)) if obj.is_absolute() else str(obj)
            return obj if moved == str(obj) else type(obj)(moved)
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        if isinstance(obj, tuple):
            items = [self.value(v) for v in obj]
            return type(obj)(*items) if hasattr(obj, "_fields") else type(obj)(items)
        if isinstance(obj, (set, frozenset)):
            return type(obj)(self.value(v) for v in obj)
        if isinstance(obj, dict) and type(obj) in (dict, OrderedDict, defaultdict):
            moved_dict = {self.value(k): self.value(v) for k, v in obj.items()}
            if type(obj) is dict:
                return moved_dict
            out = copy.copy(obj)
            out.clear()
            out.update(moved_dict)
            return out
        return obj


def recorded_source_root(context: Any) -> str | None:
    """The folder the restored code stands in for: the snapshot's root, else the git root."""
    src, git = context.source, context.git
    if src.blob and src.root:
        return str(src.root)
    if git.available and git.root:
        return str(git.root)
    return str(src.root) if src.root else None


__all__ = ["Relocation", "recorded_source_root", "relative_to_root", "relocate_path"]
