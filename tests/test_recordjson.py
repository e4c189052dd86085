"""A task record built without pydantic (recorder._recordjson) is byte for byte the validated one's."""

from __future__ import annotations

import datetime as dt
import json
import math
import pathlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reproflow.records import DataRef, ErrorInfo, Finding, TaskRecord
from reproflow.recorder._recordjson import task_record_bytes
from reproflow.store import model_bytes, parse_record

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 2, 13, 59, 33, 415708, tzinfo=UTC)


def _values(**over: Any) -> dict[str, Any]:
    """What ``_Attempt._write`` hands ``_publish``: every key, plain values and reproflow's models."""
    values: dict[str, Any] = dict(
        run_id="3f2b8a4e-1111-2222-3333-444455556666", task_run_id="7a0c-task", attempt=1, task_name="process",
        task_key="process-abc", function="flow:process", function_file="/src/flow.py", state="COMPLETED",
        started_at=NOW, ended_at=NOW + dt.timedelta(milliseconds=3), duration_s=0.0031,
        parameters={"src": {"__rf__": "path", "v": "/data/in/0001.bin"}, "n": 3},
        parameter_hashes={"src": "sha256:" + "ab" * 32, "n": "sha256:" + "cd" * 32},
        parameters_hash="sha256:" + "ef" * 32,
        inputs=[DataRef(uri="/data/in/0001.bin", kind="file", sha256="12" * 32, size=1024, param="src", declared=True)],
        upstream={}, context="aa" * 32, seed=None, findings=[], tags=[], engine="prefect", map_index=None,
        subflow=None, subflow_run_id=None, engine_info={}, cache=None,
        outputs=[DataRef(uri="/data/out/0001.bin", kind="file", sha256="34" * 32, size=1024, param="dst")],
        result_hash="sha256:" + "56" * 32, result_unhashable=None, result=1024, result_blob=None,
    )
    values.update(over)
    return values


def _same(values: dict[str, Any]) -> None:
    fast = task_record_bytes(values)
    assert fast is not None, "the values were expected to take the fast path"
    assert fast == model_bytes(TaskRecord(**values))


SHAPES: dict[str, dict[str, Any]] = {
    "completed": {},
    "failed, with error and findings": dict(
        state="FAILED", result_hash=None, result=None, outputs=[],
        error=ErrorInfo(type="builtins.ValueError", message="bad ünïcode ✓ \"quoted\" \\ \n", traceback="Traceback...\n"),
        findings=[Finding(code="RPF001", message="unseeded random", path="flow.py", line=3, severity="warning"),
                  Finding(code="RPF010", message="info", severity="info", fix="seed it")]),
    "retrying attempt 3 in a subflow, mapped, tagged": dict(
        state="RETRYING", attempt=3, subflow="inner", subflow_run_id="9f9f", map_index=17, tags=["a", "b"],
        upstream={"src": ["t1", "t2"], "x": []}, seed=1234),
    "engine info of scalars": dict(engine="airflow", engine_info={"dag_id": "d", "try_number": 2, "ratio": 0.5,
                                                                  "flag": True, "none": None}),
    "directory, missing, unhashed and undeclared refs": dict(inputs=[
        DataRef(uri="/d", kind="directory", sha256="00" * 32, size=10, n_files=2, entries=["a", "b/c"], param="d"),
        DataRef(uri="/gone", kind="missing", param="p"),
        DataRef(uri="s3://b/k", kind="unhashed", reason="NoCredentialsError: none", param="u"),
        DataRef(uri="/read", kind="file", sha256="11" * 32, size=1, param=None, undeclared=True, stored_blob="22" * 32),
    ]),
    "nested typed JSON, floats and unicode": dict(
        parameters={"f": 0.1, "big": 1e300, "tiny": 5e-324, "neg": -0.0, "i": -(2**53), "s": "日本語 ✓ \u2028 \x00 \"",
                    "l": [1, [2, [3, {"k": None}]]], "t": {"__rf__": "tuple", "v": [1, "x"]},
                    "d": {"__rf__": "dict", "items": [[1, "one"], [{"__rf__": "tuple", "v": [1, 2]}, True]]},
                    "emoji 🎉": {"nested": {"deeper": [False, True, None]}}},
        result={"__rf__": "float", "v": "nan"}, duration_s=12345.678901234),
    "no result (a generator)": dict(result=None, result_hash=None),
    "datetime without microseconds": dict(started_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                                          ended_at=dt.datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=UTC)),
    "result blob and unhashable": dict(result_blob="77" * 32, result_hash=None, result_unhashable="flow.Model"),
    "plain engine, no function": dict(engine="plain", function=None, function_file=None, context=None),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_fast_record_bytes_equal_the_validated_records(name: str) -> None:
    _same(_values(**SHAPES[name]))


@pytest.mark.parametrize("over", [
    dict(result=float("nan")),  # pydantic writes null, JSON has no NaN: validated
    dict(parameters={"x": float("inf")}),
    dict(parameters={"x": {1, 2}}),  # not typed JSON: pydantic decides
    dict(parameters={"x": b"bytes"}),
    dict(duration_s=1),  # an int pydantic makes 1.0
    dict(attempt="2"),
    dict(attempt=True),
    dict(started_at=dt.datetime(2026, 1, 2, 3, 4, 5)),  # naive
    dict(started_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
    dict(state="RUNNING"),
    dict(engine="dask"),
    dict(tags=("a",)),
    dict(engine_info={"ids": [1, 2]}),
    dict(upstream={"x": "t1"}),
    dict(run_id=None),
    dict(inputs=[{"uri": "/x"}]),
    dict(unknown_field=1),
])
def test_values_the_fast_path_does_not_know_are_left_to_pydantic(over: dict[str, Any]) -> None:
    """Anything pydantic would coerce, reject or write differently gives None: the caller validates."""
    assert task_record_bytes(_values(**over)) is None


def test_a_cache_key_takes_the_validated_path() -> None:
    from reproflow.records import CacheKey

    assert task_record_bytes(_values(cache=CacheKey(key="k", function="f"))) is None


_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
_float = st.floats(allow_nan=False, allow_infinity=False)
_typed = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | _float | _text,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(_text, c, max_size=3), max_leaves=10)
_ref = st.builds(DataRef, uri=_text, kind=st.sampled_from(["file", "directory", "object", "missing", "unhashed"]),
                 sha256=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
                 size=st.none() | st.integers(0, 2**50), n_files=st.none() | st.integers(0, 9),
                 entries=st.none() | st.lists(_text, max_size=3), param=st.none() | _text, declared=st.booleans(),
                 undeclared=st.none() | st.booleans(), reason=st.none() | _text)
_when = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(params=st.dictionaries(_text, _typed, max_size=4), result=_typed, inputs=st.lists(_ref, max_size=3),
       outputs=st.lists(_ref, max_size=3), started=_when, duration=_float.filter(lambda f: f >= 0),
       name=_text, tags=st.lists(_text, max_size=3), map_index=st.none() | st.integers(0, 10**6))
def test_fast_record_bytes_equal_the_validated_ones_for_any_typed_json(
        params: dict[str, Any], result: Any, inputs: list[DataRef], outputs: list[DataRef], started: dt.datetime,
        duration: float, name: str, tags: list[str], map_index: int | None) -> None:
    _same(_values(parameters=params, result=result, inputs=inputs, outputs=outputs, started_at=started,
                  ended_at=started, duration_s=duration, task_name=name, tags=tags, map_index=map_index))


def test_an_attempt_writes_a_record_that_loads_and_dumps_to_the_same_bytes(tmp_path: pathlib.Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: the bytes an attempt writes are a valid TaskRecord's canonical JSON."""
    from reproflow.recorder import _attempt
    from reproflow.recorder._attempt import _Attempt, task_spec

    monkeypatch.setenv("REPROFLOW_STORE", str(tmp_path / "store"))
    built: list[bytes] = []
    real = _attempt.task_record_bytes
    monkeypatch.setattr(_attempt, "task_record_bytes", lambda values: built.append(real(values)) or built[-1])
    src = tmp_path / "in.txt"
    src.write_text("hello ✓")

    def process(src: pathlib.Path, dst: pathlib.Path, scale: float = 0.5) -> dict[str, Any]:
        dst.write_text(src.read_text()[::-1])
        return {"scale": scale, "n": [1, 2]}

    spec = task_spec(process, inputs=["src"], outputs=["dst"])
    args = (src, tmp_path / "out.txt")
    attempt = _Attempt(spec, args, {}, run_id="run-1", task_run_id="task-1", attempt=1, task_name="process",
                       task_key="k", upstream={}, engine="plain")
    attempt.call(process, args, {})
    assert built and built[0] is not None  # the fast path wrote it
    path = tmp_path / "store" / "runs" / "run-1" / "tasks" / "task-1.1.json"
    data = path.read_bytes()
    assert data == built[0]
    record = parse_record(data, TaskRecord, str(path))
    assert model_bytes(record) == data
    assert [r.sha256 for r in record.outputs] and record.result == {"n": [1, 2], "scale": 0.5}
    assert json.loads(data)["parameters"]["scale"] == 0.5 and not math.isnan(record.duration_s)
