"""A reproducibility checklist for one run: a 0-100 score and a reason for every point lost.

Each check is a small function ``(ReportInput) -> Check``; the score is 100 minus the points the
checks take, never below 0. Checks and their weights:

===================  ======  ==========================================================
code                 points  loses them when
===================  ======  ==========================================================
no-git               15      the code was not in a git repository
dirty-tree           15/10   uncommitted changes (10 when the diff itself was stored)
no-source            10      no snapshot of the code was stored
unpinned-local       10 each local or editable package without a stored source (max 20)
inputs-not-hashed    10      an input has no SHA-256 (missing, or an object not hashed)
inputs-not-stored    5       inputs are hashed but no copy was stored
undeclared-inputs    5       a task opened a file for reading that it did not declare
unseeded-randomness  10/5    per RPF1xx rule found: 10 for an error, 5 for a warning (max 20)
findings             10/5    per other rule found: 10 for an error, 5 for a warning (max 20)
gpu-nondeterminism   5       a GPU was present: kernels may be nondeterministic
secrets-redacted     5       secrets were redacted from the record: a replay must supply them
failed               15      a task or the run failed, crashed or was cancelled
incomplete           5       the run has no end record
replay-refused       30      the replay plan, made as on another machine with nothing but
                             the store, has problems: a replay would be refused
unverifiable         5 each  a task a replay cannot check: its return value has no stable
                             hash and it wrote no file (per task name, max 15)
unknown-libraries    0       (counted, no points) shared libraries the run loaded that no OS
                             package, Python distribution or interpreter owns
===================  ======  ==========================================================

The replay checks reuse the replay planner (:func:`reproflow.replay._plan.plan_loaded` with
``elsewhere=True``), so the report names exactly the problems ``reproflow replay --dry-run``
would show on another machine, whatever machine the report is made on.

Findings are those of the static checks (``reproflow check``) stored in the run record and in
each task record (``TaskRecord.findings``); the report also lists every one of them.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Optional
from uuid import UUID

from pydantic import BaseModel, Field

from ..export._common import classify
from ..records import Environment, Finding, Run
from ..store import Store
from ..values._text import utf8_text

REPORT_FILENAME = "REPRODUCIBILITY.md"
HTML_FILENAME = "REPRODUCIBILITY.html"
ARTIFACT_KEY = "reproflow-reproducibility"


class Check(BaseModel):
    """One line of the checklist."""

    code: str
    title: str
    status: Literal["pass", "fail", "info"]
    points_lost: int = 0
    reason: str = ""
    details: list[str] = Field(default_factory=list)
    fix: Optional[str] = None


class FindingRow(BaseModel):
    """One distinct static-analysis finding stored in the run or its task records."""

    code: str
    rule: str = ""  #: the rule's name, e.g. "unseeded-python-random" ("" for an unknown code)
    severity: Literal["error", "warning", "info"]
    message: str
    location: str = ""  #: "path:line" where known
    fix: Optional[str] = None
    tasks: list[str] = Field(default_factory=list)  #: task names that reported it ("run": the run record)


class Report(BaseModel):
    run_id: str
    flow_name: str
    status: str
    engine: str = "prefect"  #: "plain" runs have no Prefect flow run to attach an artifact to
    score: int
    checks: list[Check]
    findings: list[FindingRow] = Field(default_factory=list)
    generated_at: dt.datetime

    @property
    def deductions(self) -> list[Check]:
        return [c for c in self.checks if c.points_lost > 0]

    def reasons(self) -> dict[str, str]:
        """code -> reason of every check that lost points."""
        return {c.code: c.reason for c in self.deductions}

    def to_markdown(self) -> str:
        lines = [
            f"# Reproducibility report: {self.flow_name}",
            "",
            f"Run `{self.run_id}` ({self.status}) scores **{self.score}/100**.",
            "",
            "| | check | points | reason |",
            "|---|---|---|---|",
        ]
        for c in self.checks:
            mark = {"pass": "✅", "fail": "❌", "info": "ℹ️"}[c.status]
            pts = f"-{c.points_lost}" if c.points_lost else "0"
            lines.append(f"| {mark} | {c.title} | {pts} | {_md(c.reason)} |")
        detailed = [c for c in self.checks if c.details or (c.fix and c.status == "fail")]
        if detailed:
            lines += ["", "## Details"]
            for c in detailed:
                lines += ["", f"### {c.title}"]
                lines += [f"- {_md(d)}" for d in c.details]
                if c.fix and c.status == "fail":
                    lines += ["", f"Fix: {_md(c.fix)}"]
        if self.findings:
            lines += ["", "## Static-analysis findings", "",
                      "| code | rule | severity | where | task | message |", "|---|---|---|---|---|---|"]  # fmt: skip
            for f in self.findings:
                lines.append(f"| {f.code} | {f.rule} | {f.severity} | {_md(f.location)} | {_md(', '.join(f.tasks))} "
                             f"| {_md(f.message)} |")  # fmt: skip
        lines += ["", f"_Generated by reproflow at {self.generated_at.isoformat(timespec='seconds')}._", ""]
        return "\n".join(lines)

    def to_html(self) -> str:
        rows = "".join(
            f"<tr class='{c.status}'><td>{html.escape(c.title)}</td><td>{'-' + str(c.points_lost) if c.points_lost else '0'}</td>"
            f"<td>{html.escape(c.reason)}"
            + ("<ul>" + "".join(f"<li>{html.escape(d)}</li>" for d in c.details) + "</ul>" if c.details else "")
            + (f"<p>Fix: {html.escape(c.fix)}</p>" if c.fix and c.status == "fail" else "")
            + "</td></tr>"
            for c in self.checks
        )
        return (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>Reproducibility report: {html.escape(self.flow_name)}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td{padding:.3em .6em;"
            "vertical-align:top;border-bottom:1px solid #ddd}.fail td:first-child{color:#b00}"
            ".pass td:first-child{color:#070}</style></head><body>"
            f"<h1>Reproducibility report: {html.escape(self.flow_name)}</h1>"
            f"<p>Run <code>{html.escape(self.run_id)}</code> ({html.escape(self.status)}) scores "
            f"<strong>{self.score}/100</strong>.</p>"
            f"<table><tr><th>check</th><th>points</th><th>reason</th></tr>{rows}</table>"
            + self._findings_html()
            + "</body></html>\n"
        )


    def _findings_html(self) -> str:
        if not self.findings:
            return ""
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in (
                f.code, f.rule, f.severity, f.location, ", ".join(f.tasks), f.message)) + "</tr>"
            for f in self.findings
        )  # fmt: skip
        return ("<h2>Static-analysis findings</h2><table><tr><th>code</th><th>rule</th><th>severity</th>"
                f"<th>where</th><th>task</th><th>message</th></tr>{rows}</table>")  # fmt: skip


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@dataclass
class ReportInput:
    run: Run
    environment: Environment
    store: Optional[Store] = None  #: where the run is stored (the replay checks plan against it)
    #: SHA-256 of each regular file in the run's source snapshot, by path relative to its root;
    #: read on first use (only runs with unstored inputs under the source root need it)
    snapshot_loader: Optional[Callable[[], dict[str, str]]] = None
    _snapshot: Optional[dict[str, str]] = field(default=None, repr=False)

    @property
    def snapshot(self) -> dict[str, str]:
        if self._snapshot is None:
            self._snapshot = self.snapshot_loader() if self.snapshot_loader is not None else {}
        return self._snapshot


def snapshot_hashes(store: Store, run: Run) -> dict[str, str]:
    """Hash every file of the run's stored source snapshot (a replay restores them)."""
    import hashlib
    import io
    import tarfile

    src = run.context.source if run.context is not None else None
    if src is None or not src.blob:
        return {}
    from ..errors import ReproflowError

    out: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(store.get_blob(src.blob)), mode="r:*") as tar:
            for member in tar:
                if member.isfile():
                    fh = tar.extractfile(member)
                    if fh is not None:
                        out[posixpath.normpath(member.name)] = hashlib.sha256(fh.read()).hexdigest()
    except (ReproflowError, tarfile.TarError, OSError):
        return {}  # an unreadable snapshot restores nothing (replay reports it in its plan)
    return out


CheckFn = Callable[[ReportInput], Check]


def _git(ri: ReportInput) -> Check:
    git = ri.run.context.git  # type: ignore[union-attr]
    if not git.available:
        return Check(code="no-git", title="Code under version control", status="fail", points_lost=15,
                     reason=f"no git repository ({git.absent_reason or 'unknown reason'}): no commit to return to",
                     fix="keep the flow's code in a git repository and commit before running")  # fmt: skip
    return Check(code="no-git", title="Code under version control", status="pass", reason=f"commit {git.commit}")


def _dirty(ri: ReportInput) -> Check:
    git = ri.run.context.git  # type: ignore[union-attr]
    if not git.available:
        return Check(code="dirty-tree", title="Clean working tree", status="info", reason="no git repository")
    if not git.dirty:
        return Check(code="dirty-tree", title="Clean working tree", status="pass", reason="no uncommitted changes")
    details = [git.diff_stat] if git.diff_stat else []
    details += [f"untracked: {u}" for u in git.untracked[:20]]
    stored = bool(git.diff_blob)
    return Check(
        code="dirty-tree", title="Clean working tree", status="fail", points_lost=10 if stored else 15,
        reason="dirty working tree: uncommitted changes" + (" (the diff was stored)" if stored else " (the diff was NOT stored)"),
        details=details, fix="commit your changes before the run that matters",
    )  # fmt: skip


def _source(ri: ReportInput) -> Check:
    src = ri.run.context.source  # type: ignore[union-attr]
    if src.kind == "none" or not src.blob:
        return Check(code="no-source", title="Code snapshot stored", status="fail", points_lost=10,
                     reason=f"no snapshot of the code was stored ({src.absent_reason or 'none taken'})")  # fmt: skip
    return Check(code="no-source", title="Code snapshot stored", status="pass",
                 reason=f"{src.files} files ({src.kind}) stored as sha256:{src.blob[:12]}")  # fmt: skip


def _local(ri: ReportInput) -> Check:
    bad = []
    for d in ri.environment.distributions:
        pin = classify(d)
        if pin.kind in ("editable", "local") and not d.source_blob:
            bad.append(f"{d.name}=={d.version} ({pin.kind} at {pin.path})")
    if not bad:
        return Check(code="unpinned-local", title="Local packages pinned", status="pass",
                     reason="every local or editable package has a stored source" if any(
                         classify(d).kind in ("editable", "local") for d in ri.environment.distributions)
                     else "no local or editable packages")  # fmt: skip
    return Check(code="unpinned-local", title="Local packages pinned", status="fail",
                 points_lost=min(20, 10 * len(bad)),
                 reason=f"{len(bad)} unpinned local package(s): local/editable install without a stored source",
                 details=bad, fix="install them from a released version or a git commit, or record their source")  # fmt: skip


def _inputs(ri: ReportInput) -> list[Check]:
    refs = [r for t in ri.run.final_tasks() for r in t.inputs]
    # A file the run wrote itself and read again is rebuilt by a replay: it needs no stored copy.
    produced = {(r.uri, r.sha256) for t in ri.run.final_tasks() for r in t.outputs if r.sha256}
    unhashed = sorted({r.uri for r in refs if not r.sha256})
    root = ri.run.context.source.root if ri.run.context is not None else None

    def in_snapshot(uri: str, sha: str) -> bool:  # restored with the code by a replay
        if not root or "://" in uri or not os.path.isabs(uri):
            return False
        rel = os.path.relpath(uri, root)
        return not rel.startswith("..") and ri.snapshot.get(posixpath.normpath(rel.replace(os.sep, "/"))) == sha

    unstored = sorted({r.uri for r in refs if r.sha256 and not r.stored_blob and (r.uri, r.sha256) not in produced
                       and not in_snapshot(r.uri, r.sha256)})  # fmt: skip
    checks = []
    if unhashed:
        checks.append(Check(code="inputs-not-hashed", title="Inputs hashed", status="fail", points_lost=10,
                            reason=f"{len(unhashed)} input(s) not hashed: their content cannot be verified",
                            details=unhashed[:20], fix="declare inputs= on the task, or check that the files exist"))  # fmt: skip
    else:
        checks.append(Check(code="inputs-not-hashed", title="Inputs hashed", status="pass",
                            reason=f"{len(refs)} input(s), all with SHA-256" if refs else "the run read no files"))  # fmt: skip
    if unstored:
        checks.append(Check(code="inputs-not-stored", title="Inputs stored", status="fail", points_lost=5,
                            reason=f"{len(unstored)} input(s) not stored: a replay needs the originals",
                            details=unstored[:20], fix="keep the data in a durable, versioned location, or store copies"))  # fmt: skip
    else:
        checks.append(Check(code="inputs-not-stored", title="Inputs stored", status="pass",
                            reason="every hashed input has a stored copy or is in the source snapshot" if refs else "no inputs"))  # fmt: skip
    undeclared = {}
    for t in ri.run.final_tasks():
        for r in t.inputs:
            if r.undeclared:
                undeclared.setdefault(r.uri, f"{r.uri} (read by {t.task_name})")
    if undeclared:
        checks.append(Check(code="undeclared-inputs", title="Inputs declared", status="fail", points_lost=5,
                            reason=f"{len(undeclared)} file(s) read by a task that did not declare them: "
                            "recorded and verified by replay, but invisible in the task's signature",
                            details=[undeclared[u] for u in sorted(undeclared)][:20],
                            fix="declare it: pass its path to the task as a parameter and name that parameter in "
                            "@repro_task(inputs=[...])"))  # fmt: skip
    else:
        checks.append(Check(code="undeclared-inputs", title="Inputs declared", status="pass",
                            reason="no task read a file it did not declare"))  # fmt: skip
    return checks


#: Rule codes of the static checks that report random numbers drawn without a fixed seed.
RANDOMNESS_PREFIX = "RPF1"


def _all_findings(run: Run) -> list[tuple[Finding, str]]:
    """Every finding of the run, with where it was stored (``run`` or the task's name)."""
    out: list[tuple[Finding, str]] = [(f, "run") for f in run.record.findings]
    for t in run.final_tasks():
        label = t.task_name if t.map_index is None else f"{t.task_name}[{t.map_index}]"
        out += [(f, label) for f in t.findings]
    return out


def _rule_names() -> dict[str, str]:
    from ..checks import all_rules

    return {code: r.name for code, r in all_rules().items()}


def collect_findings(run: Run) -> list[FindingRow]:
    """The static-analysis findings stored in the run and its task records, one row per
    distinct finding (code, location, message), with the tasks that reported it."""
    names = _rule_names()
    rows: dict[tuple[Any, ...], FindingRow] = {}
    for f, where in _all_findings(run):
        key = (f.code, f.path, f.line, f.col, f.message, f.severity)
        row = rows.get(key)
        if row is None:
            loc = f"{f.path}:{f.line}" if f.path and f.line else (f.path or "")
            row = rows[key] = FindingRow(code=f.code, rule=names.get(f.code, ""), severity=f.severity,
                                         message=f.message, location=loc, fix=f.fix)  # fmt: skip
        if where not in row.tasks:
            row.tasks.append(where)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(rows.values(), key=lambda r: (order[r.severity], r.code, r.location))


def _finding_check(rows: list[FindingRow], *, code: str, title: str, per_error: int, per_warning: int,
                   cap: int, what: str, none: str, fix: str) -> Check:  # fmt: skip
    by_code: dict[str, list[FindingRow]] = {}
    for r in rows:
        if r.severity in ("error", "warning"):
            by_code.setdefault(r.code, []).append(r)
    if not by_code:
        return Check(code=code, title=title, status="pass", reason=none)
    lost = 0
    named = []
    details = []
    for rule_code, items in sorted(by_code.items()):
        worst = "error" if any(i.severity == "error" for i in items) else "warning"
        lost += per_error if worst == "error" else per_warning
        rule = f"{rule_code} {items[0].rule}".strip()
        named.append(rule)
        for i in items:
            where = f" at {i.location}" if i.location else ""
            details.append(f"{rule_code} ({i.severity}) in {', '.join(i.tasks)}{where}: {i.message}")
    n = sum(len(v) for v in by_code.values())
    return Check(code=code, title=title, status="fail", points_lost=min(cap, lost),
                 reason=f"{what}: {n} finding(s) of {', '.join(named)}", details=details, fix=fix)  # fmt: skip


def _randomness(ri: ReportInput) -> Check:
    rows = [r for r in collect_findings(ri.run) if r.code.startswith(RANDOMNESS_PREFIX)]
    return _finding_check(
        rows, code="unseeded-randomness", title="Randomness seeded", per_error=10, per_warning=5, cap=20,
        what="unseeded randomness found", none="no unseeded random number generator found",
        fix="seed the task (@repro_task(seed=...)) or the run (REPROFLOW_SEED), or pass an explicit seed to "
        "each generator; see docs/seeds.md",
    )  # fmt: skip


def _findings(ri: ReportInput) -> Check:
    rows = [r for r in collect_findings(ri.run) if not r.code.startswith(RANDOMNESS_PREFIX)]
    return _finding_check(
        rows, code="findings", title="Other static checks", per_error=10, per_warning=5, cap=20,
        what="reproducibility hazards found", none="no other findings",
        fix="run `reproflow check` on the flow's code and apply the suggested fixes",
    )  # fmt: skip


def _gpu(ri: ReportInput) -> Check:
    hw = ri.run.context.hardware  # type: ignore[union-attr]
    if not hw.gpus:
        return Check(code="gpu-nondeterminism", title="GPU determinism", status="pass", reason="no GPU was used")
    names = ", ".join(sorted({g.name for g in hw.gpus}))
    return Check(code="gpu-nondeterminism", title="GPU determinism", status="fail", points_lost=5,
                 reason=f"GPU nondeterminism risk: {names} (driver {hw.gpu_driver or '?'}); atomics and "
                 "autotuned kernels can change results between runs",
                 fix="enable deterministic algorithms (e.g. torch.use_deterministic_algorithms(True), "
                 "CUBLAS_WORKSPACE_CONFIG=:4096:8)")  # fmt: skip


def _failed(ri: ReportInput) -> list[Check]:
    out = []
    failed = [t for t in ri.run.final_tasks() if t.state == "FAILED"]
    status = ri.run.status
    if failed or status in ("FAILED", "CRASHED", "CANCELLED"):
        from ..values._scrub import scrub_text

        details = [f"{t.task_name}: {t.error.type}: {scrub_text(t.error.message)}" if t.error else t.task_name
                   for t in failed]
        out.append(Check(code="failed", title="Run succeeded", status="fail", points_lost=15,
                         reason=f"run {status.lower()}, {len(failed)} failed task(s)", details=details))  # fmt: skip
    else:
        out.append(Check(code="failed", title="Run succeeded", status="pass", reason=f"run {status.lower()}"))
    if ri.run.end is None:
        out.append(Check(code="incomplete", title="Run complete", status="fail", points_lost=5,
                         reason="no end record: the run is still going or its process died"))  # fmt: skip
    return out


def _secrets(ri: ReportInput) -> Check:
    from ..replay._secrets import supplied

    redacted = sorted(k for k, v in ri.environment.env_vars.items() if v.redacted)
    params = supplied({}, {})
    params.fill_mapping(ri.run.record.parameters)  # flow parameters redacted as secrets: asked for at replay
    redacted += [f"parameter {p}" for p in params.missing]
    if not redacted:
        return Check(code="secrets-redacted", title="No secrets needed", status="pass",
                     reason="no secrets found in the environment or the parameters")  # fmt: skip
    return Check(code="secrets-redacted", title="No secrets needed", status="fail", points_lost=5,
                 reason=f"{len(redacted)} secret(s) redacted: their values are not in the record (only keyed "
                 "fingerprints), so a replay must be given them again",
                 details=redacted[:30],
                 fix="unset credentials the flow does not need before the run; supply the rest at replay time "
                 "(`reproflow diff` tells from the fingerprints whether a value changed)")  # fmt: skip


#: Points a run loses when a replay from the store alone would be refused.
REFUSED_POINTS = 30


def _replay(ri: ReportInput) -> Check:
    title = "Replayable from the store"
    if ri.store is None:
        return Check(code="replay-refused", title=title, status="info", reason="no store given: no replay plan made")
    from ..errors import ReproflowError
    from ..replay._plan import plan_loaded

    try:
        plan = plan_loaded(ri.store, ri.run, ri.environment, elsewhere=True).plan
    except ReproflowError as exc:
        problems = [str(exc)]
    else:
        problems = plan.problems
    if not problems:
        return Check(code="replay-refused", title=title, status="pass",
                     reason="the replay plan has no problems: a replay needs nothing but the store")  # fmt: skip
    return Check(code="replay-refused", title=title, status="fail", points_lost=REFUSED_POINTS,
                 reason=f"a replay from the store alone (another machine) would be refused: {'; '.join(problems[:3])}"
                 + (f"; and {len(problems) - 3} more" if len(problems) > 3 else ""),
                 details=problems,
                 fix="`reproflow replay RUN_ID --dry-run` shows the same problems; store what the replay lacks "
                 "(REPROFLOW_STORE_INPUTS=1 keeps copies of inputs; keep the source snapshot on) and pass flow "
                 "parameters as plain data")  # fmt: skip


def _unverifiable(ri: ReportInput) -> Check:
    title = "Results a replay can check"
    blind: dict[str, str] = {}
    for t in ri.run.final_tasks():
        if t.state in ("COMPLETED", "CACHED") and t.result_hash is None and not t.outputs:
            kind = t.result.get("type") if isinstance(t.result, dict) else None
            blind.setdefault(t.task_name, f"{t.task_name}" + (f" (returns {kind})" if kind else ""))
    if not blind:
        return Check(code="unverifiable", title=title, status="pass",
                     reason="every task's return value or output files can be compared")  # fmt: skip
    return Check(code="unverifiable", title=title, status="fail", points_lost=min(15, 5 * len(blind)),
                 reason=f"{len(blind)} task(s) a replay cannot check: the return value has no stable hash and no "
                 f"output file was recorded: {', '.join(sorted(blind))}",
                 details=sorted(blind.values()),
                 fix="return plain data, arrays or frames (they hash by content), or write the result to a file "
                 "declared in outputs=")  # fmt: skip


def _libraries(ri: ReportInput) -> Check:
    title = "System libraries with a known origin"
    if ri.store is None:
        return Check(code="unknown-libraries", title=title, status="info", reason="no store given: libraries not read")
    from ..capture.system import run_libraries

    libs = run_libraries(ri.store, ri.run)
    if libs is None:
        return Check(code="unknown-libraries", title=title, status="info",
                     reason="no system libraries recorded (a run recorded before schema 1.3)")  # fmt: skip
    if libs.absent_reason:
        return Check(code="unknown-libraries", title=title, status="info", reason=libs.absent_reason)
    unknown = [lib.path for lib in libs.libraries if lib.origin == "unknown"]
    owned = {lib.origin for lib in libs.libraries} - {"unknown"}
    if not unknown:
        return Check(code="unknown-libraries", title=title, status="pass",
                     reason=f"all {len(libs.libraries)} shared libraries come from {', '.join(sorted(owned)) or 'nothing'}")
    return Check(code="unknown-libraries", title=title, status="info",
                 reason=f"{len(unknown)} of {len(libs.libraries)} shared libraries have an unknown origin (no OS "
                 "package, Python distribution or interpreter owns them): a rebuild cannot get them back",
                 details=unknown[:30],
                 fix="install them from an OS package (apt, dnf) or a wheel that bundles them, rather than by hand")  # fmt: skip


CHECKS: list[Callable[[ReportInput], Any]] = [
    _git, _dirty, _source, _local, _inputs, _randomness, _findings, _gpu, _secrets, _failed, _replay, _unverifiable,
    _libraries,
]  # fmt: skip


def build_report(store: Store, run_id: str) -> Report:
    """Score one run of a store."""
    run = store.load_run(run_id)
    assert run.context is not None
    env = store.get_model_blob(run.context.environment_blob, Environment)
    return report_for(run, env, store=store)


def report_for(run: Run, environment: Environment, snapshot: dict[str, str] | None = None, *,
               store: Store | None = None) -> Report:
    """Score ``run``; ``store`` (or an explicit ``snapshot``) lets inputs in the source snapshot count as stored."""
    loader = (lambda: snapshot) if snapshot is not None else ((lambda: snapshot_hashes(store, run)) if store is not None else None)
    ri = ReportInput(run=run, environment=environment, store=store, snapshot_loader=loader)
    checks: list[Check] = []
    for fn in CHECKS:
        result = fn(ri)
        checks.extend(result if isinstance(result, list) else [result])
    score = max(0, 100 - sum(c.points_lost for c in checks))
    return Report(run_id=run.run_id, flow_name=run.record.flow_name, status=run.status, score=score, checks=checks,
                  engine=run.record.engine, findings=collect_findings(run), generated_at=dt.datetime.now(dt.timezone.utc))  # fmt: skip


def save_report(store: Store, report: Report) -> str:
    """Write ``REPRODUCIBILITY.md`` and ``REPRODUCIBILITY.html`` into the run's folder of the
    store; returns the Markdown file's path."""
    folder = store.run_dir(report.run_id)
    path = posixpath.join(folder, REPORT_FILENAME)
    store.write_bytes(path, utf8_text(report.to_markdown()).encode())
    store.write_bytes(posixpath.join(folder, HTML_FILENAME), utf8_text(report.to_html()).encode())
    return path


def summary_lines(run: Run, env: Environment, store: Store) -> list[str]:
    """The score and its deductions as Markdown lines, for the Prefect summary artifact."""
    scored = report_for(run, env, store=store)
    lines = ["", f"## Reproducibility: {scored.score}/100", ""]
    lines += [f"- -{c.points_lost} {c.title}: {c.reason}" for c in scored.deductions] or ["- nothing lost"]
    lines += ["", "Full report: `reproflow report " + run.run_id + "`"]
    return lines


def publish_report_artifact(report: Report, flow_run_id: UUID | str | None = None) -> UUID:
    """Attach the report to a Prefect flow run as a markdown artifact (key ``reproflow-reproducibility``).

    Args:
        report: the report to publish.
        flow_run_id: the flow run to attach it to; ``None`` uses the current flow run context.
    """
    from prefect.artifacts import create_markdown_artifact

    description = f"Reproducibility score {report.score}/100 for run {report.run_id}"
    if flow_run_id is None:  # inside a flow or task run: Prefect attaches it to the current run
        return create_markdown_artifact(markdown=report.to_markdown(), key=ARTIFACT_KEY, description=description)  # type: ignore[no-any-return]
    # After the fact (e.g. from the CLI): create it through the API, on the given flow run.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    from ..engines.prefect._artifacts import _api_error

    try:
        with get_client(sync_client=True) as client:
            created = client.create_artifact(
                ArtifactCreate(key=ARTIFACT_KEY, type="markdown", data=report.to_markdown(), description=description,
                               flow_run_id=UUID(str(flow_run_id)))  # fmt: skip
            )
    except Exception as exc:  # noqa: BLE001 - any client failure: one line naming the API
        raise _api_error(exc) from exc
    return created.id


def render_report(report: Report, console: Any) -> None:
    """Print the checklist as a rich table."""
    from rich.table import Table

    colour = "green" if report.score >= 80 else "yellow" if report.score >= 50 else "red"
    console.print(f"[bold]{report.flow_name}[/] run {report.run_id} ({report.status}): "
                  f"[bold {colour}]{report.score}/100[/]")  # fmt: skip
    t = Table(show_header=True)
    for col in ("", "check", "points", "reason"):
        t.add_column(col, overflow="fold")
    for c in report.checks:
        mark = {"pass": "[green]✓[/]", "fail": "[red]✗[/]", "info": "[blue]i[/]"}[c.status]
        t.add_row(mark, c.title, f"-{c.points_lost}" if c.points_lost else "0", c.reason)
    console.print(t)


__all__ = [
    "ARTIFACT_KEY",
    "Check",
    "FindingRow",
    "HTML_FILENAME",
    "REPORT_FILENAME",
    "Report",
    "build_report",
    "collect_findings",
    "publish_report_artifact",
    "render_report",
    "report_for",
    "save_report",
]
