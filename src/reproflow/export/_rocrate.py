"""A Provenance Run Crate (Workflow Run RO-Crate 0.5 profiles, on RO-Crate 1.1).

Mapping (written with the ``rocrate`` library):

* the flow's source file is the main workflow (``File``, ``SoftwareSourceCode``,
  ``ComputationalWorkflow``, ``HowTo``) in ``programmingLanguage`` Python, its flow parameters
  as ``FormalParameter`` inputs and the recorded distributions as ``softwareRequirements``;
* each task (by task key) is a tool (``SoftwareApplication``) in the workflow's ``hasPart`` and a
  ``HowToStep`` in its ``step``;
* the flow run is a ``CreateAction`` with the workflow as ``instrument``; each task attempt is a
  ``CreateAction`` with its tool as ``instrument``, its input files as ``object`` and output files
  as ``result``, wrapped by a ``ControlAction`` on its step; an ``OrganizeAction`` of the engine
  (Prefect) links them all;
* inputs and outputs are ``File``/``Dataset`` entities identified by their URL (``file://`` for
  local paths: the data stays where it is) with ``sha256`` and ``contentSize``.

RO-Crate 1.1's context has no ``sha256`` term, so the crate adds the workflow-run terms context
and ``sha256`` as an extra term.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import tarfile
import tempfile
from typing import Any
from urllib.parse import quote

from ..errors import BlobError
from ..records import DataRef, TaskRecord
from ..values._text import utf8_text
from ._common import ExportContext

RO_CRATE_VERSION = "1.1"
WFRUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
SHA256_TERM = "https://w3id.org/ro/terms/workflow-run#sha256"
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": ("Process Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/workflow/0.5": ("Workflow Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/provenance/0.5": ("Provenance Run Crate", "0.5"),
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": ("Workflow RO-Crate", "1.0"),
}
_STATUS = {"COMPLETED": "CompletedActionStatus", "CACHED": "CompletedActionStatus",
           "FAILED": "FailedActionStatus", "RETRYING": "FailedActionStatus", "CRASHED": "FailedActionStatus",
           "CANCELLED": "FailedActionStatus", "RUNNING": "ActiveActionStatus"}  # fmt: skip


def _data_id(ref: DataRef) -> str:
    if "://" in ref.uri:
        base = ref.uri
    else:
        base = "file://" + quote(os.fsencode(os.path.abspath(ref.uri)))  # a name's bytes that are not UTF-8 too
    if ref.kind == "directory" and not base.endswith("/"):
        base += "/"
    return base


def _utf8_json(value: Any) -> Any:
    """A JSON value with every string in it passed through :func:`utf8_text`."""
    if isinstance(value, str):
        return utf8_text(value)
    if isinstance(value, list):
        return [_utf8_json(v) for v in value]
    if isinstance(value, dict):
        return {utf8_text(k): _utf8_json(v) for k, v in value.items()}
    return value


def _iso(value: Any) -> str:
    return str(value.isoformat())


def _additional_type(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Float"
    if isinstance(value, str):
        return "Text"
    if isinstance(value, dict) and value.get("__rf__") == "path":
        return "File"
    return "PropertyValue"


def _source_file(ctx: ExportContext, rel: str, tmpdir: str) -> str | None:
    """Extract the flow file from the stored source snapshot, where there is one."""
    src = ctx.context.source
    if not src.blob:
        return None
    try:
        data = ctx.store.get_blob(src.blob)
    except BlobError:
        return None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for name in (rel, f"./{rel}"):
                try:
                    member = tar.getmember(name)
                except KeyError:
                    continue
                fh = tar.extractfile(member) if member.isfile() else None
                if fh is None:
                    continue
                target = os.path.join(tmpdir, posixpath.basename(rel))
                with open(target, "wb") as out:
                    out.write(fh.read())
                return target
    except (tarfile.TarError, OSError):
        return None
    return None


def _license(ctx: ExportContext) -> str:
    opt = ctx.options.get("license")
    if opt:
        return str(opt)
    root = ctx.context.git.root or ctx.context.source.root
    for pin in ctx.pins():
        if pin.kind in ("editable", "local") and root and pin.path and os.path.normpath(pin.path) == os.path.normpath(root):
            dist = ctx.distribution(pin.name)
            if dist is not None and dist.license and len(dist.license) < 64:
                return dist.license
    return "notspecified"


def export_rocrate(ctx: ExportContext) -> str | bytes:
    """Build the crate; write a folder or ``.zip`` for ``out``, else return the metadata JSON."""
    # The flow file is taken out of the source snapshot into a folder rocrate copies from when it
    # writes; the folder goes once the crate is written.
    with tempfile.TemporaryDirectory(prefix="reproflow-crate-") as tmpdir:
        return _build(ctx, tmpdir)


def _build(ctx: ExportContext, tmpdir: str) -> str | bytes:
    from rocrate.model.computerlanguage import ComputerLanguage
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    rec = ctx.run.record
    out = ctx.options.get("out")
    with_files = bool(out) and not str(out).endswith(".json")
    crate = ROCrate(version=RO_CRATE_VERSION)
    crate.metadata.extra_contexts.append(WFRUN_CONTEXT)
    crate.metadata.extra_terms["sha256"] = SHA256_TERM
    root = crate.root_dataset
    root["name"] = f"Run {rec.run_id} of flow {rec.flow_name}"
    root["description"] = (
        f"Provenance of Prefect flow run {rec.run_id} ({rec.flow_name}), recorded by reproflow: "
        "tasks, their data with SHA-256, and the software environment."
    )
    root["datePublished"] = _iso(rec.started_at)
    root["license"] = _license(ctx)
    for pid, (name, version) in PROFILES.items():
        crate.add(ContextEntity(crate, pid, properties={"@type": "CreativeWork", "name": name, "version": version}))
    root["conformsTo"] = [{"@id": pid} for pid in PROFILES]

    py = ctx.environment.python
    lang = crate.add(ComputerLanguage(crate, identifier="#python", properties={
        "name": "Python", "version": py.version,
        "url": {"@id": "https://www.python.org/"}, "identifier": {"@id": "https://www.python.org/"},
    }))  # fmt: skip

    ep = ctx.entrypoint()
    wf_rel = ep[0] if ep else f"{rec.flow_name}.py"
    wf_source = _source_file(ctx, wf_rel, tmpdir) if with_files and ep else None
    if wf_source is not None:
        wf_kwargs: dict[str, Any] = {"source": wf_source, "dest_path": wf_rel}
    else:  # the file is not in the crate: identify it by where it was (an absolute URI)
        src_root = ctx.context.git.root or ctx.context.source.root or rec.cwd or "/"
        wf_kwargs = {"source": "file://" + quote(posixpath.join(src_root, wf_rel))}
    workflow = crate.add_workflow(**wf_kwargs, main=True, lang=lang, properties={
        "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"], "name": rec.flow_name,
    })  # fmt: skip
    if ep:
        workflow["description"] = f"Prefect flow {ep[1]!r} in {ep[0]}"
    repo, commit = ctx.code_location()
    if commit:
        workflow["version"] = commit
    if repo:
        workflow["codeRepository"] = repo

    # Software environment.
    reqs = []
    for pin in ctx.pins():
        rid = f"https://pypi.org/project/{pin.normalized}/{pin.version}/"
        if rid not in crate:
            crate.add(ContextEntity(crate, rid, properties={"@type": "SoftwareApplication", "name": pin.name,
                                                             "softwareVersion": pin.version}))  # fmt: skip
        reqs.append({"@id": rid})
    if reqs:
        workflow["softwareRequirements"] = reqs

    # Flow parameters: formal parameters on the workflow, values on the run.
    param_values = []
    formal = []
    for name, value in rec.parameters.items():
        fp = crate.add_formal_parameter(name=name, additionalType=_additional_type(value), identifier=f"#param-{name}")
        formal.append(fp)
        pv = crate.add(ContextEntity(crate, f"#pv-{name}", properties={
            "@type": "PropertyValue", "name": name, "value": json.dumps(value, sort_keys=True),
            "exampleOfWork": {"@id": fp.id},
        }))  # fmt: skip
        param_values.append(pv)
    if formal:
        workflow["input"] = [{"@id": f.id} for f in formal]

    # Data entities.
    entities: dict[tuple[str, str | None], Any] = {}

    def data_entity(ref: DataRef) -> Any:
        key = (ref.uri, ref.sha256)
        if key in entities:
            return entities[key]
        ident = _data_id(ref)
        if ident in crate:  # same location, other content: a file rewritten during the run
            ident = f"{ident}#sha256={ref.sha256}"
        props: dict[str, Any] = {"name": posixpath.basename(ref.uri.rstrip("/")) or ref.uri,
                                 "alternateName": ref.uri}  # fmt: skip
        if ref.sha256:
            props["sha256"] = ref.sha256
        if ref.size is not None:
            props["contentSize"] = str(ref.size)
        if ref.kind == "directory":
            ent = crate.add_dataset(source=ident, properties=props)
        else:
            ent = crate.add_file(source=ident, properties=props)
        entities[key] = ent
        return ent

    # Tools and steps, in order of first start.
    tasks = sorted(ctx.run.tasks, key=lambda t: (t.started_at, t.task_run_id, t.attempt))
    tools: dict[str, Any] = {}
    steps: dict[str, Any] = {}
    for t in tasks:
        if t.task_key in tools:
            continue
        slug = _slug(t.task_name, t.task_key, tools)
        tool = crate.add(ContextEntity(crate, f"#tool-{slug}", properties={
            "@type": "SoftwareApplication", "name": t.task_name,
            "description": f"reproflow task {t.function or t.task_key}",
        }))  # fmt: skip
        step = crate.add(ContextEntity(crate, f"#step-{slug}", properties={
            "@type": "HowToStep", "name": t.task_name, "position": len(steps),
            "workExample": {"@id": tool.id},
        }))  # fmt: skip
        tools[t.task_key] = tool
        steps[t.task_key] = step
    workflow["hasPart"] = [{"@id": tool.id} for tool in tools.values()]
    if steps:
        workflow["step"] = [{"@id": s.id} for s in steps.values()]

    control_actions = []
    for t in tasks:
        action = _task_action(crate, t, tools[t.task_key], data_entity)
        control = crate.add(ContextEntity(crate, f"#control-{t.task_run_id}-{t.attempt}", properties={
            "@type": "ControlAction", "name": f"orchestrate {t.task_name}",
            "instrument": {"@id": steps[t.task_key].id}, "object": {"@id": action.id},
            "actionStatus": {"@id": f"http://schema.org/{_STATUS[t.state]}"},
        }))  # fmt: skip
        control_actions.append(control)

    status = ctx.run.status
    run_props: dict[str, Any] = {
        "@type": "CreateAction",
        "name": f"Run of flow {rec.flow_name} ({rec.run_id})",
        "startTime": _iso(rec.started_at),
        "actionStatus": {"@id": f"http://schema.org/{_STATUS[status]}"},
    }
    if ctx.run.end is not None:
        run_props["endTime"] = _iso(ctx.run.end.ended_at)
        if ctx.run.end.error is not None:
            run_props["error"] = f"{ctx.run.end.error.type}: {ctx.run.end.error.message}"
    run_action = crate.add_action(workflow, identifier=f"#run-{rec.run_id}", properties=run_props)
    run_objects = [data_entity(r) for r in ctx.external_inputs()] + param_values
    if run_objects:
        run_action["object"] = [{"@id": e.id} for e in run_objects]
    results = [data_entity(r) for r in ctx.final_outputs()]
    if results:
        run_action["result"] = [{"@id": e.id} for e in results]
    root["mentions"] = [{"@id": run_action.id}]

    engine_dist = ctx.distribution("prefect") if rec.engine == "prefect" else ctx.distribution("reproflow")
    engine_name = "Prefect" if rec.engine == "prefect" else "reproflow"
    engine_props: dict[str, Any] = {"@type": "SoftwareApplication", "name": engine_name,
                                    "url": {"@id": "https://www.prefect.io/" if rec.engine == "prefect"
                                            else "https://pypi.org/project/reproflow/"}}  # fmt: skip
    if engine_dist is not None:
        engine_props["softwareVersion"] = engine_dist.version
    engine = crate.add(ContextEntity(crate, "#engine", properties=engine_props))
    crate.add(ContextEntity(crate, f"#engine-run-{rec.run_id}", properties={
        "@type": "OrganizeAction", "name": f"Run of {engine_name}",
        "instrument": {"@id": engine.id},
        "object": [{"@id": c.id} for c in control_actions],
        "result": {"@id": run_action.id},
        "startTime": _iso(rec.started_at),
        "actionStatus": {"@id": f"http://schema.org/{_STATUS[status]}"},
    }))  # fmt: skip

    for entity in crate.get_entities():  # the crate is UTF-8 JSON: a file name's bytes that are not UTF-8 as \xNN
        for key, value in list(entity.properties().items()):
            fixed = _utf8_json(value) if key != "@id" else value
            if fixed != value:
                entity[key] = fixed
    if out and str(out).endswith(".zip"):
        crate.write_zip(str(out))
        ctx.options["_written"] = True
        with open(str(out), "rb") as fh:
            return fh.read()
    if with_files:
        crate.write(str(out))
        ctx.options["_written"] = True
    return json.dumps(crate.metadata.generate(), indent=2, ensure_ascii=False) + "\n"


def _slug(name: str, key: str, taken: dict[str, Any]) -> str:
    base = "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "task"
    used = {e.id for e in taken.values()}
    slug, i = base, 2
    while f"#tool-{slug}" in used:
        slug, i = f"{base}-{i}", i + 1
    return slug


def _task_action(crate: Any, t: TaskRecord, tool: Any, data_entity: Any) -> Any:
    props: dict[str, Any] = {
        "@type": "CreateAction",
        "name": f"Run of task {t.task_name}" + (f" [{t.map_index}]" if t.map_index is not None else "")
        + (f" (attempt {t.attempt})" if t.attempt > 1 else ""),
        "startTime": _iso(t.started_at),
        "endTime": _iso(t.ended_at),
        "actionStatus": {"@id": f"http://schema.org/{_STATUS[t.state]}"},
        "identifier": t.task_run_id,
    }
    if t.error is not None:
        props["error"] = f"{t.error.type}: {t.error.message}"
    action = crate.add_action(tool, identifier=f"#taskrun-{t.task_run_id}-{t.attempt}", properties=props)
    objects = [data_entity(r) for r in t.inputs]
    if objects:
        action["object"] = [{"@id": e.id} for e in objects]
    results = [data_entity(r) for r in t.outputs]
    if results:
        action["result"] = [{"@id": e.id} for e in results]
    return action
