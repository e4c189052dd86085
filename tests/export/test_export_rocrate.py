"""RO-Crate export: written and read back with rocrate; every applicable MUST of RO-Crate 1.1,
Workflow RO-Crate 1.0 and the Process/Workflow/Provenance Run Crate 0.5 profiles asserted here
(the official validator needs the network for its contexts)."""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

import pytest

from reproflow.export import export_run

PROCESS = "https://w3id.org/ro/wfrun/process/0.5"
WORKFLOW = "https://w3id.org/ro/wfrun/workflow/0.5"
PROVENANCE = "https://w3id.org/ro/wfrun/provenance/0.5"
WROC = "https://w3id.org/workflowhub/workflow-ro-crate/1.0"


def _ids(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [i["@id"] if isinstance(i, dict) else getattr(i, "id", i) for i in items if i is not None]


def _types(entity: dict[str, Any]) -> set[str]:
    t = entity["@type"]
    return set(t if isinstance(t, list) else [t])


def assert_wrroc_musts(meta: dict[str, Any]) -> None:
    """Every MUST that applies to a reproflow Provenance Run Crate, over the JSON-LD graph."""
    ctx = meta["@context"]
    assert ctx[0] == "https://w3id.org/ro/crate/1.1/context"
    assert "https://w3id.org/ro/terms/workflow-run/context" in ctx
    assert any(isinstance(c, dict) and "sha256" in c for c in ctx)  # 1.1 lacks the term
    graph = {e["@id"]: e for e in meta["@graph"]}
    for e in meta["@graph"]:  # RO-Crate 1.1: every entity has @id and @type
        assert "@id" in e and "@type" in e, e
    # RO-Crate 1.1 metadata descriptor and root data entity.
    desc = graph["ro-crate-metadata.json"]
    assert "CreativeWork" in _types(desc) and _ids(desc["about"]) == ["./"]
    assert "https://w3id.org/ro/crate/1.1" in _ids(desc["conformsTo"])
    root = graph["./"]
    assert "Dataset" in _types(root)
    for key in ("name", "description", "datePublished", "license"):
        assert root.get(key), key
    # Profiles: root conformsTo references CreativeWork entities with the versioned permalinks.
    for profile in (PROCESS, WORKFLOW, PROVENANCE, WROC):
        assert profile in _ids(root["conformsTo"])
        assert "CreativeWork" in _types(graph[profile])
    # Data entities are reachable from the root via hasPart.
    parts = set(_ids(root.get("hasPart", [])))
    for e in meta["@graph"]:
        if _types(e) & {"File", "Dataset"} and e["@id"] not in ("./",) and e is not root:
            assert e["@id"] in parts, f"{e['@id']} not in root hasPart"
    # Workflow RO-Crate: main workflow typed File+SoftwareSourceCode+ComputationalWorkflow,
    # referred to by mainEntity, with programmingLanguage.
    main = graph[_ids(root["mainEntity"])[0]]
    assert {"File", "SoftwareSourceCode", "ComputationalWorkflow"} <= _types(main)
    lang = graph[_ids(main["programmingLanguage"])[0]]
    assert "ComputerLanguage" in _types(lang)
    # Provenance Run Crate: tools via hasPart; steps via step (then HowTo type); each HowToStep has workExample.
    tools = _ids(main["hasPart"])
    assert tools
    for t in tools:
        assert _types(graph[t]) & {"SoftwareApplication", "SoftwareSourceCode", "ComputationalWorkflow"}
    if "step" in main:
        assert "HowTo" in _types(main)
        for s in _ids(main["step"]):
            assert "HowToStep" in _types(graph[s]) and _ids(graph[s]["workExample"])[0] in tools
    # FormalParameters MUST have additionalType.
    for fp in _ids(main.get("input", [])) + _ids(main.get("output", [])):
        assert graph[fp].get("additionalType")
    # Actions: every CreateAction has an instrument; a workflow run action exists with the main
    # workflow as instrument; tool runs point at tools.
    creates = [e for e in meta["@graph"] if "CreateAction" in _types(e)]
    assert all("instrument" in a for a in creates)
    wf_runs = [a for a in creates if _ids(a["instrument"]) == [main["@id"]]]
    assert wf_runs
    assert any(a["@id"] in _ids(root.get("mentions", [])) for a in wf_runs)
    tool_runs = [a for a in creates if a not in wf_runs]
    for a in tool_runs:
        assert _ids(a["instrument"])[0] in tools
    # ControlAction: instrument a HowToStep, object tool CreateAction(s).
    for c in (e for e in meta["@graph"] if "ControlAction" in _types(e)):
        assert "HowToStep" in _types(graph[_ids(c["instrument"])[0]])
        assert all(o in {a["@id"] for a in tool_runs} for o in _ids(c["object"]))
    # OrganizeAction: instrument the engine, object the ControlActions, result the workflow run.
    for o in (e for e in meta["@graph"] if "OrganizeAction" in _types(e)):
        assert _ids(o["instrument"])[0] in graph
        assert all("ControlAction" in _types(graph[x]) for x in _ids(o["object"]))
        assert _ids(o["result"])[0] in {a["@id"] for a in wf_runs}


def test_rocrate_metadata_meets_profile_musts(recorded: dict[str, Any]) -> None:
    """The exported metadata JSON meets every applicable MUST; files carry sha256 and size;
    each task run is an action with its inputs as object and outputs as result."""
    text = export_run(recorded["store"], recorded["run_id"], "ro-crate")
    assert isinstance(text, str)
    meta = json.loads(text)
    assert_wrroc_musts(meta)
    graph = {e["@id"]: e for e in meta["@graph"]}
    raw = recorded["data"] / "raw.csv"
    raw_id = raw.as_uri()
    assert graph[raw_id]["sha256"] == hashlib.sha256(raw.read_bytes()).hexdigest()
    assert graph[raw_id]["contentSize"] == str(raw.stat().st_size)
    load = next(e for e in meta["@graph"] if e.get("name") == "Run of task load")
    assert _ids(load["object"]) == [raw_id]
    train = next(e for e in meta["@graph"] if e.get("name") == "Run of task train")
    assert _ids(train["result"]) == [(recorded["data"] / "model.bin").as_uri()]
    assert train["actionStatus"]["@id"] == "http://schema.org/CompletedActionStatus"


@pytest.mark.parametrize("target", ["crate", "crate.zip"])
def test_rocrate_written_and_read_back_with_rocrate(recorded: dict[str, Any], tmp_path: pathlib.Path, target: str) -> None:
    """A crate folder or zip written with rocrate reads back with rocrate: same main workflow,
    profiles, actions and data entities, and the graph still meets the MUSTs."""
    from rocrate.rocrate import ROCrate

    out = tmp_path / target
    export_run(recorded["store"], recorded["run_id"], "ro-crate", out=out)
    crate = ROCrate(str(out))
    assert {"File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"} <= set(crate.mainEntity.type)
    assert {e.id for e in crate.root_dataset["conformsTo"]} >= {PROCESS, WORKFLOW, PROVENANCE, WROC}
    actions = crate.get_by_type("CreateAction")
    assert len(actions) == 3  # the flow run and two task runs
    raw = crate.get((recorded["data"] / "raw.csv").as_uri())
    assert raw is not None and raw["sha256"]
    meta_path = (out / "ro-crate-metadata.json") if target == "crate" else None
    if meta_path is not None:
        assert_wrroc_musts(json.loads(meta_path.read_text()))


@pytest.mark.parametrize("target", [None, "crate", "crate.zip"])
def test_rocrate_export_leaves_no_temporary_folder(
    recorded: dict[str, Any], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, target: str | None
) -> None:
    """The folder the flow file is taken out into for the crate is removed once the crate is
    written: each export left one behind in the temporary folder."""
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / target if target else None
    export_run(recorded["store"], recorded["run_id"], "ro-crate", out=out)
    assert sorted(p.name for p in scratch.iterdir()) == []


def test_rocrate_failed_task_and_retries(store: Any) -> None:
    """A failed task is a FailedActionStatus action with its error; the run's status follows."""
    from rf_factory import make_run

    run_id = make_run(store, failed_task=True, status="FAILED")
    meta = json.loads(str(export_run(store, run_id, "ro-crate")))
    assert_wrroc_musts(meta)
    train = next(e for e in meta["@graph"] if e.get("name") == "Run of task train")
    assert train["actionStatus"]["@id"] == "http://schema.org/FailedActionStatus"
    assert train["error"] == "ValueError: boom"
    run = next(e for e in meta["@graph"] if e["@id"] == f"#run-{run_id}")
    assert run["actionStatus"]["@id"] == "http://schema.org/FailedActionStatus"
