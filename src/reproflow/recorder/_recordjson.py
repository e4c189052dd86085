"""A task record's bytes, built from what the recorder gathered, without a pydantic round trip.

:func:`task_record_bytes` gives exactly ``model_bytes(TaskRecord(**values))`` (the same canonical
JSON, byte for byte) for the values an attempt gathers in this process: plain strings, numbers,
UTC datetimes, typed JSON and ``DataRef`` / ``Finding`` / ``ErrorInfo`` models built by
reproflow itself. Validating them into a ``TaskRecord`` and dumping it again cost about as much
as writing the file (issue 16); here each field is checked for the exact type the schema keeps
as it is, and anything else (a value pydantic would coerce or reject, a non-finite float, a
``cache`` key) returns None, and the caller takes the validating path.
``tests/test_recordjson.py`` compares both paths over many shapes.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from ..records import DataRef, ErrorInfo, Finding, TaskRecord
from ..store import canonical_json

_UTC = _dt.timezone.utc
_STATES = frozenset({"COMPLETED", "FAILED", "CACHED", "RETRYING"})
_ENGINES = frozenset({"prefect", "plain", "airflow", "snakemake", "command"})
_STR = ("run_id", "task_run_id", "task_name", "task_key", "parameters_hash")
_OPT_STR = ("function", "function_file", "result_hash", "result_unhashable", "result_blob", "context",
            "subflow", "subflow_run_id")
_OPT_INT = ("seed", "map_index")
_SCALARS = (str, int, float, bool, type(None))


def _defaults() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in TaskRecord.model_fields.items():
        if not field.is_required():
            out[name] = field.get_default(call_default_factory=True)
    return out


#: The JSON of every optional field's default (None, [], {}, "prefect", 1, the schema version).
_DEFAULTS = _defaults()
_FIELDS = frozenset(TaskRecord.model_fields)


def _utc(value: Any) -> str | None:
    """pydantic's JSON of a UTC datetime (``...Z``); None for anything else."""
    if type(value) is not _dt.datetime or value.tzinfo is not _UTC:
        return None
    return value.isoformat()[:-6] + "Z"  # isoformat ends "+00:00" for UTC


def _models(items: Any, cls: type) -> list[dict[str, Any]] | None:
    """The field dicts of a list of reproflow-built models of exactly ``cls``; None otherwise."""
    if type(items) is not list:
        return None
    out = []
    for item in items:
        if type(item) is not cls:
            return None
        fields = item.__dict__
        for v in fields.values():
            if not isinstance(v, _SCALARS) and not (type(v) is list and all(type(e) is str for e in v)):
                return None
        out.append(fields)
    return out


def _str_map(value: Any, list_values: bool = False) -> bool:
    if type(value) is not dict:
        return False
    for k, v in value.items():
        if type(k) is not str:
            return False
        if list_values:
            if type(v) is not list or not all(type(e) is str for e in v):
                return False
        elif type(v) is not str:
            return False
    return True


def task_record_dict(values: dict[str, Any]) -> dict[str, Any] | None:
    """``TaskRecord(**values).model_dump(mode="json")``, or None where the values are not of the
    exact types this builds from (the caller then validates them with pydantic)."""
    if values.get("cache") is not None or not _FIELDS.issuperset(values):
        return None
    for name in _STR:
        if type(values.get(name)) is not str:
            return None
    for name in _OPT_STR:
        v = values.get(name)
        if v is not None and type(v) is not str:
            return None
    for name in _OPT_INT:
        v = values.get(name)
        if v is not None and type(v) is not int:
            return None
    out = dict(_DEFAULTS)
    out.update(values)
    if type(out["attempt"]) is not int or out["state"] not in _STATES or out["engine"] not in _ENGINES:
        return None
    if type(out["duration_s"]) is not float or type(out["parameters"]) is not dict:
        return None
    started, ended = _utc(out["started_at"]), _utc(out["ended_at"])
    if started is None or ended is None:
        return None
    out["started_at"], out["ended_at"] = started, ended
    if not (_str_map(out["parameter_hashes"]) and _str_map(out["upstream"], list_values=True)):
        return None
    if type(out["tags"]) is not list or not all(type(t) is str for t in out["tags"]):
        return None
    engine_info = out["engine_info"]
    if type(engine_info) is not dict or any(type(k) is not str or not isinstance(v, _SCALARS)
                                            for k, v in engine_info.items()):
        return None  # lists and mappings in engine_info: pydantic's union decides
    inputs, outputs = _models(out["inputs"], DataRef), _models(out["outputs"], DataRef)
    findings = _models(out["findings"], Finding)
    if inputs is None or outputs is None or findings is None:
        return None
    out["inputs"], out["outputs"], out["findings"] = inputs, outputs, findings
    error = out["error"]
    if error is not None:
        errors = _models([error], ErrorInfo)
        if errors is None:
            return None
        out["error"] = errors[0]
    return out


def task_record_bytes(values: dict[str, Any]) -> bytes | None:
    """``model_bytes(TaskRecord(**values))`` without pydantic, or None (see :func:`task_record_dict`).

    ``parameters`` and ``result`` are typed JSON: JSON's own types, which pydantic's JSON mode
    passes through unchanged; a value that is not (a set, bytes, a non-finite float, which
    pydantic writes as null) makes the encoder fail here, and the caller validates instead."""
    out = task_record_dict(values)
    if out is None:
        return None
    try:
        return canonical_json(out, allow_nan=False)
    except (TypeError, ValueError):
        return None


__all__ = ["task_record_bytes", "task_record_dict"]
