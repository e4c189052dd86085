"""What a dead store costs a flow: the same 20-task flow recorded to a live S3 store (moto on
loopback) and to one whose endpoint refuses connections, each in a fresh process.

    python bench/bench_dead_store.py [--tasks 20] [--repeats 3]

Prints, per variant, the median time from the flow call to its return and from its return to
the process exit (the Prefect artifacts are published in between), and the difference. Set
PREFECT_API_URL to a running server to leave out the temporary server's start.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

FLOW = textwrap.dedent('''
    import sys, time
    from prefect import flow
    from reproflow import repro_task

    @repro_task
    def step(i: int) -> int:
        return i + 1

    @flow
    def many(n: int) -> int:
        return sum(step(i) for i in range(n))

    if __name__ == "__main__":
        import atexit
        t0 = time.perf_counter()
        many(int(sys.argv[1]))
        t1 = time.perf_counter()
        atexit.register(lambda: print(f"{t1 - t0:.3f} {time.perf_counter() - t1:.3f}", flush=True))
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(folder: Path, env: dict[str, str], tasks: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "flow.py", str(tasks)], cwd=folder, env=env, capture_output=True,
                         text=True, timeout=900)
    last = out.stdout.strip().splitlines()[-1]
    flow_s, after_s = (float(x) for x in last.split())
    return flow_s, after_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    live = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=live, region_name="us-east-1", aws_access_key_id="k",
                 aws_secret_access_key="s").create_bucket(Bucket="bench")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connections are refused
    folder = Path(tempfile.mkdtemp(prefix="bench-dead-store-"))
    (folder / "flow.py").write_text(FLOW)
    base = {**os.environ, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1",
            "PREFECT_LOGGING_LEVEL": "ERROR", "REPROFLOW_CACHE_DIR": str(folder / "cache")}
    results: dict[str, list[tuple[float, float]]] = {"live S3": [], "dead S3 (refused)": []}
    try:
        for i in range(args.repeats):
            for name, endpoint in (("live S3", live), ("dead S3 (refused)", dead)):
                env = {**base, "AWS_ENDPOINT_URL_S3": endpoint, "REPROFLOW_STORE": f"s3://bench/r{i}",
                       "REPROFLOW_SPOOL_DIR": str(folder / f"spool-{i}")}
                results[name].append(run(folder, env, args.tasks))
    finally:
        server.stop()
    med = {k: (statistics.median(f for f, _ in v), statistics.median(a for _, a in v)) for k, v in results.items()}
    for name, (flow_s, after_s) in med.items():
        print(f"{name:20s} flow {flow_s:6.2f} s   return -> exit {after_s:5.2f} s   (median of {args.repeats}, {args.tasks} tasks)")
    d_flow = med["dead S3 (refused)"][0] - med["live S3"][0]
    d_after = med["dead S3 (refused)"][1] - med["live S3"][1]
    print(f"dead store costs: {d_flow:+.2f} s in the flow, {d_after:+.2f} s after it, {d_flow + d_after:+.2f} s in all")


if __name__ == "__main__":
    main()
