"""bench/_prefect_bench.py's meter of reproflow's own CPU: switched on for the runs that measure
it and off for the timed ones (bench_file_tasks.py), it must count every thread's CPU inside the
metered calls and, switched off, leave reproflow's own functions in place. Run in a subprocess:
the module patches Prefect's flow engine when imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_SCRIPT = r"""
import sys, threading, time
sys.path.insert(0, sys.argv[1])
import _prefect_bench as pb
from reproflow.recorder import _attempt

calls = []
def spin(values):  # stands in for the record's build: 30 ms of this thread's CPU
    calls.append(values)
    end = time.thread_time() + 0.03
    while time.thread_time() < end:
        pass
    return b""

# the meter wraps whatever is there the first time it is called
_attempt._encode_task_record = spin
pb.meter_reproflow(False)
assert _attempt._encode_task_record is spin
pb.meter_reproflow(True)
assert _attempt._encode_task_record is not spin
pb.reset_own_cpu()
threads = [threading.Thread(target=_attempt._encode_task_record, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert sorted(calls) == [0, 1, 2, 3], calls
own = pb.own_cpu()
assert 0.11 <= own < 0.5, own  # four threads' 30 ms each

pb.meter_reproflow(False)  # off: the function itself, and nothing more counted
assert _attempt._encode_task_record is spin
_attempt._encode_task_record("x")
assert pb.own_cpu() == own
pb.reset_own_cpu()
assert pb.own_cpu() == 0.0
pb.meter_reproflow(True)  # on again: the same wrapper
_attempt._encode_task_record("y")
assert pb.own_cpu() >= 0.025
print("ok")
"""


def test_the_meter_counts_every_threads_cpu_when_on_and_leaves_the_functions_alone_when_off() -> None:
    bench = Path(__file__).parents[1] / "bench"
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(bench)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
