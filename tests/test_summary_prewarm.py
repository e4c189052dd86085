"""The summary scorer's modules are loaded beside the flow, once per process, so the process's
exit (which waits for the artifacts) does not wait for the imports too; a fork waits for that
loading to end."""

from __future__ import annotations

import os
import threading
import time
import warnings

import pytest

from reproflow.engines.prefect import _artifacts


@pytest.fixture
def prewarm(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A fresh once-per-process state and a prewarm function that notes each call."""
    calls: list[str] = []
    monkeypatch.setattr(_artifacts, "_prewarm_thread", None)
    monkeypatch.setattr(_artifacts, "summary_prewarm", lambda: calls.append(threading.current_thread().name))
    monkeypatch.delenv("REPROFLOW_ARTIFACTS", raising=False)
    return calls


def test_the_scorer_is_loaded_once_in_a_thread_of_its_own(prewarm: list[str]) -> None:
    _artifacts.prewarm_summary()
    _artifacts.prewarm_summary()
    thread = _artifacts._prewarm_thread
    assert thread is not None and thread.daemon
    thread.join(5)
    assert prewarm == ["reproflow-summary-prewarm"]


def test_nothing_is_loaded_where_artifacts_are_off(prewarm: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROFLOW_ARTIFACTS", "off")
    _artifacts.prewarm_summary()
    assert _artifacts._prewarm_thread is None and prewarm == []


def test_a_fork_waits_for_the_loading_to_end(prewarm: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A child forked while the scorer's modules are being imported would inherit their locks
    held by a thread it does not have: the fork waits for the loading thread first."""
    done = threading.Event()

    def slow() -> None:
        time.sleep(0.5)
        done.set()

    monkeypatch.setattr(_artifacts, "summary_prewarm", slow)
    _artifacts.prewarm_summary()
    with warnings.catch_warnings():  # Python 3.12+ warns of any fork in a process with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: nothing to do here
        os._exit(0)
    os.waitpid(pid, 0)
    assert done.is_set(), "forked while the scorer was still loading"


def test_the_package_wires_the_scorer_and_its_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import reproflow

    monkeypatch.setattr(_artifacts, "summary_scorer", None)
    monkeypatch.setattr(_artifacts, "summary_prewarm", None)
    reproflow._wire_prefect()
    assert _artifacts.summary_scorer is not None and _artifacts.summary_prewarm is not None
    _artifacts.summary_prewarm()
    assert "reproflow.analysis._report" in sys.modules and "reproflow.replay._plan" in sys.modules
