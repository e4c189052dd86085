"""Settings for `reproflow check`: pyproject discovery, select/ignore, per-file ignores,
declared environment variables, and inline `# reproflow: ignore` comments."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reproflow.checks import CheckConfig, check_paths, check_source, config_from_table, find_config
from reproflow.errors import CheckConfigError

SOURCE = "import os, random\nx = random.random()\nhome = os.environ['HOME']\nDATA = '/home/alice/x.csv'\n"


def _project(tmp_path: Path, pyproject: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent(pyproject), encoding="utf-8")
    pkg = tmp_path / "pipelines"
    (pkg / "tests").mkdir(parents=True)
    (pkg / "flow.py").write_text(SOURCE, encoding="utf-8")
    (pkg / "tests" / "test_flow.py").write_text(SOURCE, encoding="utf-8")
    return pkg


def _codes_by_file(findings: list) -> dict[str, list[str]]:  # type: ignore[type-arg]
    out: dict[str, list[str]] = {}
    for f in findings:
        out.setdefault(Path(f.path).name, []).append(f.code)
    return out


def test_defaults_report_every_rule() -> None:
    """Without settings every rule runs."""
    assert [f.code for f in check_source(SOURCE, "m.py")] == ["RPF101", "RPF401", "RPF301"]


def test_pyproject_found_by_walking_up(tmp_path: Path) -> None:
    """select, ignore, per-file-ignores and declared-env come from the nearest [tool.reproflow]."""
    pkg = _project(
        tmp_path,
        """
        [project]
        name = "demo"

        [tool.reproflow]
        select = ["RPF1", "RPF3", "RPF4"]
        ignore = ["RPF301"]
        declared-env = ["HOME"]
        other-feature = true

        [tool.reproflow.per-file-ignores]
        "pipelines/tests/*" = ["RPF101"]
        """,
    )
    found = _codes_by_file(check_paths([pkg]))
    assert found == {"flow.py": ["RPF101"]}
    cfg = find_config(pkg / "flow.py", {})
    assert cfg.root == tmp_path.resolve() and cfg.declared_env == frozenset({"HOME"})


def test_nearest_table_wins_and_plain_pyproject_is_skipped(tmp_path: Path) -> None:
    """A pyproject.toml without [tool.reproflow] does not stop the walk up."""
    _project(tmp_path, "[tool.reproflow]\nignore = ['RPF4']\n")
    inner = tmp_path / "pipelines"
    (inner / "pyproject.toml").write_text("[project]\nname = 'inner'\n", encoding="utf-8")
    assert find_config(inner / "flow.py", {}).ignore == ("RPF4",)


def test_per_file_ignore_globs() -> None:
    """Globs match relative paths, file names alone, '**/' at any depth, and folder names."""
    cfg = CheckConfig(
        per_file_ignores={"tests/*": ("RPF101",), "conftest.py": ("RPF3",), "src/**/*.py": ("RPF401",), "notebooks": ("RPF2",)},
        root=Path("/proj"),
    )
    assert not cfg.enabled("RPF101", "/proj/tests/deep/test_a.py")
    assert cfg.enabled("RPF101", "/proj/flows/a.py")
    assert not cfg.enabled("RPF301", "/proj/anything/conftest.py")
    assert not cfg.enabled("RPF401", "/proj/src/a.py") and not cfg.enabled("RPF401", "/proj/src/x/y/a.py")
    assert not cfg.enabled("RPF201", "/proj/notebooks/a.py")
    assert cfg.enabled("RPF201", "/proj/flows/notebooks_old.py")


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"select": ["RPF999"]}, "select"),
        ({"ignore": ["E501"]}, "ignore"),
        ({"ignore": "RPF101"}, None),  # a comma string is accepted
        ({"per-file-ignores": {"tests/*": ["RPF9"]}}, "per-file-ignores.tests/*"),
        ({"per-file-ignores": ["tests/*"]}, "per-file-ignores"),
        ({"declared-env": "HOME"}, "declared-env"),
        ({"select": [1, 2]}, "select"),
    ],
)
def test_invalid_settings_are_one_clear_error(table: dict, key: str | None) -> None:  # type: ignore[type-arg]
    """A typo never silently disables a check: unknown codes and wrong types raise CheckConfigError."""
    if key is None:
        assert config_from_table(table).ignore == ("RPF101",)
        return
    with pytest.raises(CheckConfigError) as info:
        config_from_table(table, source="pyproject.toml")
    assert info.value.key == key and info.value.exit_code == 2
    assert "pyproject.toml" in str(info.value)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    """A broken pyproject.toml is reported with its path, not as a traceback."""
    (tmp_path / "pyproject.toml").write_text("[tool.reproflow\n", encoding="utf-8")
    (tmp_path / "a.py").write_text("x = 1\n", encoding="utf-8")
    with pytest.raises(CheckConfigError, match="not valid TOML"):
        check_paths([tmp_path / "a.py"])


def test_command_line_overrides() -> None:
    """select= replaces the file's selection; ignore= adds to its ignores."""
    cfg = CheckConfig(select=("RPF1",), ignore=("RPF102",))
    over = cfg.with_overrides(select=["RPF3", "RPF1"], ignore=["RPF101"])
    assert over.select == ("RPF3", "RPF1") and over.ignore == ("RPF102", "RPF101")
    assert check_paths is not None and [f.code for f in check_source(SOURCE, "m.py", over)] == ["RPF301"]


def test_check_paths_select_and_ignore_keywords(tmp_path: Path) -> None:
    """check_paths(select=..., ignore=...) works like --select/--ignore on every file."""
    pkg = _project(tmp_path, "[tool.reproflow]\nignore = ['RPF401']\n")
    found = _codes_by_file(check_paths([pkg / "flow.py"], select=["RPF3", "RPF4"]))
    assert found == {"flow.py": ["RPF301"]}
    with pytest.raises(CheckConfigError):
        check_paths([pkg / "flow.py"], ignore=["RPF0X"])


def test_inline_ignores() -> None:
    """`# reproflow: ignore[CODE]` silences that code on its statement; bare ignore silences all."""
    src = textwrap.dedent(
        """
        import os, random
        a = random.random()  # reproflow: ignore[RPF101]
        b = random.random()  # reproflow: ignore[RPF301]
        c = os.environ['X'] + '/home/al/x'  # reproflow: ignore
        d = os.environ[  # reproflow: ignore[rpf401, RPF3]
            'Y'
        ] + '/home/al/y'
        for f in os.listdir('.'):  # reproflow: ignore[RPF6]
            print(f)
        e = "# reproflow: ignore"; g = random.random()
        """
    )
    found = [(f.code, f.line) for f in check_source(src, "m.py")]
    assert found == [("RPF101", 4), ("RPF101", 11)]
