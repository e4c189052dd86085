"""``reproflow.CONTENT``: a Prefect cache policy keyed by what a task run actually depends on.

Prefect's ``INPUTS`` policy hashes a path argument's *string*, so a task given the same path to a
file whose bytes changed is served its old result; ``TASK_SOURCE`` hashes only the task's own
lines. The content key is the SHA-256 of the canonical JSON of:

- ``inputs``: the SHA-256 of every input file or folder (declared and inferred), through the
  stat-keyed hash cache (an unchanged file is not read again);
- ``parameters``: each parameter's stable hash (defaults applied; declared outputs by their path);
- ``code``: the syntax tree of the task's function and of every function or class of the
  project it calls, recursively (site-packages and the standard library are left to the
  environment part); line numbers, comments and parameter defaults are left out (defaults are
  in ``parameters``);
- ``environment``: the environment identity (interpreter and every distribution's version and
  origin), so a package upgrade invalidates every key;
- ``undeclared``: the files the task read without declaring them the last time it ran with the
  other parts the same, hashed now (see ``_with_reads``).

JSON quotes every string and delimits every list and mapping, so two different sets of parts
can never serialise to the same bytes. The parts are kept in the task's record
(``TaskRecord.cache``) for ``reproflow status``; a hit is recorded as a CACHED task naming the
run and task run whose result it reused.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import logging
import os
import sys
import sysconfig
import textwrap
import types
from typing import Any, Optional


from ..records import CacheKey, TaskRecord
from .. import _forksafe
from .._ast import parse as parse_source

logger = logging.getLogger("reproflow")

_lock = _forksafe.lock()
#: task_run_id -> the parts computed for it, taken by the recorder (same process as the engine)
_pending: dict[str, CacheKey] = {}
#: (path, mtime_ns, size) -> parsed module
_trees: dict[tuple[str, int, int], Optional[ast.Module]] = {}


# ----------------------------------------------------------------------------- code


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    return tuple(sorted(r + os.sep for r in roots))


_LIBS = _library_roots()


_project_files: dict[str, Optional[str]] = {}


def _raw_file(obj: Any) -> Optional[str]:
    code = getattr(obj, "__code__", None)
    if code is not None:
        return str(code.co_filename)
    if isinstance(obj, types.ModuleType):
        return getattr(obj, "__file__", None)
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    return getattr(module, "__file__", None) if module is not None else None


def _project_file(obj: Any) -> Optional[str]:
    """The source file of ``obj`` when it belongs to the user's project (not a library)."""
    raw = _raw_file(obj)
    if not raw:
        return None
    if raw in _project_files:
        return _project_files[raw]
    found: Optional[str] = None
    if not raw.startswith("<"):
        path = raw[:-1] if raw.endswith((".pyc", ".pyo")) else raw
        real = os.path.realpath(path)
        if path.endswith(".py") and os.path.exists(path) and not real.startswith(_LIBS) \
                and "site-packages" not in real.split(os.sep):
            found = os.path.abspath(path)
    _project_files[raw] = found
    return found


def _tree(path: str) -> Optional[ast.Module]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_mtime_ns, st.st_size)
    with _lock:
        if key in _trees:
            return _trees[key]
    try:
        with open(path, "rb") as fh:
            tree: Optional[ast.Module] = parse_source(fh.read())
    except (OSError, SyntaxError, ValueError, SystemError):
        tree = None
    with _lock:
        _trees[key] = tree
    return tree


def _find(body: list[ast.stmt], parts: list[str]) -> Optional[ast.stmt]:
    """The last definition named ``parts[0]`` at this level, then inside it for the rest."""
    hit: Optional[ast.stmt] = None
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and stmt.name == parts[0]:
            hit = stmt
    if hit is None or len(parts) == 1:
        return hit
    return _find(getattr(hit, "body", []), parts[1:])


def _node_digest(node: ast.stmt) -> str:
    """SHA-256 of a definition's syntax tree; a function's parameter defaults left out."""
    import copy

    node = copy.deepcopy(node)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node.args.defaults = []
        node.args.kw_defaults = []
    return hashlib.sha256(ast.dump(node).encode()).hexdigest()


def definition(path: str, qualname: str) -> Optional[ast.stmt]:
    """The definition of ``qualname`` in the file at ``path`` as it is on disk now."""
    if "<locals>" in qualname:
        return None
    tree = _tree(path)
    return None if tree is None else _find(tree.body, qualname.split("."))


#: (path, mtime_ns, size, qualname) -> digest (None: not found)
_digests: dict[tuple[str, int, int, str], Optional[str]] = {}
#: code object of a nested function -> digest of its own text
_nested: dict[Any, Optional[str]] = {}


def digest_of(path: str, qualname: str) -> Optional[str]:
    """The digest of ``qualname`` in ``path`` as it is on disk now (None if it is gone); parsed
    again only when the file's size or mtime changed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_mtime_ns, st.st_size, qualname)
    with _lock:
        if key in _digests:
            return _digests[key]
    node = definition(path, qualname)
    found = None if node is None else _node_digest(node)
    with _lock:
        _digests[key] = found
    return found


def _own_digest(obj: Any, path: str) -> Optional[str]:
    qual = getattr(obj, "__qualname__", "")
    if "<locals>" not in qual:
        return digest_of(path, qual)
    code = getattr(obj, "__code__", None)
    with _lock:
        if code is not None and code in _nested:
            return _nested[code]
    try:  # a function defined inside another one: its own text
        tree = parse_source(textwrap.dedent(inspect.getsource(obj)))
        found = _node_digest(tree.body[0]) if tree.body else None
    except (OSError, TypeError, SyntaxError, IndentationError, SystemError):
        found = None
    if code is not None:
        with _lock:
            _nested[code] = found
    return found


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _referenced(fn: Any) -> list[Any]:
    """Project functions and classes ``fn`` refers to by global name, module attribute or closure."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    names = _names(code)
    glb = getattr(fn, "__globals__", {})
    found: list[Any] = []
    for name in sorted(names):
        value = glb.get(name)
        if isinstance(value, types.ModuleType):
            if _project_file(value) is None:
                continue
            for attr in sorted(names):
                sub = getattr(value, attr, None)
                if isinstance(sub, (types.FunctionType, type)):
                    found.append(sub)
        elif value is not None:
            found.append(value)
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            found.append(cell.cell_contents)
        except ValueError:
            continue
    out = []
    for value in found:
        inner = getattr(value, "_rf_spec", None)
        if inner is not None:
            value = inner.fn  # a task called as a function: its user function
        elif not isinstance(value, (types.FunctionType, type)):
            value = getattr(value, "fn", None) if hasattr(value, "task_key") else None
        if isinstance(value, (types.FunctionType, type)):
            out.append(inspect.unwrap(value) if isinstance(value, types.FunctionType) else value)
    return out


def label(obj: Any, path: str) -> str:
    return f"{path}:{getattr(obj, '__qualname__', repr(obj))}"


def code_digests(fn: Any) -> dict[str, str]:
    """``{"file:qualname": digest}`` for ``fn`` and every project function or class it calls.

    Walked on every call (names resolve through the module globals as they are now, so a
    reloaded helper counts); each definition's digest is cached by its file's stat."""
    out: dict[str, str] = {}
    todo = [inspect.unwrap(fn)]
    seen: set[int] = set()
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        path = _project_file(obj)
        if path is None:
            continue
        digest = _own_digest(obj, path)
        if digest is None:
            continue
        out[label(obj, path)] = digest
        if isinstance(obj, type):
            todo += [m for m in vars(obj).values() if isinstance(m, types.FunctionType)]
            continue
        todo += _referenced(obj)
    return out


# ----------------------------------------------------------------------------- the key


def compose(parts: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the parts (every string quoted, every part delimited)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(b"reproflow-content-v1\0" + text.encode()).hexdigest()


def key_parts(task: Any, inputs: dict[str, Any]) -> Optional[CacheKey]:
    """The content key's parts for one call of ``task`` with ``inputs``; None when a parameter
    has no content-based hash (an open file, a lock): such a call is not cached."""
    from ._declare import declare, iter_data_values
    from ..capture._files import hash_path
    from ._runs import get_store, source_file
    from ._declare import data_uri as _uri
    from ..values._typed import stable_hash
    from ..capture import get_context

    spec = getattr(task, "_rf_spec", None)
    fn = spec.code if spec is not None else inspect.unwrap(task.fn)  # the code that runs (recorder._callee)
    decl = spec.decl if spec is not None else declare(fn, None, None)
    signature = spec.signature if spec is not None else inspect.signature(fn)
    given = {k: v for k, v in inputs.items() if k in signature.parameters}
    if spec is not None:  # a partial's fixed arguments are keyed with the call's
        from ._callee import bind_arguments

        params = bind_arguments(spec, (), given)
    else:
        bound = signature.bind_partial(**given)
        bound.apply_defaults()
        params = dict(bound.arguments)
    # Prefect hands the parameters with defaults applied: a value equal to its default took it
    # (or was passed equal to it; status then also flags a changed default, erring to stale)
    defaults = sorted(n for n, p in signature.parameters.items()
                      if p.default is not inspect.Parameter.empty and n in params
                      and stable_hash(params[n]) == stable_hash(p.default))
    var_kw = decl.var_kw
    if var_kw and isinstance(params.get(var_kw), dict):
        params.update(params.pop(var_kw))
    param_hashes: dict[str, str] = {}
    data: dict[str, str] = {}
    for name, value in params.items():
        h = stable_hash(value)
        if h is None:
            logger.warning("reproflow.CONTENT: parameter %r of %s has no content hash; not cached", name, task.name)
            return None
        param_hashes[name] = h
        if name in decl.outputs:
            continue  # the task writes it: keyed by its path, not by what the last run wrote
        for item in iter_data_values(value, declared=name in decl.inputs):
            uri = _uri(item)
            ref = hash_path(uri)
            data[uri] = ref.sha256 or ref.kind
    instance = spec.callee.instance if spec is not None and spec.callee is not None else None
    if instance is not None:  # a callable object's, a bound method's state is the task's too
        h = stable_hash(instance)
        if h is None:
            logger.warning("reproflow.CONTENT: the object %s calls (%s) has no content hash; not cached",
                           task.name, type(instance).__qualname__)
            return None
        param_hashes["<self>"] = h
    store = get_store(spec.opts.store if spec is not None else None)
    _, context = get_context(store, entry_file=source_file(fn))
    code = code_digests(fn)
    main = label(fn, _project_file(fn) or (source_file(fn) or "?"))
    fields = {"function": main, "code": code, "environment": context.environment_hash,
              "parameters": param_hashes, "defaults": defaults, "inputs": data}
    return CacheKey(key=_with_reads(store, fields), **fields)


def _fields(parts: CacheKey) -> dict[str, Any]:
    return {"function": parts.function, "code": parts.code, "environment": parts.environment,
            "parameters": parts.parameters, "defaults": parts.defaults, "inputs": parts.inputs}


def _reads_path(store: Any, base: str) -> str:
    return str(store.path("cache", "reads", f"{base}.json"))


def _with_reads(store: Any, fields: dict[str, Any]) -> str:
    """The key: the parts known before the run (``base``), and the files the task read without
    declaring them the last time it ran with this ``base``, as they are now.

    Which files a body opens is known only after it ran, so the last completed run under the
    same ``base`` left their list and hashes (:func:`remember_origin`). Unchanged, the key is the
    one that run's result was stored under; one of them changed, it is a new key (a miss: the
    task runs, and leaves the list for the next time). No list yet: ``base`` itself. A list is
    untrusted input: it can only lead to ``base`` or to the key of its own files' hashes now.
    """
    from .. import errors
    from ..capture._files import hash_path

    base = compose(fields)
    try:
        last = json.loads(store.read_bytes(_reads_path(store, base)))
        reads = last["reads"]
        if not isinstance(reads, dict) or not all(isinstance(u, str) for u in reads):
            return base
    except (errors.ReproflowError, ValueError, OSError, KeyError, TypeError):
        return base
    if not reads:
        return base
    now: dict[str, str] = {}
    for uri in sorted(reads):
        try:
            ref = hash_path(uri)
            now[uri] = ref.sha256 or ref.kind
        except Exception as exc:  # noqa: BLE001 - a file that cannot be read now is a change
            now[uri] = f"unreadable ({type(exc).__name__})"
    if now == reads and last.get("key") == base:
        return base  # the run that stored the result had no list yet
    return compose({**fields, "undeclared": now})


def remember(task_run_id: str, parts: CacheKey) -> None:
    """Keep the parts an engine's cache policy computed for a task run, for its record."""
    with _lock:
        _pending[task_run_id] = parts


def take(task_run_id: str) -> Optional[CacheKey]:
    """The parts computed for this task run in this process (the recorder keeps them)."""
    with _lock:
        return _pending.get(task_run_id)


def _index_path(store: Any, key: str) -> str:
    return str(store.path("cache", f"{key}.json"))


def remember_origin(store: Any, record: TaskRecord) -> None:
    """After a COMPLETED run under the content key: which run and task run produced it, and the
    files it read without declaring them (for the next key under the same parts)."""
    if record.cache is None or record.state != "COMPLETED":
        return
    from .. import errors

    data = json.dumps({"run_id": record.run_id, "task_run_id": record.task_run_id, "task_name": record.task_name})
    reads = {r.uri: r.sha256 or r.kind for r in record.inputs if r.undeclared}
    try:
        store.write_bytes(_index_path(store, record.cache.key), data.encode())
        base = compose(_fields(record.cache))
        if reads or record.cache.key != base:  # a list, or one to replace (an empty list: base)
            store.write_bytes(_reads_path(store, base), json.dumps({"key": record.cache.key, "reads": reads}).encode())
    except errors.ReproflowError as exc:  # recording never breaks the user's task
        logger.debug("reproflow: cache origin not written: %s", exc)


def origin(store: Any, key: str) -> tuple[Optional[str], Optional[str]]:
    """(run_id, task_run_id) that produced the result cached under ``key``, where known."""
    from .. import errors

    try:
        data = json.loads(store.read_bytes(_index_path(store, key)))
    except (errors.ReproflowError, ValueError, OSError):
        return None, None
    return data.get("run_id"), data.get("task_run_id")


_origin_runs: dict[tuple[str, str], dict[str, TaskRecord]] = {}


def reused_fields(store: Any, task_run: Any) -> dict[str, Any]:
    """Fields of a CACHED record under the content key: the key's parts naming the run and task
    run it reused, and that run's inputs, outputs and parameters (so the DAG and status see the
    cached task like the one it stands for)."""
    from .. import errors

    parts = take(str(task_run.id))
    if parts is None:
        return {}
    parts = parts.model_copy()
    parts.reused_run_id, parts.reused_task_run_id = origin(store, parts.key)
    fields: dict[str, Any] = {"cache": parts}
    upstream: dict[str, list[str]] = {}
    for param, refs in (task_run.task_inputs or {}).items():
        ids = [str(r.id) for r in refs if getattr(r, "input_type", None) == "task_run"]
        if ids:
            upstream[param] = sorted(set(ids))
    fields["upstream"] = upstream
    if parts.reused_run_id and parts.reused_task_run_id:
        key = (str(store.url), parts.reused_run_id)
        with _lock:
            tasks = _origin_runs.get(key)
        if tasks is None:
            try:
                tasks = {t.task_run_id: t for t in store.iter_tasks(parts.reused_run_id)}
            except errors.ReproflowError:
                tasks = {}
            with _lock:
                _origin_runs[key] = tasks
        src = tasks.get(parts.reused_task_run_id)
        if src is not None:
            fields.update(inputs=src.inputs, outputs=src.outputs, parameters=src.parameters,
                          parameter_hashes=src.parameter_hashes, parameters_hash=src.parameters_hash,
                          function_file=src.function_file)
    return fields


__all__ = ["code_digests", "remember", "compose", "digest_of", "key_parts", "origin", "remember_origin", "reused_fields", "take"]
