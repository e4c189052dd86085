"""bench/syscalls_file_tasks.py reads ``strace -c``'s summary: every call counted by its name,
with or without an errors column, and neither the header nor the total taken for a call."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("_bench_syscalls", Path(__file__).parents[1] / "bench" / "syscalls_file_tasks.py")
assert _spec is not None and _spec.loader is not None
syscalls = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(syscalls)

# the head and the end of a summary strace 6 wrote here (2026-12-04)
SUMMARY = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 90.89  127.262556         543    234043     49660 futex
  3.08    4.310700      331592        13           wait4
  2.33    3.257920     1628960         2         1 restart_syscall
  0.28    0.390707          23     16799      6443 newfstatat
  0.00    0.000012           6         2           close
------ ----------- ----------- --------- --------- ----------------
100.00  140.019211         530    264041     57355 total
"""


def test_each_call_is_counted_by_its_name() -> None:
    assert syscalls.counts(SUMMARY) == {"futex": 234043, "wait4": 13, "restart_syscall": 2, "newfstatat": 16799,
                                        "close": 2}


def test_the_kinds_printed_sum_the_names_of_one_call() -> None:
    assert "newfstatat" in syscalls.KINDS["stat"] and "statx" in syscalls.KINDS["stat"]
    assert "openat" in syscalls.KINDS["open"]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_a_real_summary_counts_the_calls_a_process_made(tmp_path: Path) -> None:
    out = tmp_path / "summary"
    code = ("import os\nfor _ in range(7):\n    try:\n        os.rmdir('/nonexistent-reproflow-dir')\n"
            "    except OSError:\n        pass\n")
    done = subprocess.run(["strace", "-f", "-c", "-o", str(out), sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()[:200]}")
    assert syscalls.counts(out.read_text())["rmdir"] == 7
