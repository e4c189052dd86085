"""`reproflow check` on the command line: exit codes, text/JSON/SARIF output, --output, options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reproflow.cli._common import run_cli
from reproflow.checks import all_rules
from reproflow.cli import app

BAD = "import random\nimport os\n\nx = random.random()\nkey = os.environ['API_KEY']\n"
GOOD = "import random\n\nrng = random.Random(42)\nx = rng.random()\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "bad.py").write_text(BAD, encoding="utf-8")
    (tmp_path / "good.py").write_text(GOOD, encoding="utf-8")
    return tmp_path


def test_exit_codes(project: Path) -> None:
    """0 when clean, 1 on findings, 2 for a path that does not exist or an unknown code."""
    assert run_cli(app, ["check", str(project / "good.py")]) == 0
    assert run_cli(app, ["check", str(project)]) == 1
    assert run_cli(app, ["check", str(project / "missing.py")]) == 2
    assert run_cli(app, ["check", str(project), "--select", "RPF999"]) == 2
    assert run_cli(app, ["check", str(project), "--exit-zero"]) == 0


def test_text_output(project: Path) -> None:
    """Text lists path:line:col, code, message and fix, then a summary."""
    result = CliRunner().invoke(app, ["check", str(project)])
    assert result.exit_code == 1
    out = result.stdout
    assert f"{project / 'bad.py'}:4:5: RPF101 " in out
    assert f"{project / 'bad.py'}:5:7: RPF401 " in out
    assert "    fix: " in out and "2 findings (1 error, 1 other) in 1 file" in out


def test_clean_text_output(project: Path) -> None:
    """A clean check says so and exits 0."""
    result = CliRunner().invoke(app, ["check", str(project / "good.py")])
    assert result.exit_code == 0 and "No reproducibility findings." in result.stdout


def test_bad_path_is_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing path is one red line on stderr, no traceback."""
    assert run_cli(app, ["check", str(project / "missing.py")]) == 2
    captured = capsys.readouterr()
    assert "cannot check" in captured.err and "missing.py" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert len(captured.err.strip().splitlines()) == 1


def test_json_output(project: Path) -> None:
    """--format json prints only a JSON array of findings."""
    result = CliRunner().invoke(app, ["check", str(project), "--format", "json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [(d["code"], d["line"], d["col"], d["severity"]) for d in data] == [
        ("RPF101", 4, 5, "error"),
        ("RPF401", 5, 7, "warning"),
    ]
    assert all(d["path"].endswith("bad.py") and d["fix"] and d["message"] for d in data)


def test_select_and_ignore(project: Path) -> None:
    """--select narrows to codes or prefixes; --ignore removes them; both accept commas."""
    run = CliRunner().invoke
    out = json.loads(run(app, ["check", str(project), "-f", "json", "--select", "RPF4"]).stdout)
    assert [d["code"] for d in out] == ["RPF401"]
    out = json.loads(run(app, ["check", str(project), "-f", "json", "--ignore", "RPF101,RPF401"]).stdout)
    assert out == []


def test_sarif_output(project: Path, tmp_path: Path) -> None:
    """--format sarif writes a SARIF 2.1.0 log: every rule described, results with ruleId and locations."""
    target = tmp_path / "reports" / "check.sarif"
    result = CliRunner().invoke(app, ["check", str(project), "--format", "sarif", "--output", str(target)])
    assert result.exit_code == 1 and result.stdout == ""
    log = json.loads(target.read_text(encoding="utf-8"))
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    [run] = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "reproflow" and driver["version"]
    rule_ids = [r["id"] for r in driver["rules"]]
    assert rule_ids == ["RPF000", *all_rules()]
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["defaultConfiguration"]["level"] in {"error", "warning", "note"}
        assert rule["helpUri"].startswith("https://")
    assert len(run["results"]) == 2
    for res in run["results"]:
        assert res["ruleId"] in rule_ids and rule_ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in {"error", "warning", "note"} and res["message"]["text"]
        [loc] = res["locations"]
        phys = loc["physicalLocation"]
        assert phys["artifactLocation"]["uri"].endswith("bad.py")
        assert phys["region"]["startLine"] >= 1 and phys["region"]["startColumn"] >= 1
    assert [r["ruleId"] for r in run["results"]] == ["RPF101", "RPF401"]


def test_sarif_relative_paths_use_srcroot(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths become artifact URIs relative to %SRCROOT% with forward slashes."""
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["check", ".", "--format", "sarif"])
    [res, _] = json.loads(result.stdout)["runs"][0]["results"]
    assert res["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "bad.py", "uriBaseId": "%SRCROOT%"}


def test_default_path_is_current_folder(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no PATHS the current folder is checked."""
    monkeypatch.chdir(project)
    assert run_cli(app, ["check"]) == 1


def test_list_rules() -> None:
    """--list-rules prints every rule code and name."""
    result = CliRunner().invoke(app, ["check", "--list-rules"])
    assert result.exit_code == 0
    for code, rule in all_rules().items():
        assert code in result.stdout and rule.name in result.stdout


def test_installed_entry_point(project: Path) -> None:
    """The `reproflow` console script runs `check` with the documented exit code."""
    exe = Path(sys.executable).with_name("reproflow")
    proc = subprocess.run([str(exe), "check", str(project), "--format", "json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert [d["code"] for d in json.loads(proc.stdout)] == ["RPF101", "RPF401"]
