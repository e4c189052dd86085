"""``[tool.reproflow]`` settings for ``reproflow check``, found by walking up from a path.

::

    [tool.reproflow]
    select = ["RPF1", "RPF201"]          # codes or prefixes; default: every rule
    ignore = ["RPF301"]
    declared-env = ["DATA_DIR", "API_URL"]

    [tool.reproflow.per-file-ignores]
    "tests/*" = ["RPF101", "RPF301"]
    "scripts/**/*.py" = ["RPF401"]

Unknown keys are left alone (other reproflow features keep their settings in the same table).
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import Any, Optional

from ..errors import CheckConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclass(frozen=True)
class CheckConfig:
    """Which rules run where. Build from pyproject with :func:`find_config` or directly.

    Attributes:
        select: codes or code prefixes to run; None runs every rule.
        ignore: codes or prefixes never reported.
        per_file_ignores: glob (relative to ``root``, ``/``-separated) → codes or prefixes.
        declared_env: environment variables declared as inputs (not reported by RPF401).
        root: the folder globs are relative to (the pyproject's folder); None: the cwd.
        source: where the settings came from, for messages.
    """

    select: Optional[tuple[str, ...]] = None
    ignore: tuple[str, ...] = ()
    per_file_ignores: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    declared_env: frozenset[str] = frozenset()
    root: Optional[Path] = None
    source: str = "defaults"

    def __post_init__(self) -> None:
        from ._registry import all_rules

        known = all_rules()
        for key, codes in [("select", self.select or ()), ("ignore", self.ignore), *(
            (f"per-file-ignores.{g}", c) for g, c in self.per_file_ignores.items()
        )]:  # fmt: skip
            for code in codes:
                if not code.startswith("RPF") or not any(k.startswith(code) for k in known):
                    raise CheckConfigError.invalid(
                        self.source, key, f"{code!r} matches no rule (known: {', '.join(known)})"
                    )

    def with_overrides(self, select: Optional[Iterable[str]] = None, ignore: Optional[Iterable[str]] = None) -> CheckConfig:
        """Command-line ``--select`` replaces the selection; ``--ignore`` adds to it."""
        return replace(
            self,
            select=_codes(select, "--select", "command line") if select else self.select,
            ignore=self.ignore + (_codes(ignore, "--ignore", "command line") if ignore else ()),
            source=self.source if not (select or ignore) else ("command line" if self.source == "defaults" else f"{self.source} + command line"),
        )

    def enabled(self, code: str, path: str | None = None) -> bool:
        """Whether ``code`` is reported for ``path`` (a path as given to the checker)."""
        if self.select is not None and not any(code.startswith(s) for s in self.select):
            return False
        if any(code.startswith(i) for i in self.ignore):
            return False
        if path and self.per_file_ignores:
            rel = self._relative(path)
            for pattern, codes in self.per_file_ignores.items():
                if _glob_match(rel, pattern) and any(code.startswith(c) for c in codes):
                    return False
        return True

    def _relative(self, path: str) -> str:
        p = Path(path)
        root = self.root or Path.cwd()
        try:
            return p.resolve().relative_to(root.resolve()).as_posix()
        except (ValueError, OSError):
            return PurePath(path).as_posix()


def _glob_match(rel: str, pattern: str) -> bool:
    pattern = pattern.replace("\\", "/")
    if pattern.startswith("./"):
        pattern = pattern[2:]
    if fnmatch.fnmatchcase(rel, pattern):
        return True
    if "**/" in pattern and fnmatch.fnmatchcase(rel, pattern.replace("**/", "")):
        return True  # "src/**/*.py" also matches "src/a.py"
    if "/" not in pattern and fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], pattern):
        return True
    return fnmatch.fnmatchcase(rel, pattern.rstrip("/") + "/*")  # a folder name matches what is in it


def _codes(value: Any, key: str, source: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace(" ", ",").split(",") if v]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise CheckConfigError.invalid(source, key, f"expected a list of rule codes, got {value!r}")
    return tuple(v.strip().upper() for v in value)


def config_from_table(table: Mapping[str, Any], *, root: Optional[Path] = None, source: str = "[tool.reproflow]") -> CheckConfig:
    """Build a :class:`CheckConfig` from a ``[tool.reproflow]`` mapping."""
    select = table.get("select")
    per_file = table.get("per-file-ignores", table.get("per_file_ignores", {}))
    if not isinstance(per_file, Mapping):
        raise CheckConfigError.invalid(source, "per-file-ignores", f"expected a table of glob = [codes], got {per_file!r}")
    env = table.get("declared-env", table.get("declared_env", []))
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise CheckConfigError.invalid(source, "declared-env", f"expected a list of variable names, got {env!r}")
    return CheckConfig(
        select=None if select is None else _codes(select, "select", source),
        ignore=_codes(table.get("ignore", []), "ignore", source),
        per_file_ignores={str(k): _codes(v, f"per-file-ignores.{k}", source) for k, v in per_file.items()},
        declared_env=frozenset(env),
        root=root,
        source=source,
    )


def _read_table(pyproject: Path) -> Optional[dict[str, Any]]:
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CheckConfigError.invalid(str(pyproject), "pyproject.toml", f"not valid TOML ({exc})") from exc
    except OSError:
        return None
    table = data.get("tool", {}).get("reproflow")
    return table if isinstance(table, dict) else None


_CACHE: dict[Path, CheckConfig] = {}


def find_config(start: str | Path, cache: Optional[dict[Path, CheckConfig]] = None) -> CheckConfig:
    """The settings of the nearest ``pyproject.toml`` with a ``[tool.reproflow]`` table.

    Walks up from ``start`` (a file or folder); defaults when none is found. ``cache`` maps
    folders already walked to their settings (default: one cache for the process).
    """
    cache = _CACHE if cache is None else cache
    here = Path(start).resolve()
    folder = here if here.is_dir() else here.parent
    walked: list[Path] = []
    result: Optional[CheckConfig] = None
    for candidate in [folder, *folder.parents]:
        if candidate in cache:
            result = cache[candidate]
            break
        walked.append(candidate)
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file():
            table = _read_table(pyproject)
            if table is not None:
                result = config_from_table(table, root=candidate, source=str(pyproject))
                break
    if result is None:
        result = CheckConfig()
    for folder in walked:
        cache[folder] = result
    return result


def clear_config_cache() -> None:
    """Forget discovered settings (tests that edit pyproject.toml between checks)."""
    _CACHE.clear()


__all__ = ["CheckConfig", "clear_config_cache", "config_from_table", "find_config"]
