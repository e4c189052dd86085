"""The library entry points: check_paths over files and folders, check_function for one task
(cached per module), and zero findings on the example flows shipped in flows/."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from reproflow.checks import check_function, check_paths, clear_function_cache, python_files
from reproflow.errors import CheckPathNotFound

REPO = Path(__file__).resolve().parents[2]


def _import(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_function_cache()
    yield
    clear_function_cache()


def test_example_flows_have_no_findings() -> None:
    """The pipelines in flows/ are the reference for good practice: zero findings, zero false positives."""
    files = python_files([REPO / "flows"])
    assert files, "flows/ holds no Python files"
    assert check_paths([REPO / "flows"]) == []


def test_folders_are_searched_and_tool_folders_skipped(tmp_path: Path) -> None:
    """Folders are walked in sorted order; .venv, __pycache__, build and .git are skipped."""
    for rel in ["b.py", "a/c.py", ".venv/lib/x.py", "__pycache__/y.py", "build/z.py", "a/notes.txt"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("import random\nx = random.random()\n", encoding="utf-8")
    found = check_paths([tmp_path])
    assert [Path(f.path).relative_to(tmp_path).as_posix() for f in found] == ["a/c.py", "b.py"]
    assert {f.line for f in found} == {2}


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    """A path that does not exist raises CheckPathNotFound (exit code 2) naming it."""
    with pytest.raises(CheckPathNotFound) as info:
        check_paths([tmp_path / "nope.py"])
    assert info.value.path.endswith("nope.py") and info.value.exit_code == 2
    assert "no such file or directory" in str(info.value)


def test_undecodable_and_unparsable_files_are_findings(tmp_path: Path) -> None:
    """Bad bytes or bad syntax give one RPF000 finding per file, and the rest is still checked."""
    (tmp_path / "a_bytes.py").write_bytes(b"x = '\xff\xfe'\n")
    (tmp_path / "b_syntax.py").write_text("def f(:\n", encoding="utf-8")
    (tmp_path / "c_ok.py").write_text("import random\nrandom.random()\n", encoding="utf-8")
    assert [(Path(f.path).name, f.code) for f in check_paths([tmp_path])] == [
        ("a_bytes.py", "RPF000"),
        ("b_syntax.py", "RPF000"),
        ("c_ok.py", "RPF101"),
    ]


MODULE = textwrap.dedent(
    """
    import random
    import numpy as np

    DATA = "/home/alice/data.csv"
    OTHER = "/home/bob/other.csv"


    def helper():
        return random.random()


    def uses_helper_and_global():
        return helper(), DATA


    def clean(x):
        rng = np.random.default_rng(x)
        return rng.random()


    def unseeded():
        return np.random.rand(), OTHER


    class Model:
        def __init__(self):
            self.w = random.random()


    def builds_model():
        return Model()
    """
)


def test_check_function_keeps_what_concerns_the_function(tmp_path: Path) -> None:
    """Findings inside the function, in module functions/classes it calls, and on globals it reads."""
    path = tmp_path / "pipeline_a.py"
    path.write_text(MODULE, encoding="utf-8")
    mod = _import(path, "pipeline_a")
    found = check_function(mod.uses_helper_and_global)
    assert sorted((f.code, f.line) for f in found) == [("RPF101", 10), ("RPF301", 5)]
    assert check_function(mod.clean) == []
    assert sorted(f.code for f in check_function(mod.unseeded)) == ["RPF102", "RPF301"]
    assert [(f.code, f.line) for f in check_function(mod.builds_model)] == [("RPF101", 28)]
    assert [(f.code, f.line) for f in check_function(mod.Model.__init__)] == [("RPF101", 28)]


def test_check_function_unwraps_prefect_tasks(tmp_path: Path) -> None:
    """A Prefect task is analysed as the user's function behind it."""
    path = tmp_path / "pipeline_b.py"
    source = MODULE.replace("default_rng(x)", "default_rng()") + "\nfrom prefect import task\nwrapped = task(clean)\n"
    path.write_text(source, encoding="utf-8")
    mod = _import(path, "pipeline_b")
    [finding] = check_function(mod.wrapped)
    assert finding.code == "RPF102" and finding.path.endswith("pipeline_b.py")


def test_module_level_seed_satisfies_function(tmp_path: Path) -> None:
    """A seed set at module level counts for the functions in that module."""
    path = tmp_path / "pipeline_c.py"
    path.write_text("import random\nrandom.seed(3)\n\ndef draw():\n    return random.random()\n", encoding="utf-8")
    assert check_function(_import(path, "pipeline_c").draw) == []


def test_check_function_analyses_each_module_once(tmp_path: Path) -> None:
    """The module is parsed once per process: a later edit is not seen until the cache is cleared."""
    path = tmp_path / "pipeline_d.py"
    path.write_text("import random\n\ndef draw():\n    return random.random()\n", encoding="utf-8")
    mod = _import(path, "pipeline_d")
    first = check_function(mod.draw)
    path.write_text("import random\nrandom.seed(1)\n\ndef draw():\n    return random.random()\n", encoding="utf-8")
    assert check_function(mod.draw) == first and [f.code for f in first] == ["RPF101"]
    clear_function_cache()
    assert check_function(mod.draw) == []


def test_check_function_is_thread_safe(tmp_path: Path) -> None:
    """Concurrent first calls of many tasks (Prefect runs them in threads) agree."""
    path = tmp_path / "pipeline_e.py"
    path.write_text(MODULE, encoding="utf-8")
    mod = _import(path, "pipeline_e")
    results: list[list[str]] = []

    def work() -> None:
        results.append(sorted(f.code for f in check_function(mod.unseeded)))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [["RPF102", "RPF301"]] * 8


def test_check_function_without_source_is_empty() -> None:
    """Built-ins and code without a source file give no findings rather than an error."""
    assert check_function(len) == []
    namespace: dict[str, object] = {}
    exec("import random\ndef f():\n    return random.random()\n", namespace)  # noqa: S102
    assert check_function(namespace["f"]) == []  # type: ignore[arg-type]


def test_check_function_respects_project_settings(tmp_path: Path) -> None:
    """The module's pyproject settings apply, and paths are shown relative to the project."""
    (tmp_path / "pyproject.toml").write_text("[tool.reproflow]\nignore = ['RPF301']\n", encoding="utf-8")
    path = tmp_path / "pipeline_f.py"
    path.write_text(MODULE, encoding="utf-8")
    found = check_function(_import(path, "pipeline_f").unseeded)
    assert [(f.code, f.path) for f in found] == [("RPF102", "pipeline_f.py")]


def test_a_task_s_findings_are_kept_across_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A function's findings come from the cache in the next process (its module is not parsed
    again) while its module's text, the settings and the rules are unchanged; each change of one
    of them analyses the module again."""
    from reproflow.checks import _config, _engine

    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "pipeline_cached.py"
    path.write_text("import random\n\ndef draw():\n    return random.random()\n", encoding="utf-8")
    mod = _import(path, "pipeline_cached")
    analysed: list[str] = []
    real = _engine._analyse

    def counted(source: str, filename: str, config: object) -> object:
        analysed.append(filename)
        return real(source, filename, config)  # type: ignore[arg-type]

    monkeypatch.setattr(_engine, "_analyse", counted)

    def next_process() -> list[tuple[str, int | None, str | None]]:
        clear_function_cache()  # what a new process starts with
        _config.clear_config_cache()
        return [(f.code, f.line, f.path) for f in check_function(mod.draw)]

    first = next_process()
    assert [c for c, _, _ in first] == ["RPF101"] and len(analysed) == 1
    assert next_process() == first and len(analysed) == 1  # from the cache: not parsed again

    path.write_text("import random\n\ndef draw():\n    return random.random()\n\nrandom.seed(3)\n", encoding="utf-8")
    assert next_process() == [] and len(analysed) == 2  # the module's text changed: a seed now
    assert next_process() == [] and len(analysed) == 2

    (tmp_path / "pyproject.toml").write_text("[tool.reproflow]\nignore = [\"RPF101\"]\n", encoding="utf-8")
    path.write_text("import random\n\ndef draw():\n    return random.random()\n", encoding="utf-8")
    assert next_process() == [] and len(analysed) == 3  # settings that ignore it
    (tmp_path / "pyproject.toml").unlink()
    assert next_process() == first and len(analysed) == 4  # the settings are gone again

    monkeypatch.setattr(_engine._findings, "_stamp", "another reproflow")
    assert next_process() == first and len(analysed) == 5  # other rules: analysed again
    assert next_process() == first and len(analysed) == 5

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # a finding's path is shown from the working folder
    moved = next_process()
    assert len(analysed) == 6 and moved[0][2] == str(path) != first[0][2]


def test_the_findings_cache_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One row a function, and the least recently analysed go past MAX_ROWS."""
    from reproflow.checks import _engine

    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(tmp_path / "cache"))
    cache = _engine._FindingsCache()
    monkeypatch.setattr(cache._rows, "max_rows", 3)
    for i in range(5):
        cache.put(f"place-{i}", "fp", [])
    assert cache.get("place-0", "fp") is None and cache.get("place-1", "fp") is None
    assert cache.get("place-4", "fp") == [] and cache.get("place-4", "other") is None
    cache.put("place-4", "fp2", [])  # the same function again: its row is replaced
    assert cache.get("place-4", "fp") is None and cache.get("place-4", "fp2") == []
