"""Start the replay's runner early, so that its slow start overlaps the replay's own work.

A second replay spends most of its time before the flow's body in starting the runner: a new
Python in the rebuilt environment importing Prefect (about 1 s on an idle machine). That start
does not depend on the checks, so it is begun early and the runner then waits (see
``_runner.wait``): it imports Prefect and reproflow's recorder, and nothing of the recorded code,
until the parent sends it the spec, which the parent does only once every check has passed
(the code restored, every input verified by its hash, the environment found). Without a
Prefect API it starts Prefect's temporary server meanwhile, as the flow's first call would.
If the replay stops before, the runner's stdin closes and it ends having run nothing (its
server with it).

Two moments to start it:

- :func:`speculate`, first thing in ``reproflow replay`` (before the CLI imports the record
  models and the store): from a hint that the previous replay of the same run id and store left
  in the cache (the environment's interpreter and the variables its runner starts with). The
  hint is only a guess: the runner is used only if the plan finds the same interpreter and the
  same start environment, else it is stopped and a runner is started as before.
- :func:`start`, in :func:`reproflow.replay.replay` after the plan, when the environment is
  cached: it overlaps the restore and the input hashing.

Only the standard library is imported here: this module is loaded before anything else.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Optional

RUNNER_NAME = "reproflow_replay_runner.py"
#: variables the runner is given only with the spec: reproflow reads them when the run needs
#: them, never when it is imported (``recorder._runs.REPLAY_MAKE_DIRS_ENV``)
LATE_ENV = ("REPROFLOW_REPLAY_MAKE_DIRS",)
#: what the waiting runner imports of a Prefect flow's run: Prefect and reproflow's Prefect recorder
PREFECT_FLOW_MODULES = ("prefect", "reproflow.engines.prefect._task")
HINT_VERSION = 1
#: where Prefect persists task results: a folder of the replay's own (the work folder's, or the
#: early runner's until it joins the work folder), so two starts differ in it and nothing else
RESULTS_ENV = "PREFECT_RESULTS_LOCAL_STORAGE_PATH"
#: ``off`` (or 0, no, false): never start a runner early (what replays did before; for measuring)
SWITCH_ENV = "REPROFLOW_EARLY_RUNNER"


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "").strip().lower() not in ("0", "off", "no", "false")


def cache_base(environ: Optional[dict[str, str]] = None) -> Path:
    """``$REPROFLOW_CACHE_DIR``, default ``~/.cache/reproflow``."""
    env = os.environ if environ is None else environ
    return Path(env.get("REPROFLOW_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "reproflow"))


def runner_environ(python: str, *, in_place: bool, store_url: str, replay_of: str, seed: Optional[int],
                   pythonhashseed: Optional[str], make_dirs: Optional[list[str]] = None,
                   results_dir: Optional[Path] = None, base: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The runner's environment: this process's, with the rebuilt environment first on PATH,
    the store and the original run named, the recorded seeds, and Prefect's result cache off
    (``results_dir``: where Prefect persists results, a folder of the replay's own)."""
    env = dict(os.environ if base is None else base)
    for var in ("VIRTUAL_ENV", "PYTHONHOME", "__PYVENV_LAUNCHER__", "PYTHONSTARTUP"):
        env.pop(var, None)
    if not in_place:
        env.pop("PYTHONPATH", None)
        env["VIRTUAL_ENV"] = str(Path(python).parent.parent)
        env["PATH"] = str(Path(python).parent) + os.pathsep + env.get("PATH", "")
    env["REPROFLOW_STORE"] = store_url
    env["REPROFLOW_REPLAY_OF"] = replay_of
    if make_dirs:
        env[LATE_ENV[0]] = json.dumps(make_dirs)
    else:
        env.pop(LATE_ENV[0], None)
    # a replay started inside `reproflow record -- CMD` is a run of its own, not part of that one
    env.pop("REPROFLOW_RUN_ID", None)
    env["PYTHONUNBUFFERED"] = "1"
    # Prefect's temporary server (no PREFECT_API_URL) gives up after 20 s on a busy machine.
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # A task with a cache policy (``cache_policy=INPUTS``, ``cache_key_fn``, reproflow.CONTENT)
    # would be served the result the recorded run stored, and the replay would compare the record
    # with itself: every task runs again (the result is written again under its key), and what
    # Prefect persists goes to the work folder, not to the user's ~/.prefect/storage.
    env["PREFECT_TASKS_REFRESH_CACHE"] = "true"
    if results_dir is not None:
        env[RESULTS_ENV] = str(results_dir)
    if seed is not None:
        env["REPROFLOW_SEED"] = str(seed)
    else:
        env.pop("REPROFLOW_SEED", None)
    if pythonhashseed is not None:
        env["PYTHONHASHSEED"] = pythonhashseed
    return env


@dataclass
class Warm:
    """A runner started early, waiting for its spec on stdin."""

    python: str
    env: dict[str, str]
    modules: tuple[str, ...]
    folder: Path
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    used: bool = False

    @property
    def log_path(self) -> Path:
        return self.folder / "runner.log"

    @property
    def results_dir(self) -> Path:
        return self.folder / "prefect-results"

    def go(self, spec: Path, env: dict[str, str]) -> bool:
        """Hand the runner its spec (the checks passed) and the late variables of ``env``; False
        (the runner stopped) when ``env`` differs from its start in anything else."""
        if not _same_start(env, self.env):
            self.stop()
            return False
        order = {"spec": str(spec), "env": {k: env.get(k) for k in LATE_ENV}}
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps(order) + "\n").encode())
            self.proc.stdin.close()
        except (OSError, ValueError):  # it died early: a runner started now does the work
            self.stop()
            return False
        self.used = True
        return True

    def stop(self) -> None:
        """End the runner if it has not been handed a spec: closing its stdin ends it, having
        run nothing; kill it if it does not end at once. Its folder goes with it."""
        if not self.used:
            try:
                if self.proc.stdin is not None and not self.proc.stdin.closed:
                    self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.close()

    def close(self) -> None:
        try:
            self.log.close()
        except OSError:
            pass
        if not self.used:
            shutil.rmtree(self.folder, ignore_errors=True)


_pending: list[Warm] = []


def start(python: str, env: dict[str, str], modules: tuple[str, ...] = PREFECT_FLOW_MODULES) -> Optional[Warm]:
    """Start a runner with ``python`` and ``env`` that imports ``modules`` and waits; None when
    it cannot be started (the replay then starts its runner after the checks, as before)."""
    if not enabled() or not os.path.isfile(python):
        return None
    folder = Path(tempfile.mkdtemp(prefix="reproflow-runner-"))
    env = {**env, RESULTS_ENV: str(folder / "prefect-results")}
    runner = folder / RUNNER_NAME
    try:
        shutil.copyfile(Path(__file__).with_name("_runner.py"), runner)
        log = open(folder / "runner.log", "wb")
        proc = subprocess.Popen([python, str(runner), "--wait", *modules], stdin=subprocess.PIPE, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=str(folder))
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    warm = Warm(python, dict(env), tuple(modules), folder, proc, log)
    _pending.append(warm)
    return warm


def claim(python: str, modules: tuple[str, ...]) -> Optional[Warm]:
    """The waiting runner of ``python`` that imported ``modules``, if one was started; every
    other waiting runner is stopped."""
    found = None
    for warm in list(_pending):
        _pending.remove(warm)
        if found is None and warm.python == python and warm.modules == modules and warm.proc.poll() is None:
            found = warm
        else:
            warm.stop()
    return found


def _same_start(a: dict[str, str], b: dict[str, str]) -> bool:
    late = {*LATE_ENV, RESULTS_ENV}
    return {k: v for k, v in a.items() if k not in late} == {k: v for k, v in b.items() if k not in late}


def ensure(python: str, env: dict[str, str], modules: tuple[str, ...]) -> Optional[Warm]:
    """A waiting runner of ``python`` started with ``env`` (but its late variables) that imports
    ``modules``: the one started early from a hint when it matches, else a new one. Waiting
    runners that do not match are stopped."""
    found = None
    for warm in list(_pending):
        if (found is None and warm.python == python and warm.modules == modules and _same_start(warm.env, env)
                and warm.proc.poll() is None):
            found = warm
        else:
            _pending.remove(warm)
            warm.stop()
    return found or start(python, env, modules)


def stop_all() -> None:
    """Stop every runner that was started early and not handed a spec."""
    while _pending:
        _pending.pop().stop()


atexit.register(stop_all)


# --- the hint: what the previous replay of the same run id and store started its runner with


def _hint_path(run_id: str, store: Optional[str], cache_dir: Optional[str] = None) -> Path:
    where = store or os.environ.get("REPROFLOW_STORE") or ".reproflow"
    if "://" not in where:
        where = os.path.abspath(where)
    key = hashlib.sha256(json.dumps([where, run_id]).encode()).hexdigest()[:32]
    base = Path(cache_dir) if cache_dir else cache_base()
    return base / "replay-hints" / f"{key}.json"


def save_hint(run_id: str, store: Optional[str], *, python: str, in_place: bool, store_url: str, replay_of: str,
              seed: Optional[int], pythonhashseed: Optional[str], modules: tuple[str, ...],
              cache_dir: Optional[str] = None) -> None:
    """Remember how the runner of this replay starts, for :func:`speculate` next time. Never
    fails the replay: a hint that cannot be written is only a slower next start."""
    hint = {"version": HINT_VERSION, "python": python, "in_place": in_place, "store_url": store_url,
            "replay_of": replay_of, "seed": seed, "pythonhashseed": pythonhashseed, "modules": list(modules)}
    path = _hint_path(run_id, store, cache_dir)
    try:
        if path.is_file() and json.loads(path.read_text()) == hint:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(hint))
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass


def speculate(run_id: str, store: Optional[str], *, in_place: bool = False,
              cache_dir: Optional[str] = None) -> Optional[Warm]:
    """Start the runner that the previous replay of ``run_id`` from ``store`` used, before this
    replay has read anything: from its hint, when there is one. The replay uses it only if its
    plan agrees (:func:`claim` and :meth:`Warm.go`)."""
    try:
        hint: dict[str, Any] = json.loads(_hint_path(run_id, store, cache_dir).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(hint, dict) or hint.get("version") != HINT_VERSION or bool(hint.get("in_place")) != in_place:
        return None
    try:
        python = sys.executable if in_place else str(hint["python"])
        env = runner_environ(python, in_place=in_place, store_url=str(hint["store_url"]),
                             replay_of=str(hint["replay_of"]), seed=hint.get("seed"),
                             pythonhashseed=hint.get("pythonhashseed"))
        modules = tuple(str(m) for m in hint["modules"])
    except (KeyError, TypeError, ValueError):
        return None
    return start(python, env, modules)


__all__ = ["LATE_ENV", "PREFECT_FLOW_MODULES", "Warm", "cache_base", "claim", "ensure", "runner_environ",
           "save_hint", "speculate", "start", "stop_all"]
