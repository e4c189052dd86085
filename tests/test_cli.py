"""The CLI's first contact: usage errors, bare commands and --version, in-process and installed."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
from importlib.metadata import version

import pytest

from reproflow.cli._common import run_cli
from reproflow.cli import app

USAGE_ERRORS = [
    (["--bogus"], "No such option: --bogus", "Usage: reproflow [OPTIONS] COMMAND"),
    (["nosuch"], "No such command 'nosuch'", "Usage: reproflow [OPTIONS] COMMAND"),
    (["runs", "show"], "Missing argument", "Usage: reproflow runs show [OPTIONS]"),
    (["runs", "show", "abcd", "--bogus"], "No such option: --bogus", "Usage: reproflow runs show"),
    (["runs", "list", "--limit", "many"], "Invalid value for '--limit'", "Usage: reproflow runs list"),
    (["replay"], "Missing argument", "Usage: reproflow replay [OPTIONS]"),
]


def _exe() -> str:
    return shutil.which("reproflow", path=str(pathlib.Path(sys.executable).parent)) or "reproflow"


def _installed(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run([_exe(), *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(("args", "message", "usage"), USAGE_ERRORS, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_usage_error_is_usage_plus_one_line(args: list[str], message: str, usage: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A usage error (unknown option or command, missing argument, bad value) prints the usage
    line and one `error:` line naming the problem and where to get help; exit 2, no traceback."""
    code = run_cli(app, args)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(usage)
    assert lines[1].startswith("error: ") and message in lines[1] and "--help'" in lines[1]


@pytest.mark.parametrize("args", [[], ["runs"]], ids=["bare", "runs"])
def test_bare_command_prints_help_without_traceback(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """`reproflow` and `reproflow runs` alone show that command's help and exit 2 (a usage error)."""
    code = run_cli(app, args)
    out, err = capsys.readouterr()
    assert code == 2
    shown = out + err
    assert "Traceback" not in shown and shown.count("Usage: reproflow") == 1 and "Commands" in shown


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`reproflow --version` prints the installed version and exits 0."""
    assert run_cli(app, ["--version"]) == 0
    assert capsys.readouterr().out == f"reproflow {version('reproflow')}\n"


def test_installed_entry_point_usage_errors() -> None:
    """The same through the installed console script, in a subprocess: no traceback anywhere."""
    for args, message, usage in USAGE_ERRORS[:3]:
        proc = _installed(*args)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
        assert proc.stderr.splitlines()[0].startswith(usage) and message in proc.stderr
        assert len(proc.stderr.splitlines()) == 2, proc.stderr
    for args in ([], ["runs"]):
        proc = _installed(*args)
        shown = proc.stdout + proc.stderr
        assert proc.returncode == 2 and "Traceback" not in shown and shown.count("Usage: reproflow") == 1
    proc = _installed("--version")
    assert proc.returncode == 0 and proc.stdout == f"reproflow {version('reproflow')}\n" and proc.stderr == ""


#: What the CLI's start must not load: the record models, the store (fsspec), the analysis, replay
#: and export layers, and Prefect. Each command imports its own when it runs. (pydantic itself
#: is not listed: typer loads it for the help of a command group, `runs --help`.)
HEAVY_MODULES = ("fsspec", "prefect", "reproflow.records", "reproflow.store", "reproflow.analysis",
                 "reproflow.replay._replay", "reproflow.export", "reproflow.recorder._dag")


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["runs", "--help"], ["replay", "--help"],
                                  ["export", "--help"]], ids=" ".join)
def test_cli_start_imports_no_heavy_module(args: list[str]) -> None:
    """`reproflow --version` and the help of each command load none of the heavy layers: the
    CLI's start is what every command, `replay` included, waits for (0.8 s before, when every
    command module imported its implementation at start)."""
    code = (
        "import sys\n"
        "from reproflow.cli._common import run_cli\n"
        "from reproflow.cli import app\n"
        f"code = run_cli(app, {args!r})\n"
        f"heavy = sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in {HEAVY_MODULES!r}))\n"
        "print('HEAVY', heavy, code, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "100"})
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY")]
    assert line == ["HEAVY [] 0"], proc.stderr[-3000:]
    if args == ["--version"]:  # the version alone does not even need pydantic
        check = code.replace("heavy = sorted(m for m in sys.modules if", "heavy = sorted(m for m in sys.modules if m == 'pydantic' or")
        proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
        assert [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY")] == ["HEAVY [] 0"], proc.stderr[-3000:]
