"""Runs a recorded flow again, inside the rebuilt environment. Started as a script.

``python _runner.py SPEC.json`` with the rebuilt venv's interpreter (or the current one for
``--in-place``). The spec (written by :mod:`reproflow.replay._execute`) says where the restored
code is, what to call and with which typed parameters. The runner:

1. puts the restored code first on ``sys.path`` (as ``python flow.py`` would have);
2. imports the recorded entrypoint from the restored files (never from the user's tree);
3. decodes the recorded parameters with ``reproflow.values._typed.from_typed_json`` (no ``eval``),
   after the flow's module is imported: instances of classes defined in a flow script run as
   ``python flow.py`` (recorded under ``__main__``) are rebuilt from that script, and hash as
   they did when recorded;
4. calls the flow (``return_state=True``); or for a replay task by task (``--engine tasks``,
   ``--task``, ``--from``) calls each chosen task's function in DAG order, recording each call
   (no orchestrator is imported), feeding upstream values from the spec; or for a plain
   run runs its script again (``reproflow.record()``) or calls its one task again with its
   recorded arguments (a ``@repro_task`` called outside any flow);
5. writes the new run id and final state to the result file named in the spec.

``REPROFLOW_STORE`` and ``REPROFLOW_REPLAY_OF`` are set by the parent, so the run is recorded as
usual, linked to the original. Only the standard library is imported at module level: the rest
comes from the rebuilt environment.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import json
import os
import pickle
import runpy
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from typing import Any


def _reproflow(*names: str) -> Any:
    """The first of ``names`` (modules of reproflow) that the reproflow in this environment
    has: the replayed run may have been recorded by a reproflow from before or after its
    modules moved into layer packages."""
    for name in names[:-1]:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return importlib.import_module(names[-1])


def _write(path: str, data: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _prepare_path(spec: dict[str, Any]) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    extra = [p for p in spec.get("sys_path", []) if p]
    sys.path[:0] = extra


def _load_entry_module(spec: dict[str, Any]) -> Any:
    """The module holding the flow, loaded from the restored source."""
    entry = spec.get("entry_file")
    module_name = spec.get("module_name")
    if spec.get("main_module"):
        # ran as ``python -m NAME``: imported as NAME (its relative imports need the package),
        # its classes hashed as ``__main__``'s were
        _reproflow("reproflow.values._valuehash", "reproflow._valuehash").mark_script_module(spec["main_module"])
    if module_name:
        try:
            mod = importlib.import_module(module_name)
        except ImportError:
            mod = None
        if mod is not None and (not entry or _same_file(getattr(mod, "__file__", None), entry)):
            if spec.get("main_module"):
                _stand_as_main(mod, script=False)
            return mod
    if not entry:
        raise RuntimeError("the run records neither an entrypoint file nor an importable module")
    name = spec.get("load_as") or "__reproflow_replay__"
    file_spec = importlib.util.spec_from_file_location(name, entry)
    if file_spec is None or file_spec.loader is None:
        raise RuntimeError(f"cannot import {entry}")
    if not module_name:
        # The flow ran as a script (``python flow.py``): its classes were ``__main__``'s then.
        _reproflow("reproflow.values._valuehash", "reproflow._valuehash").mark_script_module(name)
    mod = importlib.util.module_from_spec(file_spec)
    sys.modules[name] = mod
    file_spec.loader.exec_module(mod)
    if not module_name:
        _stand_as_main(mod, script=True)
    return mod


def _stand_as_main(mod: Any, *, script: bool) -> None:
    """Make ``mod``, imported under another name, the ``__main__`` it was when recorded.

    A script run as ``python flow.py`` (or ``python -m NAME``) defined its classes and functions
    in ``__main__``, and whatever names them by module said so: a model pickled to a file
    (``pickle``, ``torch.save``, joblib) holds ``__main__.MeanModel``. Imported here under
    another name, the same code wrote another module's name into the same file, and the replay
    said the output differed. Once the module has run (its ``if __name__ == "__main__":`` part
    skipped), its classes and functions are named ``__main__``'s, the module is
    ``sys.modules["__main__"]`` (pickle checks the name leads back to the same object, and
    loading the recorded pickle finds the class), and for a script, its globals' ``__name__``
    is ``__main__`` too (a class a task makes later, a ``namedtuple`` say, takes it from there)
    and its ``__spec__`` None, as a script's is. The runner's own functions keep their globals.
    """
    old = mod.__name__
    seen: set[int] = set()

    def rename(ns: dict[str, Any]) -> None:
        for value in list(ns.values()):
            if id(value) in seen or getattr(value, "__module__", None) != old:
                continue
            seen.add(id(value))
            if isinstance(value, type) or inspect.isfunction(value):
                try:
                    value.__module__ = "__main__"
                except (AttributeError, TypeError):  # a C type's, or a frozen one's: left as it is
                    continue
                if isinstance(value, type):
                    rename(dict(vars(value)))

    rename(vars(mod))
    if script:
        mod.__name__ = "__main__"
        mod.__spec__ = None
    sys.modules["__main__"] = mod


def _same_file(a: str | None, b: str) -> bool:
    if not a:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _lookup(obj: Any, qualname: str) -> Any:
    for part in qualname.split("."):
        if part == "<locals>":
            raise RuntimeError(f"{qualname} is defined inside a function and cannot be imported")
        obj = getattr(obj, part)
    return obj


def _decode(name: str, typed: Any, where: str) -> Any:
    """A recorded parameter rebuilt, or a clear error naming what cannot be."""
    typed_json = _reproflow("reproflow.values._typed", "reproflow._values")
    value = typed_json.from_typed_json(typed)
    bad = typed_json.find_opaque(value)
    if bad is not None:
        raise RuntimeError(f"parameter {name!r} of {where} cannot be rebuilt: {bad.type_name}: {bad.text}")
    return value


def _run_flow(spec: dict[str, Any], result: dict[str, Any]) -> int:
    mod = _load_entry_module(spec)  # first: the parameters may be instances of its classes
    where = f"flow {spec.get('flow_name')!r}"
    params = {k: _decode(k, v, where) for k, v in spec.get("parameters", {}).items()}
    flow_obj = _lookup(mod, spec["callable"])
    result["started_at"] = time.time()
    _write(spec["result_file"], result)
    state = flow_obj(**params, return_state=True)
    if inspect.isawaitable(state):  # an async flow: calling it made the coroutine
        state = asyncio.run(_awaited(state))
    result["run_id"] = str(state.state_details.flow_run_id) if state.state_details.flow_run_id else None
    result["state"] = state.type.value
    result["message"] = state.message
    return 0


def _run_script(spec: dict[str, Any], result: dict[str, Any]) -> int:
    """A plain-Python run: execute the recorded script as ``__main__`` with its recorded argv."""
    entry = spec["entry_file"]
    sys.argv = [entry, *spec.get("argv", [])[1:]]
    result["started_at"] = time.time()
    _write(spec["result_file"], result)
    try:
        if spec.get("main_module"):  # ``python -m NAME``: run as a module of its package again
            runpy.run_module(spec["main_module"], run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(entry, run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        result["state"] = "COMPLETED" if code == 0 else "FAILED"
        result["message"] = f"exit {code}"
        return 0
    result["state"] = "COMPLETED"
    return 0


def _run_call(spec: dict[str, Any], result: dict[str, Any]) -> int:
    """A plain run of one ``@repro_task`` called outside any flow: call it again, outside any
    flow, with its recorded arguments (it records a one-task run of its own, as it did)."""
    mod = _load_entry_module(spec)
    task_obj = _lookup(mod, spec["callable"])
    fn = getattr(task_obj, "user_fn", task_obj)
    where = f"task {spec['callable']!r}"
    arguments = {k: _decode(k, v, where) for k, v in spec.get("parameters", {}).items()}
    bound = inspect.BoundArguments(inspect.signature(fn), arguments)  # type: ignore[arg-type]
    result["started_at"] = time.time()
    _write(spec["result_file"], result)
    try:
        value = task_obj(*bound.args, **bound.kwargs)
        if inspect.isawaitable(value):
            asyncio.run(_awaited(value))
    except Exception as exc:  # noqa: BLE001 - the task's failure is recorded; the verdict reports it
        result["state"], result["message"] = "FAILED", f"{type(exc).__name__}: {exc}"
        return 0
    result["state"] = "COMPLETED"
    return 0


async def _awaited(value: Any) -> Any:
    return await value


_scripts: dict[str, Any] = {}


def _load_script(path: str) -> Any:
    """A script whose functions were recorded under ``__main__`` (run as ``python step.py``),
    imported from its restored file once; its ``if __name__ == "__main__":`` part does not run,
    and its classes hash as ``__main__``'s did."""
    if path not in _scripts:
        name = f"__reproflow_script_{len(_scripts)}__"
        file_spec = importlib.util.spec_from_file_location(name, path)
        if file_spec is None or file_spec.loader is None:
            raise ImportError(f"cannot import {path}")
        _reproflow("reproflow.values._valuehash", "reproflow._valuehash").mark_script_module(name)
        mod = importlib.util.module_from_spec(file_spec)
        sys.modules[name] = mod
        file_spec.loader.exec_module(mod)
        _scripts[path] = mod
    return _scripts[path]


def _task_object(mod: Any, spec: dict[str, Any], item: dict[str, Any]) -> Any:
    """The recorded task's object: ``module:qualname`` from the restored code (the flow's module
    when it ran as a script), else from the function's recorded source file."""
    module, _, qualname = str(item["function"]).partition(":")
    path = item.get("function_file")
    if module == "__main__" and path and (mod is None or not _same_file(getattr(mod, "__file__", None), path)):
        return _lookup(_load_script(path), qualname)  # a script other than the run's entrypoint
    if mod is not None and module in ("__main__", spec.get("module_name"), spec.get("load_as")):
        return _lookup(mod, qualname)
    try:
        return _lookup(importlib.import_module(module), qualname)
    except (ImportError, AttributeError):
        if not path or module == "__main__":
            raise
    # a module not importable by its name from sys.path (an Airflow DAG folder, whose files
    # Airflow imports under names of its own; a Snakemake rule's script): load it from its
    # restored file under its recorded name, its folder on sys.path for the modules beside it
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.append(folder)
    file_spec = importlib.util.spec_from_file_location(module, path)
    if file_spec is None or file_spec.loader is None:
        raise ImportError(f"cannot import {module} from {path}")
    loaded = importlib.util.module_from_spec(file_spec)
    sys.modules[module] = loaded
    file_spec.loader.exec_module(loaded)
    return _lookup(loaded, qualname)


def _unwrap(obj: Any) -> tuple[Any, Any]:
    """(the user's function, reproflow's task spec or None) behind a recorded task object.

    A ``@repro_task`` keeps its spec (declared inputs and outputs, options); an engine's task
    object keeps the function as ``fn`` (Prefect), ``function`` (Airflow's TaskFlow decorator)
    or ``python_callable``; a reproflow wrapper made with functools.wraps keeps ``__wrapped__``.
    The user's own decorators are kept: only engine and reproflow wrappers are taken off.
    """
    seen: set[int] = set()
    while id(obj) not in seen:
        seen.add(id(obj))
        rf = getattr(obj, "_rf_spec", None)
        if rf is not None and callable(getattr(rf, "fn", None)):
            return rf.fn, rf
        if inspect.isfunction(obj) or inspect.ismethod(obj):
            inner = getattr(obj, "__wrapped__", None)
            if inner is not None and str(getattr(obj, "__module__", "")).startswith("reproflow."):
                obj = inner
                continue
            return obj, None
        for attr in ("fn", "function", "python_callable"):
            inner = getattr(obj, attr, None)
            if callable(inner):
                obj = inner
                break
        else:
            return obj, None
    return obj, None


def _recorder() -> Any:
    """reproflow's engine-neutral attempt recorder in this environment: (_Attempt, _Spec,
    RecordOptions, declare), wherever this reproflow keeps them."""
    attempt = _reproflow("reproflow.recorder._attempt", "reproflow._task")
    declaring = _reproflow("reproflow.recorder._declare", "reproflow._declare")
    return attempt._Attempt, attempt._Spec, attempt.RecordOptions, declaring.declare


def _call(fn: Any, kwargs: dict[str, Any]) -> Any:
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise RuntimeError(f"{getattr(fn, '__qualname__', fn)} is a generator: it cannot be replayed task by task; "
                           "replay the run with --engine prefect")
    value = fn(**kwargs)
    if inspect.isawaitable(value):
        value = asyncio.run(_awaited(value))
    return value


def _record_call(run: Any, item: dict[str, Any], obj: Any, kwargs: dict[str, Any],
                 upstream: dict[str, list[str]]) -> Any:
    """Call the task's function once per allowed attempt, recording each attempt as the original
    was recorded (its name, function, map index, declared inputs and outputs)."""
    import dataclasses

    _Attempt, _Spec, RecordOptions, declare = _recorder()
    fn, rf = _unwrap(obj)
    signature = inspect.signature(fn)
    if rf is not None:
        spec = dataclasses.replace(rf, function=item["function"])
    else:
        names = set(signature.parameters) | {"return"}
        spec = _Spec(fn=fn, decl=declare(fn, [n for n in item.get("inputs", []) if n in names],
                                         [n for n in item.get("outputs", []) if n in names]),
                     opts=RecordOptions(), signature=signature, function=item["function"])
    retries = int(getattr(obj, "retries", 0) or 0) if rf is not None else 0
    task_run_id = str(uuid.uuid4())
    item["new_task_run_id"] = task_run_id  # also when it fails: the replay pairs the failed call
    for attempt in range(1, retries + 2):
        rec = _Attempt(spec, (), kwargs, run_id=run.run_id, task_run_id=task_run_id, attempt=attempt,
                       task_name=item["task_name"], task_key=item.get("task_key") or item["task_name"],
                       upstream={**run.upstream_of(kwargs), **upstream}, engine="plain",
                       tags=item.get("tags") or [], map_index=item.get("map_index"), subflow=item.get("subflow"))
        rec.begin()
        try:
            value = _call(fn, kwargs)
        except Exception as exc:
            rec.failure(exc)
            if attempt <= retries:
                continue
            raise
        rec.success(value)
        run.remember(value, task_run_id)
        return value
    raise AssertionError("unreachable")  # pragma: no cover


def _run_command(run: Any, item: dict[str, Any], cwd: str | None) -> None:
    """A task with no function (a shell rule): run its recorded command again, its recorded
    input files hashed before and its output files after, as one recorded attempt."""
    import subprocess

    _Attempt, _Spec, RecordOptions, _declare = _recorder()
    Declaration = _reproflow("reproflow.recorder._declare", "reproflow._declare").Declaration  # noqa: N806

    io = item.get("command_io") or {"inputs": {}, "outputs": {}}
    values: dict[str, Any] = {}
    for which in ("inputs", "outputs"):
        for name, paths in io[which].items():
            values[name] = paths[0] if len(paths) == 1 else list(paths)
    command = item["command"]
    env, scratch = None, None
    if isinstance(command, list) and command[:1] == ["{replay-python}"]:  # _plan.REPLAY_PYTHON
        # a command the replay built (a Snakemake job): this environment's Python; what the
        # engine's own hooks record again goes to a scratch store, not the user's
        command = [sys.executable, *command[1:]]
        scratch = tempfile.mkdtemp(prefix="reproflow-nested-")
        env = {k: v for k, v in os.environ.items() if k != "REPROFLOW_RUN_ID"}
        env["REPROFLOW_STORE"] = os.path.join(scratch, "store")

    def run_command(**_files: Any) -> None:
        try:
            proc = subprocess.run(command, shell=isinstance(command, str), cwd=cwd or None, check=False, env=env)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        if proc.returncode != 0:
            raise RuntimeError(f"the command exited {proc.returncode}: {command}")

    params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in values]
    spec = _Spec(fn=run_command, decl=Declaration(frozenset(io["inputs"]), frozenset(io["outputs"]),
                                                  tuple(values), None),
                 opts=RecordOptions(check=False), signature=inspect.Signature(params), function=item.get("function") or "")
    task_run_id = str(uuid.uuid4())
    item["new_task_run_id"] = task_run_id
    rec = _Attempt(spec, (), values, run_id=run.run_id, task_run_id=task_run_id, attempt=1,
                   task_name=item["task_name"], task_key=item.get("task_key") or item["task_name"],
                   upstream={}, engine="plain", tags=item.get("tags") or [], map_index=item.get("map_index"),
                   subflow=item.get("subflow"))
    rec.begin()
    try:
        run_command(**values)
    except Exception as exc:
        rec.failure(exc)
        raise
    rec.success(None, has_result=False)


def _param(name: str, source: dict[str, Any], values: dict[str, Any], where: str, relocation: Any = None) -> Any:
    if source["kind"] == "typed":
        return _decode(name, source["value"], where)
    if source["kind"] == "from":
        return values[source["task_run_id"]]
    if source["kind"] == "blob":
        with open(source["path"], "rb") as fh:
            value = pickle.load(fh)  # noqa: S301 - the store's own blob, verified by its hash
        return relocation.value(value) if relocation is not None else value
    raise RuntimeError(f"unknown parameter source {source!r}")  # pragma: no cover - the spec is ours


def _label(item: dict[str, Any]) -> str:
    index = item.get("map_index")
    return (f"{item['subflow']}/" if item.get("subflow") else "") + item["task_name"] + (
        f"[{index}]" if index is not None else "")


def _run_tasks(spec: dict[str, Any], result: dict[str, Any]) -> int:
    """A replay task by task (``--engine tasks``, ``--task``, ``--from``): call the chosen tasks
    in DAG order outside any orchestrator, each with the replayed values of its upstream tasks
    and the recorded values of the rest, recorded as one run linked to the original.

    No engine is imported here: a task's module imports what it imports itself."""
    from reproflow.replay._relocate import Relocation

    record = _reproflow("reproflow.recorder._plain", "reproflow._plain").record

    needs_module = any(str(t.get("function") or "").startswith("__main__:") for t in spec["tasks"])
    mod = _load_entry_module(spec) if needs_module and (spec.get("entry_file") or spec.get("module_name")) else None
    relocation = Relocation(*spec["relocation"]) if spec.get("relocation") else None
    values: dict[str, Any] = {}
    new_ids: dict[str, str] = {}
    result["started_at"] = time.time()
    _write(spec["result_file"], result)
    state, message = "COMPLETED", None
    try:
        with record(name=spec.get("flow_name") or "replay", parameters={}) as run:
            result["run_id"] = run.run_id
            _write(spec["result_file"], result)
            for item in spec["tasks"]:
                label = _label(item)
                where = f"task {label!r}"
                try:
                    if item.get("function"):
                        try:
                            obj = _task_object(mod, spec, item)
                        except (ImportError, AttributeError, RuntimeError) as exc:
                            if item.get("command") is None:
                                raise RuntimeError(f"cannot import the function of task {label!r} "
                                                   f"({item['function']}): {type(exc).__name__}: {exc}") from exc
                            obj = None
                    else:
                        obj = None
                    if obj is None:
                        _run_command(run, item, spec.get("cwd"))
                        values[item["task_run_id"]] = None
                    else:
                        kwargs = {name: _param(name, source, values, where, relocation)
                                  for name, source in item["params"].items()}
                        upstream = {name: [new_ids[source["task_run_id"]]] for name, source in item["params"].items()
                                    if source["kind"] == "from" and source["task_run_id"] in new_ids}
                        values[item["task_run_id"]] = _record_call(run, item, obj, kwargs, upstream)
                    new_ids[item["task_run_id"]] = item.get("new_task_run_id", "")
                except Exception as exc:
                    if item.get("new_task_run_id"):
                        new_ids[item["task_run_id"]] = item["new_task_run_id"]
                    if isinstance(exc, RuntimeError) and str(exc).startswith("cannot import the function"):
                        raise
                    state, message = "FAILED", f"{label}: {type(exc).__name__}: {exc}"
                    raise  # ends the run as FAILED in the store, like a failing flow
    except Exception:  # noqa: BLE001 - a task's own failure is recorded; the verdict reports it
        if state != "FAILED":
            raise
    result["state"] = state
    result["message"] = message
    # recorded task run -> the task run of the call made for it: the replay pairs by this, since
    # a called task that calls tasks inside it records runs between the calls
    result["calls"] = {k: v for k, v in new_ids.items() if v}
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    with open(args[0], encoding="utf-8") as fh:
        spec = json.load(fh)
    result: dict[str, Any] = {"run_id": None, "state": None, "message": None}
    _prepare_path(spec)
    if spec.get("cwd") and os.path.isdir(spec["cwd"]):
        os.chdir(spec["cwd"])
    try:
        mode = spec.get("mode", "flow")
        if mode == "tasks":
            code = _run_tasks(spec, result)
        elif mode == "script":
            code = _run_script(spec, result)
        elif mode == "call":
            code = _run_call(spec, result)
        else:
            code = _run_flow(spec, result)
    except BaseException as exc:
        result["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        result["traceback"] = traceback.format_exc()[-4000:]
        _write(spec["result_file"], result)
        raise
    _write(spec["result_file"], result)
    return code


#: the first argument of a runner started early (see :mod:`reproflow.replay._warm`)
WAIT = "--wait"
#: files in the flow's working folder that Prefect reads settings from when it is imported
PREFECT_SETTINGS_FILES = (".env", "prefect.toml")


def _shadowed(before: set[str], spec: dict[str, Any]) -> list[str]:
    """Top-level modules imported early (not in ``before``) that a file or package of the
    restored code would have provided instead, had they been imported after its folders were put
    first on ``sys.path`` (a project's own ``yaml.py``)."""
    loaded = {m.partition(".")[0] for m in sys.modules} - {m.partition(".")[0] for m in before}
    found: list[str] = []
    for folder in spec.get("sys_path", []):
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        for name in names:
            full = os.path.join(folder, name)
            if name.endswith((".py", ".pyc", ".so", ".pyd")):
                top = name.partition(".")[0]
            elif os.path.isfile(os.path.join(full, "__init__.py")):
                top = name
            else:
                continue
            if top in loaded:
                found.append(top)
    return sorted(set(found))


def _early_start_differs(before: set[str], spec: dict[str, Any]) -> str | None:
    """Why importing before the spec came could differ from a runner started after it, or None."""
    if spec.get("mode", "flow") != "flow":
        return f"mode {spec.get('mode')}"
    shadowed = _shadowed(before, spec)
    if shadowed:
        return "the restored code has modules of its own named " + ", ".join(shadowed)
    cwd = spec.get("cwd") or ""
    for name in PREFECT_SETTINGS_FILES:
        if os.path.exists(os.path.join(cwd, name)):
            return f"{name} in the working folder"
    try:
        with open(os.path.join(cwd, "pyproject.toml"), encoding="utf-8", errors="replace") as fh:
            if "tool.prefect" in fh.read():
                return "[tool.prefect] in pyproject.toml"
    except OSError:
        pass
    return None


def _temporary_server() -> None:
    """Start the temporary Prefect server that the flow's first call would start (no API URL in
    Prefect's settings, its temporary server allowed), while the replay checks: that start (a
    new process importing Prefect's server) is most of a replay's time without a server. The
    same server, by Prefect's own means: the flow's client finds it running. Any failure leaves it
    to the flow's first call, as without an early start."""
    try:
        from prefect.settings import get_current_settings

        settings = get_current_settings()
        if settings.api.url or not settings.server.ephemeral.enabled:
            return
        from prefect.server.api.server import SubprocessASGIServer

        SubprocessASGIServer().start()
    except Exception:  # noqa: BLE001 - the flow's call starts it, and reports its own error
        pass


def wait(modules: list[str]) -> int:
    """A runner started before the replay's checks are done: import ``modules`` (Prefect and the
    recorder, the slow part of starting), then wait for one line on stdin.

    Nothing of the recorded code is imported or run before that line comes, and it comes only
    after every check passed; end of input (the replay stopped) ends this process having run
    nothing. The line is JSON: ``{"spec": PATH, "env": {NAME: VALUE or null}}``, the variables
    the parent sets only then. When importing early could have changed what the run imports (a
    module of the restored code shadowing one imported here, a Prefect settings file in the
    working folder, a run that does not call a flow), the runner starts afresh instead, as a
    runner started after the checks would have run.
    """
    before = set(sys.modules)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the run imports it again and reports its own error
            pass
    server = None
    if "prefect" in modules:
        import threading

        server = threading.Thread(target=_temporary_server, name="reproflow-early-server", daemon=True)
        server.start()
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the replay stopped before its checks passed: run nothing (a server started ends at exit)
    if server is not None:
        server.join()  # the flow's first call to the API finds it running
    order = json.loads(line)
    for key, value in order.get("env", {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    sys.stdin.close()
    os.close(0)
    os.open(os.devnull, os.O_RDONLY)  # fd 0 again: the run reads an empty stdin, as when started after
    sys.stdin = open(0, encoding="utf-8", closefd=False)
    with open(order["spec"], encoding="utf-8") as fh:
        spec = json.load(fh)
    why = _early_start_differs(before, spec)
    if why is not None:
        print(f"reproflow: the early-started runner starts afresh ({why})", file=sys.stderr, flush=True)
        early = sys.modules.get("prefect.server.api.server")
        if early is not None:  # the fresh runner starts its own, where the flow runs
            try:
                early.SubprocessASGIServer().stop()
            except Exception:  # noqa: BLE001
                pass
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), order["spec"]], dict(os.environ))
    return main([order["spec"]])


if __name__ == "__main__":
    if sys.argv[1:2] == [WAIT]:
        sys.exit(wait(sys.argv[2:]))
    sys.exit(main())
