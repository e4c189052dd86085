"""requirements --pin exact|compatible|minimum, checked by what real pip would install.

pip resolves each file against a local index of wheels built by the test (rf_factory.build_index),
never a mirror, so the answer depends only on the releases listed here.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from rf_factory import build_index, dist, make_run

from reproflow.errors import ExportError
from reproflow.export import export_run
from reproflow.export._requirements import pinned
from reproflow.records import DirectUrl
from reproflow.store import Store

RELEASES = {"rf-alpha": ["1.0", "1.1", "2.0"], "rf-beta": ["2.0", "2.5", "3.0"]}


def _pip_would_install(requirements: pathlib.Path, index: str, tmp_path: pathlib.Path) -> dict[str, str]:
    """What `pip install --dry-run` picks for this file from the local index alone (this machine's
    pip configuration — extra indexes, find-links, constraints — switched off)."""
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                    "--disable-pip-version-check", "-q", "--index-url", index, "--report", str(report),
                    "-r", str(requirements)], check=True, capture_output=True, text=True, env=env)  # fmt: skip
    data = json.loads(report.read_text())
    return {i["metadata"]["name"]: i["metadata"]["version"] for i in data["install"]}


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("exact", {"rf-alpha": "1.0", "rf-beta": "2.0"}),
     ("compatible", {"rf-alpha": "1.1", "rf-beta": "2.5"}),
     ("minimum", {"rf-alpha": "2.0", "rf-beta": "3.0"})],
)  # fmt: skip
def test_pin_strategy_is_what_pip_installs(
    strategy: str, expected: dict[str, str], store: Store, tmp_path: pathlib.Path
) -> None:
    """A run recorded rf-alpha 1.0 and rf-beta 2.0; the index also serves later releases. Real pip
    installs exactly the recorded ones from an exact file, the latest of the recorded series from a
    compatible one and the latest overall from a minimum one; only loose files say so in the header."""
    index, _ = build_index(tmp_path / "index", RELEASES)
    run_id = make_run(store, packages=[dist("rf-alpha", "1.0"), dist("rf-beta", "2.0")])
    target = tmp_path / "requirements.txt"
    text = export_run(store, run_id, "requirements", out=target, pin=strategy)
    assert isinstance(text, str)
    assert _pip_would_install(target, index, tmp_path) == expected
    header = [ln for ln in text.splitlines() if ln.startswith("# pins:")]
    if strategy == "exact":
        assert header == []
    else:
        assert len(header) == 1 and strategy in header[0] and "NOT reproduce" in header[0]


def test_loose_pins_keep_vcs_and_archive_exact(store: Store) -> None:
    """Only index packages are loosened: a VCS install stays at its commit."""
    vcs = dist("vcspkg", "2.0", direct_url=DirectUrl(url="https://github.com/example/vcspkg.git", vcs="git",
                                                     commit_id="f" * 40))  # fmt: skip
    run_id = make_run(store, packages=[dist("rf-alpha", "1.0"), vcs])
    text = export_run(store, run_id, "requirements", pin="minimum")
    assert isinstance(text, str)
    assert "rf-alpha>=1.0" in text.splitlines()
    assert f"vcspkg @ git+https://github.com/example/vcspkg.git@{'f' * 40}" in text.splitlines()


def test_one_part_version_gets_a_valid_compatible_pin() -> None:
    """`~=2` is not PEP 440; a one-part version gets the same range spelled out."""
    from packaging.requirements import Requirement

    assert pinned("x", "2", "compatible") == "x>=2,==2.*"
    spec = Requirement(pinned("x", "2", "compatible")).specifier
    assert spec.contains("2.9") and not spec.contains("3.0") and not spec.contains("1.9")
    assert pinned("x", "1.4.2", "compatible") == "x~=1.4.2"


def test_unknown_strategy_and_hashes_with_loose_pins_fail(store: Store) -> None:
    run_id = make_run(store, packages=[dist("rf-alpha", "1.0")])
    with pytest.raises(ExportError, match="choose one of: exact, compatible, minimum"):
        export_run(store, run_id, "requirements", pin="loose")
    with pytest.raises(ExportError, match="--hashes needs exact pins"):
        export_run(store, run_id, "requirements", pin="compatible", hashes=True)


def test_cli_pin_bad_input_is_one_line(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    """`reproflow export --pin`: a loose file on stdout; an unknown strategy, or --pin on another
    format, is one error line and a non-zero exit, no traceback."""
    from reproflow.cli import app
    from reproflow.cli._common import run_cli

    run_id = make_run(store, packages=[dist("rf-alpha", "1.0")])
    assert run_cli(app, ["export", run_id, "--format", "requirements", "--pin", "compatible", "--store", store.url]) == 0
    assert "rf-alpha~=1.0" in capsys.readouterr().out.splitlines()
    for args, words in ((["--format", "requirements", "--pin", "loose"], "unknown pin strategy 'loose'"),
                        (["--format", "conda", "--pin", "minimum"], "--pin applies to the requirements export")):  # fmt: skip
        assert run_cli(app, ["export", run_id, *args, "--store", store.url]) != 0
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err


def test_only_imported_file_is_what_pip_installs(store: Store, tmp_path: pathlib.Path) -> None:
    """--only-imported, read by real pip: the imported distributions at their recorded versions,
    and nothing of the dev tool the run did not import (which no index here has: pip would
    fail on it)."""
    index, _ = build_index(tmp_path / "index", RELEASES)
    packages = [dist("rf-alpha", "1.0", requires=["rf-beta"]), dist("rf-beta", "2.0"), dist("rf-devtool", "9.0")]
    run_id = make_run(store, packages=packages, imported=["rf-alpha", "rf-beta"])
    target = tmp_path / "requirements.txt"
    export_run(store, run_id, "requirements", out=target, only_imported=True)
    assert _pip_would_install(target, index, tmp_path) == {"rf-alpha": "1.0", "rf-beta": "2.0"}
    full = tmp_path / "all.txt"
    export_run(store, run_id, "requirements", out=full)
    with pytest.raises(subprocess.CalledProcessError):  # the check can fail: rf-devtool is on no index
        _pip_would_install(full, index, tmp_path)
