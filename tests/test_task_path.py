"""The per-task path's shortcuts (issue 16) give what the long way gives: the same paths, the
same settings for every task of a run, the same loader generation in every thread, and nothing
of a flow run kept once it has ended."""

from __future__ import annotations

import importlib
import os
import pathlib
import subprocess
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prefect import flow

import reproflow
from reproflow import repro_task
from reproflow.capture import _files, system
from reproflow.recorder import _runs
from reproflow.recorder._declare import data_uri
from reproflow.store import Store

_PARTS = st.sampled_from(["", ".", "..", "a", "b.c", ".hidden", "x y", "...", "é", "a.", "-"])


@settings(max_examples=400, deadline=None)
@given(st.booleans(), st.lists(_PARTS, max_size=6), st.booleans())
def test_the_abspath_shortcut_is_os_path_abspath(absolute: bool, parts: list[str], trailing: bool) -> None:
    """Absolute and normal paths skip the work; every other spelling (empty parts, ``.``,
    ``..``, a trailing slash, a relative path) gets what ``os.path.abspath`` gives."""
    path = ("/" if absolute else "") + "/".join(parts) + ("/" if trailing else "")
    if not path:
        return
    assert _files.abspath(path) == os.path.abspath(path)
    assert data_uri(pathlib.Path(path)) == os.path.abspath(path)
    assert data_uri(path) == os.path.abspath(path)


@repro_task
def seeded(x: int) -> int:
    return x


def _task_seeds(store: Store, run_id: str) -> list[int | None]:
    return [t.seed for t in sorted(store.load_run(run_id).final_tasks(), key=lambda t: t.started_at)]


def test_a_runs_tasks_keep_the_settings_its_first_task_saw(store: Store, tmp_path: pathlib.Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """$REPROFLOW_SEED and $REPROFLOW_STORE changed halfway through a run move none of its
    later tasks (one run, one seed, one store); the next run reads them again."""
    monkeypatch.setenv("REPROFLOW_SEED", "5")
    with reproflow.record("settings") as run:
        seeded(1)
        monkeypatch.setenv("REPROFLOW_SEED", "9")
        monkeypatch.setenv("REPROFLOW_STORE", str(tmp_path / "elsewhere"))
        seeded(2)
    assert _task_seeds(store, run.run_id) == [5, 5]
    assert not (tmp_path / "elsewhere").exists()
    assert run.run_id not in _runs._settings  # forgotten with the run's end

    with reproflow.record("next", store=str(tmp_path / "elsewhere")) as later:
        seeded(3)
    assert _task_seeds(Store(tmp_path / "elsewhere"), later.run_id) == [9]


def test_record_s_store_holds_its_tasks_too(store: Store, store_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """``reproflow.record(store=...)`` with ``$REPROFLOW_STORE`` naming another store: the run
    was opened in the store given, and its tasks were written to the environment's (a run with
    no tasks there, task records without a run here)."""
    other = Store(tmp_path / "given")
    with reproflow.record("given-store", store=str(tmp_path / "given")) as run:
        seeded(1)
        seeded(2)
    assert len(other.load_run(run.run_id).final_tasks()) == 2
    assert not any(run.run_id in str(p) for p in store_dir.rglob("*"))


def test_a_run_this_process_did_not_start_reads_the_environment_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROFLOW_STRICT", "1")
    assert _runs.task_settings("not-started-here").strict
    monkeypatch.setenv("REPROFLOW_STRICT", "0")
    assert not _runs.task_settings("not-started-here").strict
    assert "not-started-here" not in _runs._settings


def test_a_bad_store_variable_fails_only_the_task_that_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPROFLOW_STORE", "nosuchscheme://bucket/store")
    assert _runs.task_settings("not-started-here").store is None


@repro_task(seed=3)
def own_seed(x: int) -> int:
    return x


def test_a_bad_seed_variable_fails_only_the_tasks_that_take_it(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task with its own seed= runs under a REPROFLOW_SEED that is no seed; one without it
    fails, with the value named, as the variable's readers always did."""
    from reproflow.errors import InvalidSeed

    with reproflow.record("seeds", seed=4) as run:
        monkeypatch.setenv("REPROFLOW_SEED", "seven")
        assert own_seed(1) == 1
        with pytest.raises(InvalidSeed, match="seven"):
            seeded(2)
    tasks = store.load_run(run.run_id).final_tasks()
    assert [t.seed for t in tasks if t.state == "COMPLETED"] == [3]
    (failed,) = [t for t in tasks if t.state == "FAILED"]  # the refusal is in the run's history
    assert failed.error is not None and failed.error.type.endswith("InvalidSeed")


def test_every_thread_reads_the_loader_generation_the_main_thread_reads() -> None:
    """Tasks end in many threads at once: each gets the loader's own answer."""
    expected = system.generation()
    if expected is None:
        pytest.skip("no dl_iterate_phdr counters here")
    seen: list[object] = []
    lock = threading.Lock()

    def many() -> None:
        got = [system.generation() for _ in range(300)]
        with lock:
            seen.extend(got)

    threads = [threading.Thread(target=many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [expected] * 2400


def test_loading_a_shared_object_moves_the_generation() -> None:
    before = system.generation()
    if before is None:
        pytest.skip("no dl_iterate_phdr counters here")
    pytest.importorskip("_ctypes_test")  # an extension module nothing here has loaded yet
    assert system.generation() != before


#: A thread importing copies of an extension module (each a new ``dlopen``, with the GIL held, as
#: CPython calls it) while another asks the loader's generation, as a task ending while another
#: task imports pandas for the first time: prints "done" unless they deadlock.
_DLOPEN_RACE = r"""
import importlib.util, os, shutil, sys, tempfile, threading
from reproflow.capture import system

sys.setswitchinterval(1e-6)  # a switch request at nearly every check: the race every time
name, src, tmp = sys.argv[1], sys.argv[2], tempfile.mkdtemp()
loaded = threading.Event()

def load():
    for i in range(200):
        dst = os.path.join(tmp, f"copy{i}.so")
        shutil.copy(src, dst)
        importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, dst))
    loaded.set()

def ask():
    while not loaded.is_set():
        system.generation()

threads = [threading.Thread(target=load), threading.Thread(target=ask)]
for t in threads:
    t.start()
for t in threads:
    t.join()
shutil.rmtree(tmp)
print("done", system.generation())
"""


def test_the_generation_never_deadlocks_with_a_dlopen_in_another_thread() -> None:
    """The loader holds its lock while it calls the callback; a callback running Python code
    let another thread take the GIL there, and that thread's ``dlopen`` waited for the lock while
    the callback waited for the GIL: the process hung (at once, with this switch interval)."""
    if system.generation() is None:
        pytest.skip("no dl_iterate_phdr counters here")
    for name in ("_heapq", "_bisect", "_json", "_random", "_struct"):
        path = getattr(importlib.import_module(name), "__file__", None)
        if path and path.endswith(".so"):
            break
    else:
        pytest.skip("no extension module of the standard library is a shared object here")
    try:
        proc = subprocess.run([sys.executable, "-c", _DLOPEN_RACE, name, path], capture_output=True, text=True,
                              timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("a dlopen in one thread and the loader generation in another deadlocked")
    assert proc.returncode == 0 and proc.stdout.startswith("done"), proc.stderr[-3000:]


@repro_task
def placed(x: int) -> int:
    return x + 1


@flow
def two_tasks() -> int:
    return placed(1) + placed.submit(2).result()


def test_a_flow_runs_place_and_settings_are_forgotten_when_it_ends(store: Store) -> None:
    from reproflow.engines.prefect import _flowrun
    from reproflow.store._writer import finishing

    state = two_tasks(return_state=True)
    assert state.result() == 5
    assert finishing().wait(60)
    run_id = str(state.state_details.flow_run_id)
    assert len(store.load_run(run_id).final_tasks()) == 2
    assert all(p.run_id != run_id for p in _flowrun._places_by_id.values())
    assert all(p.run_id != run_id for p in _flowrun._places.values())
    assert run_id not in _runs._settings
