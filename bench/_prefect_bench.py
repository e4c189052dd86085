"""What the flow benchmarks share: a fair Prefect and a quiet server between measured runs.

Importing this module switches off Prefect 3.8's flow-run heartbeat for every variant: its
thread sleeps in 1 s steps and is joined when a flow ends, which rounds each flow's wall time up
to its next whole second (+0..1 s) and would decide a ratio by chance. The setting cannot be
None from the environment.
"""

from __future__ import annotations

import time

from prefect.flow_engine import BaseFlowRunEngine

BaseFlowRunEngine.heartbeat_seconds = property(lambda self: None)  # type: ignore[assignment,method-assign]


def settle(timeout: float = 30.0, interval: float = 0.3) -> None:
    """Wait until reproflow has published the last run's Prefect artifacts and the temporary
    Prefect server (a child process) has worked off its event backlog (under 5% CPU), so no
    measured run pays for the one before it."""
    import psutil

    from reproflow._artifacts import wait_for_artifacts

    wait_for_artifacts(timeout)  # the last run's artifacts, published after its flow returned
    me = psutil.Process()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = me.children(recursive=True)
        for k in kids:
            try:
                k.cpu_percent(None)
            except psutil.Error:
                pass
        time.sleep(interval)
        busy = 0.0
        for k in kids:
            try:
                busy += k.cpu_percent(None)
            except psutil.Error:
                pass
        if busy < 5.0:
            return
