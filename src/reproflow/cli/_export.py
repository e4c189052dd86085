"""`reproflow export`, `reproflow import-cresp`, `reproflow diff`, `reproflow report`."""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from ._common import JsonOption, StoreOption, console, console_err, print_json
from ..errors import ExportError, InputChanged


def _store(url: Optional[str]):  # type: ignore[no-untyped-def]
    from ..analysis._api import open_store

    return open_store(url)


def export_cmd(
    run_id: str = typer.Argument(..., help="Run id or unique prefix."),
    fmt: str = typer.Option(..., "--format", "-f", help="requirements, pylock, conda, dockerfile, apptainer, "
                            "cresp, ro-crate, prov, sbom, licenses, graph"),  # fmt: skip
    out: Optional[str] = typer.Option(None, "--output", "-o", help="Write here instead of stdout "
                                      "(ro-crate: a folder, or a .zip)."),  # fmt: skip
    index_url: Optional[str] = typer.Option(None, "--index-url", help="Package index to look artifact hashes up "
                                            "on (pylock; requirements with --hashes). Default: the recorded one."),  # fmt: skip
    hashes: bool = typer.Option(False, "--hashes", help="requirements: add every --hash the index lists; "
                                "cresp: the hash of the file this platform installs."),
    allow_partial: bool = typer.Option(False, "--allow-partial", help="pylock, requirements/cresp with --hashes: "
                                       "write the export even if some packages are on no index (listed on stderr)."),
    pin: str = typer.Option("exact", "--pin", help="requirements: exact (==), compatible (~=) or minimum (>=) "
                            "pins for index packages; anything but exact is said in the file's header."),
    only_imported: bool = typer.Option(False, "--only-imported", help="Only the distributions the run imported "
                                       "(dev tools and unused packages left out)."),
    license_: Optional[str] = typer.Option(None, "--license", help="ro-crate: the crate's license (SPDX id)."),
    store: Optional[str] = StoreOption,
) -> None:
    """Export a recorded run as a lock file, container recipe, provenance document or report."""
    from ..export import export_run, get_exporter

    exporter = get_exporter(fmt)  # fails early, with the list of formats
    options: dict[str, object] = {}
    if index_url:
        options["index_url"] = index_url
    if hashes:
        options["hashes"] = True
    if allow_partial:
        options["allow_partial"] = True
    if license_:
        options["license"] = license_
    if only_imported:
        options["only_imported"] = True
    if pin != "exact":
        if exporter.name != "requirements":
            raise ExportError(f"--pin applies to the requirements export, not {exporter.name!r}; drop --pin")
        options["pin"] = pin
    notes: list[str] = []
    result = export_run(_store(store), run_id, exporter.name, out=out, notes=notes, **options)
    for note in notes:
        console_err.print(f"[yellow]warning:[/] {note}", soft_wrap=True, highlight=False)
    if out is None:
        if isinstance(result, bytes):
            raise ExportError(f"format {exporter.name!r} produced binary output: pass -o FILE")
        sys.stdout.write(result)
        sys.stdout.flush()
    else:
        console_err.print(f"wrote {exporter.name} to {os.path.abspath(out)}")


def import_cresp_cmd(
    path: str = typer.Argument(..., help="cresp.toml or cresp.yaml (any CRESP dialect)."),
    as_json: bool = JsonOption,
    requirements_out: Optional[str] = typer.Option(None, "--requirements", "-r",
                                                   help="Also write the pip packages it pins as requirements.txt."),  # fmt: skip
    check_data: bool = typer.Option(False, "--check-data", help="Hash the local data files it lists and compare."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Folder data paths are relative to "
                                            "(default: the file's folder)."),  # fmt: skip
) -> None:
    """Read a CRESP description: experiment, packages, data hashes, command, repository."""
    from rich.table import Table

    from ..export._cresp import import_cresp

    imp = import_cresp(path)
    checks = imp.check_data(data_root) if check_data else None
    if requirements_out:
        with open(requirements_out, "w", encoding="utf-8") as fh:
            fh.write(imp.requirements())
    if as_json:
        data = imp.model_dump(mode="json")
        if checks is not None:
            data["data_checks"] = [c.model_dump(mode="json") for c in checks]
        print_json(data)
    else:
        console.print(f"[bold]{imp.experiment_name or '(unnamed experiment)'}[/] — CRESP {imp.cresp_version or '?'} "
                      f"({imp.dialect} dialect)")  # fmt: skip
        for label, value in (("authors", ", ".join(imp.authors) or None), ("date", imp.date),
                             ("python", imp.python_version), ("os", imp.os), ("seed", imp.random_seed),
                             ("command", imp.command), ("repo", imp.repo), ("commit", imp.commit),
                             ("branch", imp.branch), ("project", imp.project_url),
                             ("environment file", imp.environment_file),
                             ("pyproject", ", ".join(sorted(imp.pyproject)) or None)):  # fmt: skip
            if value is not None:
                console.print(f"  {label}: {value}")
        if imp.packages:
            t = Table(title=f"{len(imp.packages)} package(s)", title_justify="left")
            for col in ("name", "version", "source", "hash"):
                t.add_column(col)
            for p in imp.packages:
                t.add_row(p.name, p.version or "", p.source or "", (p.hash or "")[:16])
            console.print(t)
        if imp.data:
            t = Table(title=f"{len(imp.data)} data file(s)", title_justify="left")
            for col in ("source", "sha256", "check"):
                t.add_column(col, overflow="fold")
            status = {c.source: c.status for c in checks or []}
            for d in imp.data:
                t.add_row(d.source, (d.sha256 or "")[:16], status.get(d.source, ""))
            console.print(t)
        if imp.unmapped:
            console.print(f"  [dim]not mapped: {', '.join(imp.unmapped)}[/]")
    bad = [c for c in checks or [] if c.status in ("changed", "missing")]
    if bad:
        first = bad[0]
        raise InputChanged(
            f"{len(bad)} data file(s) listed in {path} changed or are missing, e.g. {first.source} "
            f"({first.status}); restore the original data",
            uri=first.path or first.source,
            expected=first.expected or "",
            actual=first.actual,
        )


def diff_cmd(
    run_a: str = typer.Argument(..., help="First run (id or unique prefix)."),
    run_b: str = typer.Argument(..., help="Second run (id or unique prefix)."),
    as_json: bool = JsonOption,
    store: Optional[str] = StoreOption,
) -> None:
    """What changed between two runs: packages, Python, OS, hardware, git, parameters, data."""
    from ..analysis._diff import diff_runs, render_diff

    diff = diff_runs(_store(store), run_a, run_b)
    if as_json:
        data = diff.model_dump(mode="json")
        data["differences"] = diff.differences()
        print_json(data)
        return
    render_diff(diff, console)


def report_cmd(
    run_id: str = typer.Argument(..., help="Run id or unique prefix."),
    as_json: bool = JsonOption,
    fmt: str = typer.Option("md", "--format", "-f", help="File format for -o: md or html."),
    out: Optional[str] = typer.Option(None, "--output", "-o", help="Also write the report to this file."),
    save: bool = typer.Option(True, "--save/--no-save", help="Write REPRODUCIBILITY.md and .html into the run's "
                              "folder in the store."),  # fmt: skip
    publish: bool = typer.Option(False, "--publish", help="Attach it to the Prefect flow run as a markdown artifact."),
    store: Optional[str] = StoreOption,
) -> None:
    """A reproducibility checklist with a 0-100 score and a reason for every point lost."""
    from ..analysis._report import build_report, publish_report_artifact, render_report, save_report

    if fmt not in ("md", "html"):
        raise ExportError(f"unknown report format {fmt!r}; choose md or html")
    st = _store(store)
    report = build_report(st, run_id)
    if publish and report.engine != "prefect":
        raise ExportError(
            f"run {report.run_id} was recorded outside Prefect (engine {report.engine!r}): there is no flow run "
            f"to attach an artifact to; read REPRODUCIBILITY.md in the run's folder instead"
        )
    if save:
        save_report(st, report)
    if out:
        text = report.to_html() if fmt == "html" else report.to_markdown()
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text)
    if publish:
        publish_report_artifact(report, report.run_id)
    if as_json:
        data = report.model_dump(mode="json")
        print_json(data)
        return
    render_report(report, console)


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
    app.command("import-cresp")(import_cresp_cmd)
    app.command("diff")(diff_cmd)
    app.command("report")(report_cmd)
