"""Replay speed, as ratios measured in the same run.

    python bench/bench_replay.py [--pins 26] [--repeat 2] [--skip-replay | --replay-only] [--api URL] [--profile]

(a) Environment rebuild: reproflow's uv-based builder (``build_environment``: ``uv venv`` plus
    ``uv pip install --no-deps`` of exact pins from this machine's index) against
    ``python -m venv`` plus ``pip install --no-deps`` of the same pins, each into a fresh folder
    and each with its package cache warm after a first round. Target: uv >= 10x faster.
(b) Second replay: a small flow is recorded (temporary git repository, a real ``prefect server``
    on loopback), replayed once (the environment is built from the record) and again (the
    cached environment is reused). Reported: the time from calling ``replay()`` until the
    runner calls the flow (``timings["to_flow_call"]``), and what a user waits for: from
    starting the command ``reproflow replay RUN_ID --store URL`` (a new process, the
    environment cached) until the flow's body runs (the flow writes the time to a file), with
    ``PREFECT_API_URL`` set and without it (Prefect's temporary server, a new user's default),
    split into the command's own start, ``replay()`` to the flow call and the flow call to its
    body; each with the runner started early (the default, see ``reproflow.replay._warm``) and
    with ``REPROFLOW_EARLY_RUNNER=off`` (started after the checks, as before), alternating,
    ``--repeat`` rounds, medians. Target: <= 3 s for the second replay with PREFECT_API_URL set.

The pins are the first N pure-Python (``py3-none-any``) distributions of the running
environment, by name, so both installers fetch the same wheels from the same index.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SKIP = {"pip", "setuptools", "wheel", "reproflow"}


def pure_python_pins(n: int) -> list[tuple[str, str]]:
    """The first ``n`` installed py3-none-any distributions (name, version), sorted by name."""
    found: dict[str, tuple[str, str]] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name or name.lower() in SKIP or dist.read_text("direct_url.json"):
            continue
        wheel = dist.read_text("WHEEL") or ""
        tags = [ln.split(":", 1)[1].strip() for ln in wheel.splitlines() if ln.startswith("Tag:")]
        if tags and all(t.endswith("-none-any") for t in tags):
            found.setdefault(name.lower(), (name, dist.version))
    return [found[k] for k in sorted(found)][:n]


def bench_uv(pins: list[tuple[str, str]], root: Path, repeat: int) -> list[float]:
    """Seconds per fresh build with reproflow's builder (first round warms uv's cache)."""
    from reproflow.records import Distribution, Environment, PlatformInfo, PythonInfo
    from reproflow.replay._envbuild import build_environment
    from reproflow.replay._python import choose_interpreter
    from reproflow.replay._uv import find_uv, index_config
    from reproflow.store import Store

    env = Environment(
        python=PythonInfo(implementation=platform.python_implementation(), version=platform.python_version(),
                          executable=sys.executable, prefix=sys.prefix, base_prefix=sys.base_prefix),
        platform=PlatformInfo(system=platform.system(), release=platform.release(), machine=platform.machine()),
        distributions=[Distribution(name=n, version=v) for n, v in pins],
    )
    choice = choose_interpreter(platform.python_version(), candidates=[sys.executable])
    store, uv_bin, index = Store(root / "store"), find_uv(), index_config()
    times = []
    for i in range(repeat + 1):
        built = build_environment(env, environment_hash=f"sha256:bench-{i}", choice=choice, store=store,
                                  uv_bin=uv_bin, index=index, cache_root=root / "envs", work_dir=root / "work")
        assert not built.reused and built.n_pins == len(pins)
        times.append(built.seconds)
    return times


def bench_pip(pins: list[tuple[str, str]], root: Path, repeat: int) -> list[float]:
    """Seconds per ``python -m venv`` + ``pip install --no-deps`` of the pins (first round warms pip's cache)."""
    base = getattr(sys, "_base_executable", sys.executable)
    reqs = [f"{n}=={v}" for n, v in pins]
    times = []
    for i in range(repeat + 1):
        venv = root / f"pip-venv-{i}"
        t0 = time.perf_counter()
        subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True)
        proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--quiet", *reqs],
                              capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"pip install failed: {proc.stderr[-2000:]}")
        shutil.rmtree(venv, ignore_errors=True)
    return times


FLOW = textwrap.dedent(
    """
    import os
    import sys
    import time
    from pathlib import Path

    from prefect import flow

    from reproflow import repro_task


    @repro_task
    def load(path: Path) -> list:
        return [int(x) for x in path.read_text().split()]


    @repro_task
    def total(values: list) -> int:
        return sum(values)


    @flow
    def pipeline(data: Path) -> int:
        mark = os.environ.get("BENCH_FLOW_STARTED")
        if mark:  # the moment the flow body starts, for the command-level measurement
            Path(mark).write_text(repr(time.time()))
        return total(load(data))


    if __name__ == "__main__":
        pipeline(Path(sys.argv[1]))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _import_prefect(python: str, **env: str) -> float:
    """Median seconds of ``python -c 'import prefect'`` over three runs."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([python, "-c", "import prefect"], check=True, env={**os.environ, **env})
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _command_to_flow(reproflow_bin: str, run_id: str, store: Path, root: Path, with_api: bool,
                     early: bool = True) -> dict[str, float]:
    """Seconds from starting ``reproflow replay RUN_ID --store URL`` (a new process, the
    environment cached) until the replayed flow's body starts (it writes the time to a file),
    and its parts. ``with_api``: with ``PREFECT_API_URL`` set (a running server), else as a new
    user runs it, with no server (Prefect's temporary one). ``early``: the runner is started
    early (the default; ``REPROFLOW_EARLY_RUNNER=off`` starts it after the checks, as before)."""
    mark, work = root / "flow-started", root / "work"
    mark.unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    env = {**os.environ, "BENCH_FLOW_STARTED": str(mark)}
    env["REPROFLOW_EARLY_RUNNER"] = "on" if early else "off"
    if not with_api:
        env.pop("PREFECT_API_URL", None)
    t0 = time.time()
    proc = subprocess.run([reproflow_bin, "replay", run_id, "--store", str(store), "--json", "--work-dir", str(work)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not mark.exists():
        raise SystemExit(f"reproflow replay failed ({proc.returncode}): {proc.stderr[-2000:]}")
    body = float(mark.read_text())
    to_call = float(json.loads(proc.stdout)["timings"]["to_flow_call"])  # from replay() in that process
    called = float(json.loads((work / "result.json").read_text())["started_at"])  # the runner calls the flow
    return {"to_body": body - t0, "cli": called - to_call - t0, "replay_to_call": to_call, "call_to_body": body - called}


def bench_commands(reproflow_bin: str, run_id: str, store: Path, root: Path, repeat: int) -> dict[str, float]:
    """The command to the flow body, with and without a Prefect API, the runner started early
    and not (``REPROFLOW_EARLY_RUNNER=off``), alternating, ``repeat`` rounds each; medians.
    The first replay of each setting only warms (it leaves the hint the next one starts from)."""
    out: dict[str, float] = {}
    for with_api in (True, False):
        what = "PREFECT_API_URL set" if with_api else "no Prefect API (Prefect's temporary server)"
        _command_to_flow(reproflow_bin, run_id, store, root, with_api, early=True)
        rows: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for _ in range(repeat):
            for early in (False, True):
                rows[early].append(_command_to_flow(reproflow_bin, run_id, store, root, with_api, early))
        for early in (False, True):
            med = {k: statistics.median(r[k] for r in rows[early]) for k in rows[early][0]}
            label = "early runner" if early else "runner after the checks (REPROFLOW_EARLY_RUNNER=off)"
            print(f"    command, {what}, {label}: to the flow body {med['to_body']:.2f} s (median of {repeat}: "
                  f"{[round(r['to_body'], 2) for r in rows[early]]}); of which the command's start (Python, "
                  f"the CLI's imports) {med['cli']:.2f} s, replay() to the flow call {med['replay_to_call']:.2f} s "
                  f"(plan, checks, the runner's start: `import prefect`), the flow call to its body "
                  f"{med['call_to_body']:.2f} s (Prefect creating the flow run"
                  + ("" if with_api else ", the temporary server's start") + ")")
            out[f"command_{'api' if with_api else 'no_api'}_{'early' if early else 'late'}"] = med["to_body"]
        print(f"    load average now {os.getloadavg()[0]:.1f}")
    return out


def _cli_start(reproflow_bin: str) -> float:
    """Median seconds of ``reproflow --version`` over three runs: the command's own start."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([reproflow_bin, "--version"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_second_replay(root: Path, api: str | None = None, profile: bool = False, repeat: int = 3) -> dict[str, float]:
    """Record a flow, replay it twice; the time to the flow call and the env build of each.

    ``api``: a running Prefect API to use instead of starting a ``prefect server`` here.
    ``profile``: print the second replay's cProfile (this process) and the runner's import time.
    """
    import httpx

    home, repo, store = root / "prefect-home", root / "repo", root / "store"
    home.mkdir()
    repo.mkdir()
    port = _free_port()
    own_server = api is None
    api = api or f"http://127.0.0.1:{port}/api"
    quiet = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_LOGGING_LEVEL": "WARNING",
             "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore"}
    server_env = {**os.environ, **quiet, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false",
                  "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db"}
    server_env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=server_env, stdout=log, stderr=subprocess.STDOUT) \
        if own_server else None
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or (server is not None and server.poll() is not None):
                raise SystemExit("prefect server did not start: " + (home / "server.log").read_text()[-2000:])
            time.sleep(0.5)
        (repo / "flow.py").write_text(FLOW)
        (root / "in.txt").write_text("3 1 4 1 5 9 2 6\n")
        git = ["git", "-c", "user.email=b@example.org", "-c", "user.name=b"]
        subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
        subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
        subprocess.run([*git, "commit", "-qm", "bench"], cwd=repo, check=True)
        os.environ.update(quiet)
        os.environ["PREFECT_API_URL"] = api
        os.environ["REPROFLOW_CACHE_DIR"] = str(root / "cache")
        env = {**os.environ, "REPROFLOW_STORE": str(store)}
        subprocess.run([sys.executable, "flow.py", str(root / "in.txt")], cwd=repo, env=env, check=True,
                       capture_output=True, timeout=600)
        from reproflow.replay import replay
        from reproflow.store import Store

        (run_id,) = Store(store).run_ids()
        out: dict[str, float] = {}
        for label in ("first", "second"):
            if profile and label == "second":
                import cProfile
                import pstats

                prof = cProfile.Profile()
                result = prof.runcall(replay, run_id, str(store))
                print("    second replay, this process (cProfile, top 15 by cumulative time):")
                pstats.Stats(prof).sort_stats("cumulative").print_stats(15)
            else:
                result = replay(run_id, str(store))
            if not result.reproduced:
                raise SystemExit(f"{label} replay did not reproduce: {result.model_dump_json(indent=1)[-3000:]}")
            assert result.environment is not None
            out[f"{label}_to_flow_call"] = result.timings["to_flow_call"]
            out[f"{label}_environment"] = result.timings["environment"]
            out[f"{label}_total"] = result.timings["total"]
            out[f"{label}_reused"] = float(result.environment.reused)
            out["n_pins"] = float(result.environment.n_pins)
            if label == "second":
                print(f"    second replay timings (s): {result.timings}")
                out["import_prefect"] = _import_prefect(result.environment.python)
                # The same import with the bytecode out of reach (an empty pycache prefix, nothing
                # written): what every replay paid before environments were compiled at build time.
                with tempfile.TemporaryDirectory() as empty:
                    out["import_prefect_source"] = _import_prefect(
                        result.environment.python, PYTHONPYCACHEPREFIX=empty, PYTHONDONTWRITEBYTECODE="1")
                site = Path(result.environment.path or "") / "venv"
                out["pyc_files"] = float(sum(1 for _ in site.rglob("*.pyc")))
                if profile:
                    imp = subprocess.run([result.environment.python, "-X", "importtime", "-c", "import prefect, reproflow"],
                                         capture_output=True, text=True)
                    rows = [ln.split("|") for ln in imp.stderr.splitlines() if ln.startswith("import time:") and "|" in ln]
                    top = sorted(((int(r[1]), r[2].rstrip()) for r in rows[1:] if r[1].strip().isdigit()), reverse=True)[:8]
                    print("    runner imports in the environment (-X importtime, cumulative us):", top)
        reproflow_bin = str(Path(sys.executable).with_name("reproflow"))
        out.update(bench_commands(reproflow_bin, run_id, store, root, repeat))
        out["command_api"], out["command_no_api"] = out["command_api_early"], out["command_no_api_early"]
        out["cli_start"] = _cli_start(reproflow_bin)
        return out
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pins", type=int, default=26)
    parser.add_argument("--repeat", type=int, default=2, help="measured rounds after the cache-warming one")
    parser.add_argument("--skip-replay", action="store_true", help="only the environment-build comparison")
    parser.add_argument("--replay-only", action="store_true", help="only the second-replay measurement")
    parser.add_argument("--api", help="a running Prefect API URL (default: start a `prefect server` here)")
    parser.add_argument("--profile", action="store_true", help="profile the second replay")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    try:
        pins = pure_python_pins(args.pins)
        if args.replay_only:
            args.skip_replay = False
        else:
            bench_build(pins, root, args.repeat)
        if not args.skip_replay:
            (root / "replay").mkdir()
            r = bench_second_replay(root / "replay", args.api, args.profile, max(args.repeat, 1))
            print(f"(b) replay of a recorded 2-task flow (environment of {int(r['n_pins'])} distributions, "
                  f"{int(r['pyc_files'])} .pyc files after the build)")
            print(f"    first replay:  environment {r['first_environment']:.2f} s (built), to flow call "
                  f"{r['first_to_flow_call']:.2f} s, total {r['first_total']:.2f} s")
            print(f"    second replay: environment {r['second_environment']:.2f} s "
                  f"({'reused' if r['second_reused'] else 'REBUILT'}), to flow call {r['second_to_flow_call']:.2f} s, "
                  f"total {r['second_total']:.2f} s")
            print(f"    `import prefect` there: {r['import_prefect']:.2f} s with the build's bytecode, "
                  f"{r['import_prefect_source']:.2f} s from source (uncompiled, as before): "
                  f"{r['import_prefect_source'] / r['import_prefect']:.2f}x; load average {os.getloadavg()[0]:.1f}")
            print(f"    `reproflow replay RUN_ID --store URL` (a new process) to the flow body: "
                  f"{r['command_api']:.2f} s with PREFECT_API_URL set ({r['command_api_late']:.2f} s with the runner "
                  f"started after the checks), {r['command_no_api']:.2f} s without ({r['command_no_api_late']:.2f} s); "
                  f"target <= 3 s: {'PASS' if r['command_api'] <= 3 else 'FAIL'}; "
                  f"`reproflow --version` alone {r['cli_start']:.2f} s; load average {os.getloadavg()[0]:.1f} "
                  f"(cores: {os.cpu_count()})")
            print(f"    second replay reaches the flow call in {r['second_to_flow_call']:.2f} s; target <= 3 s: "
                  f"{'PASS' if r['second_to_flow_call'] <= 3 else 'FAIL'}; first/second to flow call "
                  f"{r['first_to_flow_call'] / r['second_to_flow_call']:.1f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_build(pins: list[tuple[str, str]], root: Path, repeat: int) -> None:
    """(a): reproflow's uv builder against python -m venv + pip, printed as a ratio."""
    print(f"(a) environment rebuild of {len(pins)} exact pins, {repeat} warm rounds after one warm-up")
    uv_t = bench_uv(pins, root / "uv", repeat)
    pip_t = bench_pip(pins, root / "pip", repeat)
    uv_warm, pip_warm = statistics.median(uv_t[1:]), statistics.median(pip_t[1:])
    print(f"    uv (reproflow builder): first {uv_t[0]:.2f} s, warm median {uv_warm:.2f} s  {[round(t, 2) for t in uv_t]}")
    print(f"    python -m venv + pip:   first {pip_t[0]:.2f} s, warm median {pip_warm:.2f} s  {[round(t, 2) for t in pip_t]}")
    ratio = pip_warm / uv_warm
    print(f"    ratio pip/uv (warm): {ratio:.1f}x  (first round: {pip_t[0] / uv_t[0]:.1f}x)  target >= 10x: "
          f"{'PASS' if ratio >= 10 else 'FAIL'}")


if __name__ == "__main__":
    main()
