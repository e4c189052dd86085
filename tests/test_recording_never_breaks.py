"""Recording never breaks the user's task: whatever a value or an error does, the task returns
its result or raises its own error, and the record says what could not be recorded."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import reproflow
from reproflow import repro_task
from reproflow.recorder._attempt import _Attempt
from reproflow.store import Store


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


class Proxy:
    """Every attribute raises, not AttributeError (a lazy or detached object)."""

    def __getattribute__(self, name: str) -> object:
        if name == "__class__":
            return object.__getattribute__(self, name)
        raise RuntimeError(f"no {name}")


@repro_task
def fail_oddly() -> None:
    raise BrokenStr()


@repro_task
def take(x: object) -> int:
    return 1


@repro_task
def leave(code: int) -> None:
    raise SystemExit(code)


@repro_task
def ok() -> int:
    return 7


def _tasks(store: Store, run_id: str) -> dict[str, object]:
    return {t.task_name: t for t in store.load_run(run_id).final_tasks()}


def test_the_users_error_and_values_stay_theirs(store: Store) -> None:
    with reproflow.record("odd values") as run:
        with pytest.raises(BrokenStr):  # not the RuntimeError its message raises
            fail_oddly()
        assert take(Proxy()) == 1
        with pytest.raises(SystemExit):
            leave(3)
    tasks = _tasks(store, run.run_id)
    failed = tasks["fail_oddly"]
    assert failed.state == "FAILED" and failed.error.message == "<BrokenStr: str() raised RuntimeError>"  # type: ignore[attr-defined]
    took = tasks["take"]
    assert took.state == "COMPLETED"  # type: ignore[attr-defined]
    param = took.parameters["x"]  # type: ignore[attr-defined]
    assert param["__rf__"] == "opaque" and "raised RuntimeError" in param["why"]
    assert took.parameter_hashes["x"].startswith("unhashable:")  # type: ignore[attr-defined]
    left = tasks["leave"]  # a task that calls sys.exit() is recorded too (plain Python)
    assert left.state == "FAILED" and left.error.type == "builtins.SystemExit" and left.error.message == "3"  # type: ignore[attr-defined]


def test_a_fault_of_the_recorder_keeps_the_task_and_says_so(store: Store, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """A bug of the recorder's own (here: collecting outputs raises) costs the record, loudly,
    never the task's result or error."""
    def broken(self: _Attempt, result: object) -> list[object]:
        raise KeyError("recorder bug")

    monkeypatch.setattr(_Attempt, "_collect_outputs", broken)
    with caplog.at_level(logging.WARNING, logger="reproflow"), reproflow.record("recorder fault"):
        assert ok() == 7
        with pytest.raises(BrokenStr):
            fail_oddly()
    lost = [r.getMessage() for r in caplog.records if "could not record task" in r.getMessage()]
    assert len(lost) == 2 and "KeyError" in lost[0] and "outcome is unchanged" in lost[0]
