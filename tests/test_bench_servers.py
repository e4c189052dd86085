"""The flow benchmarks wait between measured runs for a real Prefect server on this machine
(bench/_servers.py): the process ``PREFECT_API_URL`` names by its loopback port is found."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("_bench_servers", Path(__file__).parents[1] / "bench" / "_servers.py")
assert _spec is not None and _spec.loader is not None
servers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(servers)

_LISTEN = """
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


def test_the_server_listening_on_the_urls_loopback_port_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _LISTEN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{port}/api")
        assert [p.pid for p in servers.local_server()] == [proc.pid]
        monkeypatch.setenv("PREFECT_API_URL", f"http://localhost:{port}/api")
        assert [p.pid for p in servers.local_server()] == [proc.pid]
        monkeypatch.setenv("PREFECT_API_URL", f"https://api.example.com:{port}/api")  # not this machine's
        assert servers.local_server() == []
    finally:
        proc.kill()
        proc.wait()
    monkeypatch.delenv("PREFECT_API_URL")  # the temporary server: a child, waited for as one
    assert servers.local_server() == []
