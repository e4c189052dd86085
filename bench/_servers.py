"""The processes of a real Prefect server on this machine, which the flow benchmarks wait for
between measured runs (``_prefect_bench.settle``). Apart from ``_prefect_bench``, which patches
Prefect when imported, so a test can import it."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import psutil


def local_server() -> list[psutil.Process]:
    """The processes of a real Prefect server on this machine that ``PREFECT_API_URL`` names
    (``--api-url``; the one listening on its loopback port, and its children), which ``settle``
    waits for as it does for the temporary server: it is not a child of this process, and a run
    that starts while it still writes the last run's events is slowed by it (against
    ``prefect server start`` here, single walls of 0.6 s and 7 s for the same flow). Empty for
    a temporary server, a remote one, or where the listening process cannot be seen."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return []
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1") or parts.port is None:
        return []
    try:
        pids = {c.pid for c in psutil.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == parts.port and c.pid}
        procs = [psutil.Process(pid) for pid in pids if pid != os.getpid()]
        return procs + [kid for p in procs for kid in p.children(recursive=True)]
    except psutil.Error:
        return []


__all__ = ["local_server"]
