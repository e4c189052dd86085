"""W3C PROV-JSON of a run, written with the ``prov`` package.

* activities: the flow run and each task attempt (start and end times);
* entities: every input and output (by content: ``reproflow:sha256``), each task's return value
  (by its stable hash), the recorded environment and the code at its commit;
* agents: the engine (a ``prov:SoftwareAgent``) and the flow, as the plan the run followed;
* relations: ``used`` (task → input, run → environment and code), ``wasGeneratedBy``
  (output → task), ``wasAssociatedWith`` (activity → engine, with the flow as plan),
  ``wasInformedBy`` (task → the upstream tasks it consumed), ``wasStartedBy``-free: a task's
  run is given as the attribute ``reproflow:run``.
"""

from __future__ import annotations

from typing import Any

from ..records import DataRef
from ._common import ExportContext

NS = "https://w3id.org/reproflow/ns#"
RUN_NS = "urn:reproflow:"


def export_prov(ctx: ExportContext) -> str:
    """Render the PROV document as PROV-JSON (read back with ``ProvDocument.deserialize``)."""
    from prov.constants import PROV
    from prov.model import PROV_LABEL, PROV_TYPE, ProvDocument

    rec = ctx.run.record
    doc = ProvDocument()
    rf = doc.add_namespace("reproflow", NS)
    doc.add_namespace("run", RUN_NS)

    engine_name = "prefect" if rec.engine == "prefect" else "reproflow"
    engine_dist = ctx.distribution(engine_name)
    engine = doc.agent(
        f"run:engine/{engine_name}",
        {PROV_TYPE: PROV["SoftwareAgent"], PROV_LABEL: f"{engine_name} {engine_dist.version if engine_dist else ''}".strip()},
    )
    plan_attrs: dict[Any, Any] = {PROV_TYPE: PROV["Plan"], PROV_LABEL: rec.flow_name}
    if rec.entrypoint:
        plan_attrs["reproflow:entrypoint"] = rec.entrypoint
    plan = doc.entity(f"run:flow/{rec.flow_name}", plan_attrs)

    run_attrs: dict[Any, Any] = {PROV_LABEL: f"flow run {rec.run_id}", "reproflow:status": ctx.run.status}
    if rec.parameters_hash:
        run_attrs["reproflow:parametersHash"] = rec.parameters_hash
    run = doc.activity(
        f"run:run/{rec.run_id}", rec.started_at, ctx.run.end.ended_at if ctx.run.end else None, run_attrs
    )
    doc.wasAssociatedWith(run, engine, plan)

    env_ent = doc.entity(f"run:environment/{ctx.context.environment_hash}", {
        PROV_TYPE: rf["Environment"],
        PROV_LABEL: f"{ctx.environment.python.implementation} {ctx.python_version()} with "
        f"{len(ctx.environment.distributions)} distributions",
        "reproflow:blob": ctx.context.environment_blob,
    })  # fmt: skip
    doc.used(run, env_ent)
    git = ctx.context.git
    if git.available and git.commit:
        code_attrs: dict[Any, Any] = {PROV_TYPE: rf["SourceCode"], "reproflow:commit": git.commit,
                                      "reproflow:dirty": git.dirty}  # fmt: skip
        if git.remote_url:
            code_attrs["prov:location"] = git.remote_url
        doc.used(run, doc.entity(f"run:code/{git.commit}", code_attrs))

    entities: dict[tuple[str, str | None], Any] = {}
    used_ids: set[str] = set()

    def data(ref: DataRef) -> Any:
        key = (ref.uri, ref.sha256)
        if key not in entities:
            ident = f"run:data/{ref.sha256}" if ref.sha256 else f"run:data/unhashed/{len(entities)}"
            if ident in used_ids:  # the same bytes at two locations: two entities
                ident = f"{ident}/{len(entities)}"
            used_ids.add(ident)
            attrs: dict[Any, Any] = {PROV_LABEL: ref.uri, "prov:location": ref.uri, "reproflow:kind": ref.kind}
            if ref.sha256:
                attrs["reproflow:sha256"] = ref.sha256
            if ref.size is not None:
                attrs["reproflow:size"] = ref.size
            entities[key] = doc.entity(ident, attrs)
        return entities[key]

    activities: dict[str, Any] = {}
    tasks = sorted(ctx.run.tasks, key=lambda t: (t.started_at, t.task_run_id, t.attempt))
    for t in tasks:
        attrs: dict[Any, Any] = {
            PROV_TYPE: rf["TaskRun"],
            PROV_LABEL: t.task_name,
            "reproflow:taskKey": t.task_key,
            "reproflow:attempt": t.attempt,
            "reproflow:state": t.state,
            "reproflow:parametersHash": t.parameters_hash,
            "reproflow:run": f"run:run/{rec.run_id}",
        }
        if t.map_index is not None:
            attrs["reproflow:mapIndex"] = t.map_index
        act = doc.activity(f"run:task/{t.task_run_id}/{t.attempt}", t.started_at, t.ended_at, attrs)
        activities[t.task_run_id] = act  # the last attempt informs downstream tasks
        doc.wasAssociatedWith(act, engine, plan)
        for ref in t.inputs:
            doc.used(act, data(ref))
        for ref in t.outputs:
            doc.wasGeneratedBy(data(ref), act)
        if t.result_hash and t.state in ("COMPLETED", "CACHED"):
            digest = t.result_hash.split(":", 1)[-1]
            value = doc.entity(f"run:value/{t.task_run_id}/{digest[:16]}", {
                PROV_TYPE: rf["ReturnValue"], "reproflow:stableHash": t.result_hash,
            })  # fmt: skip
            doc.wasGeneratedBy(value, act)
    for t in tasks:
        act = doc.get_record(f"run:task/{t.task_run_id}/{t.attempt}")[0]
        for upstream_ids in t.upstream.values():
            for uid in upstream_ids:
                if uid in activities and uid != t.task_run_id:
                    doc.wasInformedBy(act, activities[uid])
    return str(doc.serialize(format="json", indent=2)) + "\n"
