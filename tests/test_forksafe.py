"""A forked child records though another thread of the parent held reproflow's locks at the fork.

Only the forking thread lives on in the child: a lock another thread held at that moment would
stay held there for ever, and the child's first recorded task (a task that starts a
``multiprocessing`` pool with the fork method while its siblings record, whose workers record
tasks of their own) would wait on it for ever. Every lock reproflow keeps comes from
``reproflow._forksafe``, which unlocks them all in the child."""

from __future__ import annotations

import importlib
import os
import pkgutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import reproflow
from reproflow import _forksafe, repro_task
from reproflow.store import Store

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()), threading.Condition)


def _reproflow_locks() -> list[tuple[str, Any]]:
    """Every lock held by a module of reproflow, or by an object of a reproflow class a module
    holds (a module-wide singleton), with where it is: module names that cannot be imported here
    (an engine that is not installed) are left out."""
    found: list[tuple[str, Any]] = []
    for info in pkgutil.walk_packages(reproflow.__path__, "reproflow."):
        if info.name.endswith("__main__"):
            continue  # the command line, run as it is imported
        try:
            module = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - Airflow's or Snakemake's adapter without its engine
            continue
        for name, value in list(vars(module).items()):
            if isinstance(value, _LOCK_TYPES):
                found.append((f"{info.name}.{name}", value))
            elif type(value).__module__.startswith("reproflow.") and hasattr(value, "__dict__") and not isinstance(value, type):
                found += [(f"{info.name}.{name}.{attr}", v) for attr, v in vars(value).items() if isinstance(v, _LOCK_TYPES)]
    return found


def test_every_lock_reproflow_keeps_is_made_fork_safe() -> None:
    locks = _reproflow_locks()
    assert len(locks) >= 15, locks  # the scan finds them (the registry, the hash caches, the writer...)
    made = set(map(id, _forksafe._made))
    assert [where for where, lock in locks if id(lock) not in made] == []


@repro_task
def shout(src: Path, dst: Path) -> int:
    dst.write_text(src.read_text().upper())
    return len(dst.read_text())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_records_though_another_thread_held_every_lock(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("forked\n")
    store = tmp_path / "store"
    held, release = threading.Event(), threading.Event()
    locks = [lock for _, lock in _reproflow_locks()]

    def hold() -> None:
        taken = [lock for lock in locks if lock.acquire(blocking=False)]
        held.set()
        release.wait(60)
        for lock in reversed(taken):
            lock.release()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(30)
    pid = os.fork()
    if pid == 0:  # the child: record a run with one task, then leave at once
        code = 1
        try:
            with reproflow.record("forked", store=str(store)):
                shout(tmp_path / "in.txt", tmp_path / "out.txt")
            code = 0
        finally:
            os._exit(code)
    release.set()
    holder.join()
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on a lock another thread of the parent held at the fork")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
    (run,) = Store(str(store)).list_runs()
    (task,) = Store(str(store)).load_run(run.run_id).final_tasks()
    assert task.task_name == "shout" and task.state == "COMPLETED" and [o.uri for o in task.outputs] == [
        str(tmp_path / "out.txt")]
