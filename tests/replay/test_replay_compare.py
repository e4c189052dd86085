"""Task-by-task comparison and the likely causes named for a difference."""

from __future__ import annotations

from pathlib import Path

import pytest

from replay_records import environment, task

from reproflow.records import DataRef, Distribution, ErrorInfo, Finding, Hardware, Run, RunRecord
from reproflow.replay._compare import compare_task, environment_drift, explain, match_tasks
from reproflow.values._typed import stable_hash
from reproflow.replay._models import InputCheck


def _out(uri: str, digest: str) -> DataRef:
    return DataRef(uri=uri, kind="file", sha256=digest, param="return")


def test_match_by_name_qualname_and_map_index() -> None:
    """Mapped runs pair by map index; equal parameters pair first; leftovers are extra."""
    orig = [task("a", i, "c", name="sq", map_index=i, params_hash=f"p{i}") for i in range(3)]
    new = [task("b", 10 + i, "c", name="sq", map_index=2 - i, params_hash=f"p{2 - i}") for i in range(3)]
    new.append(task("b", 20, "c", name="other"))
    pairs, extra = match_tasks(orig, new, {}, {})
    assert [(o.map_index, n.map_index if n else None) for o, n in pairs] == [(0, 0), (1, 1), (2, 2)]
    assert [t.task_name for t in extra] == ["other"]


def test_same_function_in_two_places_pairs_in_order() -> None:
    """Two calls of one task with different parameters pair in DAG order when hashes differ."""
    orig = [task("a", 0, "c", name="step", tid="o1", params_hash="x1"), task("a", 1, "c", name="step", tid="o2", params_hash="x2")]
    new = [task("b", 0, "c", name="step", tid="n1", params_hash="y1"), task("b", 1, "c", name="step", tid="n2", params_hash="y2")]
    pairs, _ = match_tasks(orig, new, {"o1": (0, 0), "o2": (1, 1)}, {"n1": (0, 0), "n2": (1, 1)})
    assert [(o.task_run_id, n.task_run_id) for o, n in pairs if n] == [("o1", "n1"), ("o2", "n2")]


def test_verdicts() -> None:
    """Equal outputs and result hash: reproduced; one output byte: differs; an exception: failed."""
    o = task("a", 0, "c", name="t", outputs=[_out("/d/x", "aa")], result_hash="sha256:r")
    same = task("b", 0, "c", name="t", outputs=[_out("/d/x", "aa")], result_hash="sha256:r")
    assert compare_task(o, same).verdict == "reproduced"
    other = task("b", 0, "c", name="t", outputs=[_out("/d/x", "ab")], result_hash="sha256:r")
    v = compare_task(o, other)
    assert v.verdict == "differs" and not v.outputs[0].match and v.outputs[0].actual == "ab"
    res = task("b", 0, "c", name="t", outputs=[_out("/d/x", "aa")], result_hash="sha256:s")
    assert compare_task(o, res).verdict == "differs" and compare_task(o, res).result_match is False
    failed = task("b", 0, "c", name="t", state="FAILED")
    failed.error = ErrorInfo(type="ValueError", message="boom")
    v = compare_task(o, failed)
    assert v.verdict == "failed" and "ValueError: boom" in (v.error or "")
    assert compare_task(o, None).verdict == "missing"


def test_unhashable_results_compare_on_outputs() -> None:
    """A result with no stable hash on either side is 'n/a', not a difference."""
    o = task("a", 0, "c", name="t", result_hash=None)
    n = task("b", 0, "c", name="t", result_hash=None)
    v = compare_task(o, n)
    assert v.result_match is None and v.verdict == "reproduced"


def test_environment_drift_lists_packages_python_and_hardware() -> None:
    """Version changes, removals, additions, Python and GPU driver all appear."""
    old = environment(Distribution(name="numpy", version="1.26.4"), Distribution(name="gone", version="1"), version="3.11.7")
    new = environment(Distribution(name="NumPy", version="2.0.0"), Distribution(name="extra", version="2"), version="3.11.9")
    hw_old, hw_new = Hardware(gpu_driver="535.1"), Hardware(gpu_driver="550.2")
    drift = environment_drift(old, new, hw_old, hw_new)
    assert "Python CPython 3.11.7 -> CPython 3.11.9" in drift
    assert "package numpy 1.26.4 -> 2.0.0" in drift
    assert "package gone 1 removed" in drift and "package extra 2 added" in drift
    assert "GPU driver 535.1 -> 550.2" in drift


def _run(tasks: list) -> Run:
    rec = RunRecord(run_id="a", flow_name="f", context="c")
    return Run(record=rec, tasks=tasks)


def test_causes_nondeterminism_when_nothing_else_changed() -> None:
    """Same environment and inputs: the cause named is nondeterminism in that task, with its findings."""
    o = task("a", 0, "c", name="noisy", result_hash="sha256:1", findings=[Finding(code="RPF101", message="random without seed")])
    n = task("b", 0, "c", name="noisy", result_hash="sha256:2")
    verdicts = [compare_task(o, n)]
    explain(verdicts, _run([o]), [], [])
    text = " ".join(verdicts[0].causes)
    assert "nondeterminism in this task" in text and "RPF101" in text


def test_a_task_that_raised_only_in_the_replay_is_no_nondeterminism_of_outputs() -> None:
    """A failed task has no outputs that differed: its cause is the error, and that it ran without
    it when recorded (an unpickled class the replay could not find said 'nondeterminism ... gave
    different outputs')."""
    o = task("a", 0, "c", name="predict", result_hash="sha256:1")
    n = task("b", 0, "c", name="predict", state="FAILED")
    n.error = ErrorInfo(type="builtins.AttributeError", message="Can't get attribute 'MeanModel'")
    verdicts = [compare_task(o, n)]
    explain(verdicts, _run([o]), [], [])
    text = " ".join(verdicts[0].causes)
    assert verdicts[0].verdict == "failed" and "AttributeError: Can't get attribute 'MeanModel'" in text
    assert "nondeterminism" not in text and "gave different outputs" not in text
    assert "did not raise when recorded" in text and "no seed was recorded" in text


def test_outputs_named_after_the_run_are_found_under_the_replay_s_names() -> None:
    """``runs/{flow_run.name}/x.txt``, ``by_id/{task_run.id}.txt``: every run names them anew.
    The same bytes under the replay's names reproduce, and a returned path holding the name
    compares equal once the name is put back; other bytes still differ, a name too short to
    tell from other text is not looked for, and without the names nothing is renamed."""
    from reproflow.replay._compare import run_renames
    from reproflow.values._typed import to_typed_json

    o_run = RunRecord(run_id="f-orig-0000", flow_name="f", flow_run_name="crimson-tiger", context="c")
    n_run = RunRecord(run_id="f-new-00000", flow_name="f", flow_run_name="witty-falcon", context="c")
    path_o, path_n = Path("/w/runs/crimson-tiger/x.txt"), Path("/w/runs/witty-falcon/x.txt")

    def rec(run: RunRecord, tid: str, path: Path, digest: str) -> object:
        t = task(run.run_id, 0, "c", name="save", tid=tid, outputs=[
            DataRef(uri=str(path), kind="file", sha256=digest, undeclared=True),
            DataRef(uri=f"/w/by_id/{tid}.txt", kind="file", sha256=digest, undeclared=True)],
            result_hash=stable_hash(path))
        t.result = to_typed_json(path)
        return t

    o = rec(o_run, "task-run-aaaa", path_o, "aa")
    same = rec(n_run, "task-run-bbbb", path_n, "aa")
    renames = run_renames(o_run, n_run, o, same)
    assert renames["crimson-tiger"] == "witty-falcon" and renames["task-run-aaaa"] == "task-run-bbbb"
    v = compare_task(o, same, renames=renames)
    assert v.verdict == "reproduced" and [c.match for c in v.outputs] == [True, True] and v.result_match
    assert compare_task(o, same).verdict == "differs"  # without the names: missing files, another path
    other = rec(n_run, "task-run-bbbb", path_n, "ab")
    assert compare_task(o, other, renames=run_renames(o_run, n_run, o, other)).verdict == "differs"
    short = RunRecord(run_id="f-orig-0000", flow_name="f", flow_run_name="a-b", context="c")
    assert "a-b" not in run_renames(short, n_run, o, same)


def test_a_task_that_writes_a_file_no_record_holds_is_unverified() -> None:
    """RPF302 found, when recorded, that the task writes a file in C at a path fixed in its code
    (``df.to_parquet("out/t.parquet")``): no output holds it, so matching what was recorded
    proves nothing about it. Unverified, with the finding as the cause; a difference in what
    was recorded still differs."""
    flag = Finding(code="RPF302", message="`df.to_parquet` writes `'out/t.parquet'` in C, at a path fixed in task `save`",
                   line=7)
    o = task("a", 0, "c", name="save", result_hash="sha256:r", findings=[flag])
    v = compare_task(o, task("b", 0, "c", name="save", result_hash="sha256:r"))
    assert v.verdict == "unverified" and any("RPF302, line 7" in c and "out/t.parquet" in c for c in v.causes)
    assert compare_task(o, task("b", 0, "c", name="save", result_hash="sha256:x")).verdict == "differs"
    o.findings = [Finding(code="RPF301", message="/home/me/data.csv")]
    assert compare_task(o, task("b", 0, "c", name="save", result_hash="sha256:r")).verdict == "reproduced"


def test_nondeterminism_no_check_explains_names_random_string_hashing() -> None:
    """A task that differs with nothing changed and no finding of the checks: with string hashing
    random when recorded, the cause names it (a set of strings, a pickled pydantic model, comes
    out in another order in every process); with PYTHONHASHSEED recorded, or a finding that
    explains the task, it does not."""
    def causes(hashseed: str | None, findings: list[Finding]) -> str:
        o = task("a", 0, "c", name="save", result_hash="sha256:1", findings=findings)
        verdicts = [compare_task(o, task("b", 0, "c", name="save", result_hash="sha256:2"))]
        run = _run([o])
        run.record.pythonhashseed = hashseed
        explain(verdicts, run, [], [])
        return " ".join(verdicts[0].causes)

    assert "PYTHONHASHSEED unset" in causes(None, []) and "nondeterminism in this task" in causes(None, [])
    assert "PYTHONHASHSEED" not in causes("0", [])
    assert "PYTHONHASHSEED" not in causes(None, [Finding(code="RPF101", message="random without seed")])


def test_causes_upstream_packages_and_inputs() -> None:
    """A downstream task blames its differing upstream; package drift and changed inputs are named."""
    up = task("a", 0, "c", name="up", tid="u", result_hash="sha256:1", inputs=[DataRef(uri="/d/in", sha256="aa", param="p")])
    down = task("a", 1, "c", name="down", tid="d", upstream={"x": ["u"]}, result_hash="sha256:3")
    verdicts = [compare_task(up, task("b", 0, "c", name="up", result_hash="sha256:2")),
                compare_task(down, task("b", 1, "c", name="down", result_hash="sha256:4"))]
    changed = [InputCheck(uri="/d/in", expected="aa", actual="bb", status="changed")]
    explain(verdicts, _run([up, down]), ["package numpy 1.26.4 -> 2.0.0"], changed)
    assert any("input /d/in changed" in c for c in verdicts[0].causes)
    assert any("numpy 1.26.4 -> 2.0.0" in c for c in verdicts[0].causes)
    assert not any("nondeterminism" in c for c in verdicts[0].causes)
    assert any("upstream task(s) up did not reproduce" in c for c in verdicts[1].causes)


def test_an_unhashable_return_value_is_unverified_never_reproduced() -> None:
    """A task whose return value has no stable hash (a fitted model) is "unverified" when all
    else matches, with the way to make it comparable; a differing output still says differs."""
    o = task("a", 0, "c", name="fit", outputs=[_out("/d/m", "aa")])
    o.result_unhashable = "flow.MeanModel"
    n = task("b", 0, "c", name="fit", outputs=[_out("/d/m", "aa")])
    n.result_unhashable = "flow.MeanModel"
    v = compare_task(o, n)
    assert v.verdict == "unverified" and v.result_match is None and v.result_unhashable == "flow.MeanModel"
    assert any("register_hasher" in c and "flow.MeanModel" in c for c in v.causes)
    other = task("b", 0, "c", name="fit", outputs=[_out("/d/m", "ab")])
    other.result_unhashable = "flow.MeanModel"
    assert compare_task(o, other).verdict == "differs"


def test_explain_leaves_unverified_alone_and_names_it_upstream() -> None:
    """explain() adds no nondeterminism cause to an unverified task, and a differing downstream
    task names its unverified upstream as a possible source."""
    fit = task("a", 0, "c", name="fit", tid="f")
    fit.result_unhashable = "flow.MeanModel"
    pred = task("a", 1, "c", name="predict", tid="p", upstream={"model": ["f"]}, result_hash="sha256:1")
    new_fit = task("b", 0, "c", name="fit")
    new_fit.result_unhashable = "flow.MeanModel"
    verdicts = [compare_task(fit, new_fit), compare_task(pred, task("b", 1, "c", name="predict", result_hash="sha256:2"))]
    explain(verdicts, _run([fit, pred]), [], [])
    assert verdicts[0].verdict == "unverified" and not any("nondeterminism" in c for c in verdicts[0].causes)
    assert any("upstream task(s) fit returned a value with no stable hash" in c for c in verdicts[1].causes)


def test_a_replayed_task_served_from_a_cache_is_unverified() -> None:
    """A replayed task that ended CACHED did not run again (Prefect's cache policy served the
    stored result): nothing was recomputed, so it is never "reproduced", even with equal hashes.
    A recorded CACHED task that ran again in the replay is compared as usual."""
    o = task("a", 0, "c", name="t", outputs=[_out("/d/x", "aa")], result_hash="sha256:r")
    o.state = "CACHED"
    ran = task("b", 0, "c", name="t", outputs=[_out("/d/x", "aa")], result_hash="sha256:r")
    assert compare_task(o, ran).verdict == "reproduced"
    served = task("b", 0, "c", name="t", outputs=[_out("/d/x", "aa")], result_hash="sha256:r")
    served.state = "CACHED"
    v = compare_task(o, served)
    assert v.verdict == "unverified"
    assert any("cache" in c and "did not run" in c for c in v.causes), v.causes
    differs = task("b", 0, "c", name="t", result_hash="sha256:other")
    differs.state = "CACHED"
    assert compare_task(o, differs).verdict == "differs"


def test_an_output_recorded_without_a_hash_is_unverified_never_reproduced() -> None:
    """An output recorded without a hash (still being written when the task ended, or written
    beside a sibling's subprocess by a writer nobody saw) compares nothing: with no hash on
    either side the verdict was "reproduced" (None == None), with a hash on one side "differs".
    Both are false: the task is unverified, the cause quoting the recorded reason; what else
    differs still differs."""
    why = "it changed while it was hashed: still being written"
    gap = DataRef(uri="/d/results/part-a.bin", kind="unhashed", param="out_dir", reason=why)
    mine = DataRef(uri="/d/results/part-b.bin", kind="file", sha256="bb", param="out_dir")
    o = task("a", 0, "c", name="t", outputs=[mine, gap], result_hash="sha256:r")
    for replayed in (gap, DataRef(uri=gap.uri, kind="file", sha256="aa", param="out_dir")):
        v = compare_task(o, task("b", 0, "c", name="t", outputs=[mine, replayed], result_hash="sha256:r"))
        assert v.verdict == "unverified", v
        assert [c.uri for c in v.outputs] == [mine.uri]
        assert any("/d/results/part-a.bin has no hash in the recorded run" in c and why in c for c in v.causes), v.causes
    n = task("b", 0, "c", name="t", outputs=[mine, DataRef(uri=gap.uri, kind="unhashed", param="out_dir", reason="x")],
             result_hash="sha256:r")
    v = compare_task(task("a", 0, "c", name="t", outputs=[mine, _out(gap.uri, "aa")], result_hash="sha256:r"), n)
    assert v.verdict == "unverified" and any("has no hash in the replay" in c for c in v.causes)
    differs = task("b", 0, "c", name="t", outputs=[_out(mine.uri, "zz"), gap], result_hash="sha256:r")
    assert compare_task(o, differs).verdict == "differs"


def test_environment_variables_a_task_reads_are_named_not_blamed_on_nondeterminism() -> None:
    """A task that reads an environment variable (with a default, so no check flags it) gave
    another result because the variable is set otherwise in the replay: the likely cause names
    the variable and both values, and never says "same code, inputs and environment"."""
    from reproflow.checks import environment_names_read
    from reproflow.records import EnvVar

    source = '''import os
from os import environ, getenv

LIMIT = os.getenv("TOP_LIMIT")


class Steps:
    def scale(self, xs):
        factor = int(os.environ.get("SCALE", "1")) + int(environ["OFFSET"]) + len(getenv("LABEL") or "")
        return [x * factor for x in xs]


def other():
    return os.environ["UNRELATED"]
'''
    assert environment_names_read(source, "Steps.scale") == ["LABEL", "OFFSET", "SCALE", "TOP_LIMIT"]
    assert environment_names_read(source, "other") == ["TOP_LIMIT", "UNRELATED"]
    assert environment_names_read(source, "missing") == ["TOP_LIMIT"]
    assert environment_names_read("def f(:\n", "f") == []
    # What runs when the module is imported, and the task itself: not the `__main__` block (its
    # reads reach the flow as parameters, recorded as they were) nor another function's defaults
    # and decorators (a flow's: the replay passes it the recorded parameters), but class bodies,
    # a lambda's defaults there, the `else` of a `__main__` guard, and the task's own defaults
    script = '''import os

@flow(name=os.environ.get("FLOW_NAME", "f"))
def pipeline(bucket=os.environ.get("DATA_BUCKET", "s3://data"), *, region=os.getenv("REGION")):
    return stamp(bucket)

def stamp(out, width=int(os.environ.get("WIDTH", "8"))):
    return len(out)

class Settings:
    level = os.environ.get("LEVEL", "1")
    pick = lambda self, k=os.getenv("KEY"): os.environ.get("IN_LAMBDA")

if __name__ == "__main__":
    pipeline(os.environ["ONLY_AS_SCRIPT"])
elif "__main__" != __name__:
    WORKERS = os.environ.get("WORKERS", "2")
if __name__ != "__main__":
    MODE = os.getenv("MODE")
'''
    assert environment_names_read(script, "stamp") == ["KEY", "LEVEL", "MODE", "WIDTH", "WORKERS"]
    assert environment_names_read(script, "pipeline") == ["DATA_BUCKET", "FLOW_NAME", "KEY", "LEVEL", "MODE", "REGION",
                                                          "WORKERS"]

    o = task("a", 0, "c", name="scale", result_hash="sha256:r")
    v = compare_task(o, task("b", 0, "c", name="scale", result_hash="sha256:s"))
    old = {"SCALE": EnvVar(value="2"), "OFFSET": EnvVar(value="0"), "TOKEN": EnvVar(redacted=True, fingerprint="f1")}
    new = {"OFFSET": EnvVar(value="0"), "TOKEN": EnvVar(redacted=True, fingerprint="f2")}
    from reproflow.replay._compare import environment_causes

    causes = environment_causes(["OFFSET", "SCALE", "TOKEN"], old, new)
    assert causes[0] == ("environment variable SCALE, which the task reads, was '2' when recorded and is unset in the "
                         "replay: set it as recorded and replay again")
    assert "TOKEN" in causes[1] and "secret" in causes[1] and len(causes) == 2
    explain([v], Run(record=RunRecord(run_id="a", flow_name="f", context="c"), tasks=[o]), [], [],
            env_causes={o.task_run_id: causes})
    assert v.causes[:2] == causes
    assert not any("nondeterminism" in c for c in v.causes), v.causes


def test_tasks_called_one_by_one_pair_by_the_call_not_by_position() -> None:
    """A replay task by task (--engine tasks, --task) calls each recorded task run; a called task
    that calls another task inside it records nested runs between the calls, which shifted a
    pairing by position (every later task compared with its neighbour's result: "differs",
    "nondeterminism"). With the runner's map of recorded run -> the call made for it, each pairs
    with its own call, and the nested runs made inside a called task are not "extra"."""
    orig = [task("a", 0, "c", name="lengths", tid="o1"), task("a", 1, "c", name="tokenize", tid="o2"),
            task("a", 2, "c", name="double", tid="o3")]
    new = [task("b", 0, "c", name="tokenize", tid="nested1"), task("b", 1, "c", name="lengths", tid="n1"),
           task("b", 2, "c", name="tokenize", tid="n2"), task("b", 3, "c", name="double", tid="n3")]
    pairs, extra = match_tasks(orig, new, {}, {}, by_position=True, calls={"o1": "n1", "o2": "n2", "o3": "n3"})
    assert [(o.task_run_id, n.task_run_id if n else None) for o, n in pairs] == [("o1", "n1"), ("o2", "n2"), ("o3", "n3")]
    assert extra == []
    pairs, _ = match_tasks(orig, new[1:], {}, {}, by_position=True, calls={"o1": "n1", "o2": "n2"})
    assert pairs[2][1] is None  # no call was made for it: missing, never someone else's run


def test_a_parameter_the_flow_body_computed_otherwise_is_named_not_blamed_on_nondeterminism() -> None:
    """A task given another value than recorded by the flow body itself (a results folder named
    after the clock) differs because of its parameter: the cause names it with both values, and
    never says "same code, inputs and environment". A parameter fed by an upstream task that
    differs is left to the upstream cause; an equal parameter is not named."""
    from reproflow.values._typed import to_typed_json

    def with_params(run: str, tid: str, **values: object) -> object:
        t = task(run, 0, "c", name="write_value", tid=tid, result_hash=f"sha256:{run}")
        t.parameters = {k: to_typed_json(v) for k, v in values.items()}
        t.parameter_hashes = {k: stable_hash(v) or "" for k, v in values.items()}
        return t

    o = with_params("a", "o1", out_dir=Path("results/run-1450"), value=7.0)
    n = with_params("b", "n1", out_dir=Path("results/run-1503"), value=7.0)
    v = compare_task(o, n)  # type: ignore[arg-type]
    assert v.verdict == "differs"
    assert v.parameters_changed == ["parameter out_dir was Path('results/run-1450') when recorded and is "
                                    "Path('results/run-1503') in the replay"]
    explain([v], Run(record=RunRecord(run_id="a", flow_name="f", context="c"), tasks=[o]), [], [])  # type: ignore[list-item]
    assert v.causes[0].startswith("parameter out_dir was Path('results/run-1450')") and "flow body" in v.causes[0]
    assert not any("nondeterminism" in c for c in v.causes), v.causes


def test_an_input_the_flow_body_wrote_otherwise_is_named_not_blamed_on_nondeterminism() -> None:
    """An input the run wrote outside any task before the task read it (the flow body's settings
    file: not checked before the replay, which writes it again) that the replayed task read with
    other bytes is the cause, with both hashes; an input with the same bytes is not named."""
    def ref(sha: str, name: str = "/w/out/settings.json") -> DataRef:
        return DataRef(uri=name, sha256=sha, param="settings", written_in_run=True)

    o = task("a", 0, "c", name="scale", result_hash="sha256:1", inputs=[ref("aa" * 32), ref("cc" * 32, "/w/out/base.txt")])
    n = task("b", 0, "c", name="scale", result_hash="sha256:2", inputs=[ref("bb" * 32), ref("cc" * 32, "/w/out/base.txt")])
    v = compare_task(o, n)
    assert v.verdict == "differs"
    explain([v], _run([o]), [], [])
    assert len([c for c in v.causes if c.startswith("input ")]) == 1
    assert v.causes[0].startswith("input /w/out/settings.json, which the run wrote outside any task (the flow body)")
    assert "sha256:aaaaaaaaaaaa when recorded and sha256:bbbbbbbbbbbb in the replay" in v.causes[0]
    assert not any("nondeterminism" in c for c in v.causes), v.causes


def test_a_declared_output_folder_is_compared_file_by_file_never_a_file_against_the_folder() -> None:
    """A declared output folder is recorded as the files the task wrote into it. A file a task
    beside it wrote (in another worker, unseen) is compared with what the replay wrote there. A
    folder recorded whole (as reproflow did before) against a replay's files is "unverified" with
    the reason, never its tree hash against the one file's ("differs"), and a folder and a file
    are never paired by their parameter's name."""
    def mine(name: str, digest: str, kind: str = "file") -> DataRef:
        return DataRef(uri=f"/d/out/{name}", kind=kind, sha256=digest, param="out_dir", declared=True)

    o = task("a", 0, "c", name="t", outputs=[mine("g.txt", "g1"), mine("h.txt", "h1")], result_hash=None)
    n = task("b", 0, "c", name="t", outputs=[mine("g.txt", "g1")], result_hash=None)
    sibling = {"/d/out/h.txt": mine("h.txt", "h1"), "/d/out/g.txt": mine("g.txt", "g1")}
    assert compare_task(o, n, elsewhere=sibling).verdict == "reproduced"
    v = compare_task(o, n, elsewhere={**sibling, "/d/out/h.txt": mine("h.txt", "h2")})
    assert v.verdict == "differs" and [(c.uri, c.actual) for c in v.outputs if not c.match] == [("/d/out/h.txt", "h2")]

    whole = DataRef(uri="/d/out", kind="directory", sha256="tree", n_files=2, param="out_dir", declared=True)
    old = task("a", 0, "c", name="t", outputs=[whole], result_hash=None)
    v = compare_task(old, n, elsewhere=sibling)
    assert v.verdict == "unverified" and "recorded whole" in v.causes[0] and v.outputs == []
    elsewhere_file = task("b", 0, "c", name="t", result_hash=None,
                          outputs=[DataRef(uri="/e/out.txt", kind="file", sha256="tree", param="out_dir", declared=True)])
    v = compare_task(old, elsewhere_file)
    assert v.verdict == "differs" and v.outputs[0].actual is None  # not paired with the file by its name


def test_an_output_whose_bytes_the_order_of_tasks_decided_is_not_compared() -> None:
    """Mapped tasks each append their line to one results file: each recorded the file as it was
    when it ended, with whichever siblings' lines were in by then. Which ones is the scheduler's
    order, not the task's work, so the file is not compared for them ("unverified", naming the
    other task), never "differs" blamed on nondeterminism. Tasks ordered by the DAG (one
    upstream of the other) or by the flow (called one after the other, never at the same time)
    still compare such a file, and so do tasks that saw it with the same bytes."""
    from reproflow.replay._compare import order_dependent_outputs

    def line(digest: str) -> DataRef:
        return DataRef(uri="/d/results.csv", kind="file", sha256=digest, undeclared=True)

    a = task("a", 0, "c", name="evaluate", tid="a", map_index=0, outputs=[line("h-a")], result_hash="sha256:1")
    b = task("a", 1, "c", name="evaluate", tid="b", map_index=1, outputs=[line("h-ab")], result_hash="sha256:2")
    racing = order_dependent_outputs([a, b])
    assert racing == {"a": {"/d/results.csv": "evaluate[1]"}, "b": {"/d/results.csv": "evaluate[0]"}}
    na = task("b", 0, "c", name="evaluate", tid="na", map_index=0, outputs=[line("h-ba")], result_hash="sha256:1")
    v = compare_task(a, na, order_dependent=racing)
    assert v.verdict == "unverified" and "also written by task evaluate[1]" in v.causes[0] and v.outputs == []
    assert compare_task(a, na).verdict == "differs"  # what it said before
    after = task("a", 1, "c", name="summarize", tid="s", upstream={"x": ["a"]}, outputs=[line("h-ab")])
    assert order_dependent_outputs([a, after]) == {}  # one upstream of the other: the order is the DAG's
    same = task("a", 1, "c", name="evaluate", tid="c", map_index=1, outputs=[line("h-a")])
    assert order_dependent_outputs([a, same]) == {}  # the same bytes: a file complete before either saw it
    later = task("a", 1, "c", name="rewrite", tid="r", outputs=[line("h-r")])
    assert order_dependent_outputs([a, later]) == {}  # called after it by the flow, no edge: the flow's order
    beside = task("a", 0, "c", name="rewrite", tid="r2", outputs=[line("h-r")])  # submitted: ran at the same time
    assert order_dependent_outputs([a, beside]) == {"a": {"/d/results.csv": "rewrite"}, "r2": {"/d/results.csv": "evaluate[0]"}}


@pytest.mark.parametrize(("name", "field", "flag", "says", "fix"), [
    ("/d/t.csv.gz", "gzip_sha256", "gzip_time_only", "time stamp gzip puts in its header", "mtime=0"),
    ("/d/arrays.npz", "untimed_sha256", "time_only", "times zip records for its members", "date_time="),
    ("/d/fig.pdf", "untimed_sha256", "time_only", "dates its metadata records (CreationDate, ModDate)", "SOURCE_DATE_EPOCH"),
    ("/d/fig.svg", "untimed_sha256", "time_only", "date its metadata records (dc:date)", "metadata={'Date': None}")])
def test_a_file_that_differs_in_the_times_its_format_records_alone_is_said_so(name: str, field: str, flag: str,
                                                                              says: str, fix: str) -> None:
    """``gzip.open`` and pandas' ``.csv.gz`` put the clock in the header, pandas' .csv.zip and
    zipfile's writestr stamp each member with it, matplotlib's PDF and SVG their creation date:
    the file differs every run, and the replay blamed 'nondeterminism in this task'. The same
    bytes but for those times (``gzip_sha256``, ``untimed_sha256``): the task still differs, and
    the cause names the format's times and how to write fixed ones; other content, or another
    differing output beside it, is no such case."""
    def out(digest: str, body: str) -> DataRef:
        return DataRef(uri=name, kind="file", sha256=digest, param="out", **{field: body})

    o = task("a", 0, "c", name="figure", outputs=[out("aa", "z1")], result_hash="sha256:r")
    same = task("b", 0, "c", name="figure", outputs=[out("ab", "z1")], result_hash="sha256:r")
    other = task("b", 0, "c", name="figure", outputs=[out("ac", "z2")], result_hash="sha256:r")
    verdicts = [compare_task(o, same), compare_task(o, other)]
    explain(verdicts, _run([o]), [], [])
    stamped, changed = verdicts
    assert stamped.verdict == "differs" and getattr(stamped.outputs[0], flag)
    assert not getattr(stamped.outputs[0], "time_only" if flag == "gzip_time_only" else "gzip_time_only")
    assert [c for c in stamped.causes if says in c and fix in c]
    assert not any("nondeterminism" in c for c in stamped.causes)
    assert changed.verdict == "differs" and not getattr(changed.outputs[0], flag)
    assert any("nondeterminism" in c for c in changed.causes) and not any(says in c for c in changed.causes)
    both = task("a", 0, "c", name="figure", outputs=[out("aa", "z1"), _out("/d/x", "x1")], result_hash="sha256:r")
    v = compare_task(both, task("b", 0, "c", name="figure", outputs=[out("ab", "z1"), _out("/d/x", "x2")], result_hash="sha256:r"))
    explain([v], _run([both]), [], [])
    assert any("nondeterminism" in c for c in v.causes)  # /d/x differs for real
