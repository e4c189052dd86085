"""Static reproducibility checks: find what will make a pipeline unrepeatable before it runs.

::

    from reproflow.checks import check_paths, check_source, check_function

    for finding in check_paths(["flows/"]):
        print(finding.path, finding.line, finding.code, finding.message)

Each rule has a stable code (``RPF101`` ...), documented in ``docs/checks.md``. Settings come
from ``[tool.reproflow]`` in the nearest ``pyproject.toml``; ``# reproflow: ignore[RPF101]`` on a
line silences one finding. Only the standard library's :mod:`ast` is used, so importing this
package costs little.
"""

from __future__ import annotations

from ._config import CheckConfig, config_from_table, find_config
from ._environ import environment_names_read
from ._engine import check_function, check_paths, check_source, clear_function_cache, python_files
from ._registry import PARSE_ERROR_CODE, Hit, Rule, all_rules, get_rule
from ._report import render_json, render_sarif, render_text, sarif_log

__all__ = [
    "PARSE_ERROR_CODE",
    "CheckConfig",
    "Hit",
    "Rule",
    "all_rules",
    "check_function",
    "check_paths",
    "check_source",
    "clear_function_cache",
    "config_from_table",
    "environment_names_read",
    "find_config",
    "get_rule",
    "python_files",
    "render_json",
    "render_sarif",
    "render_text",
    "sarif_log",
]
