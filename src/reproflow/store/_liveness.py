"""Whether a run that has no end record is still going: RUNNING, or CRASHED.

A run's ``end.json`` is written by the process that ran it, when the run ends. A process killed
with ``kill -9``, a machine that lost power, or a strict-mode run whose store filled up never
writes it. So the run record keeps who ran it (:class:`reproflow.records.Liveness`: host name,
boot id, pid namespace, pid and the process's start time), and while the run lives a thread
(never the task's path) rewrites a small lease file, ``runs/<id>/lease.json``, every
:data:`LEASE_INTERVAL_S` seconds. The lease is the one file in a run's folder that is rewritten;
records stay written once.

A reader decides, for a run without an end record:

* on the same host, boot and pid namespace as the recorded process: the run is CRASHED when no
  process has that pid, or it is a zombie, or its start time differs (the pid was reused). This is
  exact and immediate.
* anywhere else (another host, a rebooted host, another container): the run is CRASHED when its
  newest sign of life (the lease, else the run's start) is older than :data:`LEASE_STALE_S`.
  A host name alone never decides: two machines can share one, and a process there must never be
  declared dead from here.
* a run recorded without liveness (by an older reproflow) stays RUNNING: nothing says otherwise.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import posixpath
import re
import socket
import threading
from typing import TYPE_CHECKING, Any, Optional

from .. import _forksafe

if TYPE_CHECKING:
    from ..records import Liveness, RunRecord, RunStatus
    from . import Store

log = logging.getLogger("reproflow")

#: Seconds between two lease renewals of a live run.
LEASE_INTERVAL_S = 30.0
#: A run seen from elsewhere is CRASHED when its newest sign of life is older than this (ten
#: missed renewals: a loaded machine or a slow store must not make a live run look dead).
LEASE_STALE_S = 300.0
LEASE_NAME = "lease.json"


def _pid_namespace() -> Optional[str]:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def machine_key() -> str:
    """Identifies this machine *and boot*: the kernel's boot id, else host name + boot time."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot_id = fh.read().strip()
        if boot_id:
            return boot_id
    except OSError:
        pass
    node = re.sub(r"[^A-Za-z0-9_.-]", "_", platform.node() or "host")
    try:
        import psutil

        return f"{node}-{int(psutil.boot_time())}"
    except (ImportError, OSError):  # pragma: no cover - psutil is a dependency
        return node


def current() -> Liveness:
    """This process: host, boot, pid namespace, pid and start time (psutil's create_time)."""
    import psutil

    from ..records import Liveness

    try:
        started: Optional[float] = psutil.Process().create_time()
    except (psutil.Error, OSError):
        started = None
    return Liveness(hostname=socket.gethostname() or None, boot_id=machine_key(), pid_namespace=_pid_namespace(),
                    pid=os.getpid(), process_started=started, lease_interval_s=LEASE_INTERVAL_S)


_here: Optional[Liveness] = None


def _this_machine() -> Liveness:
    global _here
    if _here is None or _here.pid != os.getpid():
        _here = current()
    return _here


def _process_gone(pid: int, started: Optional[float]) -> Optional[str]:
    """Why process ``pid`` (started at ``started``) is not running here, or None if it is."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return f"process {pid} has exited"
        if started is not None and abs(proc.create_time() - started) > 1.0:
            return f"process {pid} has exited (its pid now belongs to another process)"
    except psutil.NoSuchProcess:
        return f"process {pid} has exited"
    except (psutil.Error, OSError):
        return None  # cannot tell (access denied): not declared dead
    return None


def lease_path(store: Store, run_id: str) -> str:
    return posixpath.join(store.run_dir(run_id), LEASE_NAME)


def _lease_time(store: Store, run_id: str) -> Optional[_dt.datetime]:
    """When the run's lease was last renewed (None: no lease, or one that cannot be read)."""
    try:
        data = json.loads(store.read_bytes(lease_path(store, run_id)))
        when = _dt.datetime.fromisoformat(str(data["renewed_at"]))
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a damaged or hostile lease is no sign of life
        return None
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


def unended_status(store: Store, record: RunRecord, now: Optional[_dt.datetime] = None) -> tuple[RunStatus, Optional[str]]:
    """RUNNING or CRASHED for a run with no end record, with the reason when CRASHED."""
    live = record.liveness
    if live is None:
        return "RUNNING", None
    here = _this_machine()
    where = f" on {live.hostname}" if live.hostname else ""
    same_kernel = (live.hostname == here.hostname and live.boot_id is not None and live.boot_id == here.boot_id
                   and live.pid_namespace == here.pid_namespace and live.pid is not None)
    if same_kernel:
        assert live.pid is not None
        gone = _process_gone(live.pid, live.process_started)
        if gone is None:
            return "RUNNING", None
        return "CRASHED", f"{gone}{where} without recording the run's end"
    now = now or _dt.datetime.now(_dt.timezone.utc)
    lease = _lease_time(store, record.run_id)
    started = record.started_at if record.started_at.tzinfo else record.started_at.replace(tzinfo=_dt.timezone.utc)
    last = max(lease, started) if lease is not None else started
    age = (now - last).total_seconds()
    if age <= LEASE_STALE_S:
        return "RUNNING", None
    seen = "its lease was last renewed" if lease is not None else "it started"
    return "CRASHED", (f"no sign of life for {int(age // 60)} min (process {live.pid}{where}; {seen} "
                       f"{last.isoformat(timespec='seconds')}), and no end recorded")


# -------------------------------------------------------------------------------- the lease
class _Leases:
    """One daemon thread renewing the lease of every run this process has open."""

    def __init__(self) -> None:
        self._runs: dict[str, Store] = {}
        self._lock = _forksafe.lock()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def hold(self, store: Store, run_id: str) -> None:
        with self._lock:
            self._runs[run_id] = store
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="reproflow-lease", daemon=True)
                self._thread.start()

    def release(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)

    def _loop(self) -> None:
        # The first renewal comes one interval after the start: a run shorter than that writes
        # no lease at all (its start time is its sign of life).
        while not self._wake.wait(LEASE_INTERVAL_S):
            self.renew()

    def renew(self) -> None:
        """Write the lease of every open run now."""
        with self._lock:
            runs = list(self._runs.items())
        for run_id, store in runs:
            body: dict[str, Any] = {"run_id": run_id, "pid": os.getpid(),
                                    "renewed_at": _dt.datetime.now(_dt.timezone.utc).isoformat()}
            try:
                store.write_bytes(lease_path(store, run_id), json.dumps(body).encode(), create_only=False)
            except Exception as exc:  # noqa: BLE001 - a lease that cannot be written never stops the run
                log.debug("reproflow: lease of run %s not renewed: %s", run_id, exc)


_leases = _Leases()


def hold(store: Store, run_id: str) -> None:
    """Keep ``run_id``'s lease fresh until :func:`release`."""
    _leases.hold(store, run_id)


def release(run_id: str) -> None:
    _leases.release(run_id)


def renew_now() -> None:
    _leases.renew()


def _after_fork() -> None:
    global _leases, _here
    _leases, _here = _Leases(), None  # the parent's runs and thread are not the child's


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


__all__ = ["LEASE_INTERVAL_S", "LEASE_STALE_S", "current", "hold", "release", "unended_status"]
