"""License report, the format registry, and CLI errors of `reproflow export`."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from rf_factory import dist, make_run

from reproflow.cli._common import run_cli
from reproflow.cli import app
from reproflow.errors import ExportError, RunNotFound
from reproflow.export import Exporter, export_run, formats, get_exporter, register_exporter
from reproflow.export._licenses import classify_text, license_entry
from reproflow.store import Store

GPL = "License :: OSI Approved :: GNU General Public License v3 (GPLv3)"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("MIT", "permissive"),
        ("Apache-2.0 OR BSD-3-Clause", "permissive"),
        ("MIT OR GPL-3.0-only", "permissive"),  # a choice: the freest applies
        ("MIT AND GPL-3.0-only", "strong-copyleft"),  # both apply: the strictest
        ("MPL-2.0 AND (Apache-2.0 OR MIT)", "weak-copyleft"),
        ("LGPL-2.1-or-later", "weak-copyleft"),
        ("AGPL-3.0-only", "strong-copyleft"),
        ("GPL-2.0-or-later WITH Classpath-exception-2.0", "weak-copyleft"),
        ("EPL-2.0", "weak-copyleft"),
        ("BSD License", "permissive"),
        ("UNKNOWN", "unknown"),
        ("Other/Proprietary License", "unknown"),
        ("frobnicate license", "unknown"),
    ],
)
def test_classify_license_text(text: str, category: str) -> None:
    """SPDX expressions and common names land in the right category."""
    assert classify_text(text) == category


def test_license_entry_sources() -> None:
    """Metadata first, classifiers when metadata says nothing, full license texts by first line;
    copyleft and unknown are flagged."""
    gpl = license_entry(dist("a", "1", license_classifiers=[GPL]))
    assert (gpl.category, gpl.source, gpl.copyleft) == ("strong-copyleft", "classifier", True)
    assert "strong copyleft" in gpl.flags[0]
    text = license_entry(dist("b", "1", license="GNU LESSER GENERAL PUBLIC LICENSE\nVersion 3 ..." + "x" * 200))
    assert (text.category, text.source) == ("weak-copyleft", "text")
    unknown = license_entry(dist("c", "1"))
    assert unknown.category == "unknown" and "unknown license" in unknown.flags[0]


def test_licenses_export_markdown_and_json(store: Store, tmp_path: pathlib.Path) -> None:
    """The Markdown report flags copyleft and unknown packages; a .json target gets JSON."""
    run_id = make_run(store, packages=[dist("ok", "1", license="MIT"), dist("gpl", "2", license_classifiers=[GPL]),
                                       dist("mystery", "3")])  # fmt: skip
    md = str(export_run(store, run_id, "licenses"))
    flagged = md.split("## Flagged", 1)[1].split("## All packages", 1)[0]
    assert "| gpl | 2 |" in flagged and "| mystery | 3 |" in flagged and "| ok |" not in flagged
    data = json.loads(str(export_run(store, run_id, "licenses", out=tmp_path / "l.json")))
    assert data["counts"] == {"permissive": 1, "strong-copyleft": 1, "unknown": 1}
    assert json.loads((tmp_path / "l.json").read_text()) == data


def test_registry_unknown_format_and_missing_extra(recorded: dict[str, Any]) -> None:
    """An unknown format lists the known ones; a format whose library is missing names the extra
    to install; aliases resolve; the registry imports nothing until asked."""
    with pytest.raises(ExportError, match="choose one of: apptainer, conda"):
        get_exporter("nope")
    assert get_exporter("rocrate").name == "ro-crate"
    register_exporter(Exporter("needs-missing", "reproflow.export._licenses:export_licenses", "test", "x",
                               requires=("reproflow_no_such_module",), extra="export"))  # fmt: skip
    try:
        with pytest.raises(ExportError, match=r"pip install 'reproflow\[export\]'"):
            export_run(recorded["store"], recorded["run_id"], "needs-missing")
    finally:
        from reproflow import export as export_pkg

        export_pkg._REGISTRY.pop("needs-missing", None)
    assert {"requirements", "pylock", "conda", "dockerfile", "apptainer", "cresp", "ro-crate", "prov", "sbom",
            "licenses", "graph"} == set(formats())  # fmt: skip
    import subprocess
    import sys

    probe = ("import sys, reproflow.export, reproflow.analysis._diff, reproflow.analysis._report, reproflow.cli._export; "
             "print(sorted(m for m in ('rocrate', 'prov', 'cyclonedx', 'prefect', 'yaml') if m in sys.modules))")  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_export_unknown_run_raises(store: Store) -> None:
    """An unknown run id is RunNotFound (no half-written output)."""
    make_run(store)
    with pytest.raises(RunNotFound):
        export_run(store, "ffffffff-0000", "requirements")


def test_cli_export(recorded: dict[str, Any], tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`reproflow export` prints to stdout or writes -o; a bad format or run id is one red line
    with the error's exit code; binary output without -o is refused."""
    store = str(recorded["store"].url)
    rid = recorded["run_id"]
    assert run_cli(app, ["export", rid[:8], "-f", "requirements", "--store", store]) == 0
    assert "six==" in capsys.readouterr().out
    out = tmp_path / "Dockerfile"
    assert run_cli(app, ["export", rid, "-f", "dockerfile", "-o", str(out), "--store", store]) == 0
    assert out.read_text().startswith("# syntax=docker/dockerfile")
    capsys.readouterr()
    assert run_cli(app, ["export", rid, "-f", "nope", "--store", store]) == ExportError.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown export format 'nope'" in err
    assert run_cli(app, ["export", "0000dead", "-f", "requirements", "--store", store]) == RunNotFound.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no run '0000dead'" in err
    zipped = tmp_path / "c.zip"
    assert run_cli(app, ["export", rid, "-f", "ro-crate", "-o", str(zipped), "--store", store]) == 0
    assert zipped.read_bytes()[:2] == b"PK"
