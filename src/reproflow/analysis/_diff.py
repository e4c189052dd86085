"""What changed between two runs, grouped and ordered most-relevant first.

Sections, in order: packages (added, removed, changed), Python, OS, hardware and driver, the
system libraries the processes had loaded (by SONAME: version, OS package and bytes), git
(commit and uncommitted diff), the source of task functions that changed, flow parameters,
environment variables (redacted ones compared by their keyed fingerprint), then per task the
parameters, inputs, outputs and return hashes that differ. Tasks are matched by name and
function (``module:qualname``), then ``map_index`` and subflow, or their order among runs of the same task:
never by Prefect's ``task_key``, which changes with the function's code (and its line number).

What identifies a run rather than describes it (run ids, task-run ids, timestamps, durations,
pids, host names, interpreter paths) is never compared. A task difference that follows from
another one (a parameter fed by a changed flow parameter, or by an item of one that was mapped
over, or by a changed upstream result; an output of a task whose inputs or source changed) is
kept but marked ``derived``, so
:meth:`RunDiff.differences` names root causes only.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Optional

from packaging.utils import canonicalize_name
from pydantic import BaseModel, Field

from ._task_source import SnapshotReader, changed_lines
from ..values._typed import from_typed_json, has_opaque, object_fields, stable_hash
from ..records import DataRef, Distribution, Environment, Run, TaskRecord
from ..store import Store

#: Environment variables that differ between any two processes and say nothing about results.
VOLATILE_ENV = frozenset({
    "_", "OLDPWD", "SHLVL", "PWD", "PYTEST_CURRENT_TEST", "TERM_SESSION_ID", "WINDOWID", "SSH_CLIENT",
    "SSH_CONNECTION", "SSH_TTY", "SSH_AUTH_SOCK", "XDG_SESSION_ID", "DISPLAY", "INVOCATION_ID",
    "JOURNAL_STREAM", "TMUX_PANE", "STY", "COLUMNS", "LINES", "PREFECT__FLOW_RUN_ID",
    "PREFECT_API_URL", "PREFECT_HOME", "REPROFLOW_RUN_ID", "RANDOM",
})  # fmt: skip


class Change(BaseModel):
    """One value that differs."""

    key: str
    a: Any = None
    b: Any = None
    derived: bool = False  #: follows from another change listed in this diff
    note: Optional[str] = None
    text: Optional[str] = None  #: says the change in words, instead of "a -> b"

    def describe(self) -> str:
        if self.text is not None:
            return f"{self.key}: {self.text}"
        if self.a is None:
            return f"{self.key}: added {self.b!r}"
        if self.b is None:
            return f"{self.key}: removed (was {self.a!r})"
        return f"{self.key}: {self.a!r} -> {self.b!r}"


class PackageChange(BaseModel):
    name: str
    kind: Literal["added", "removed", "changed"]
    a: Optional[str] = None  #: version (and origin) in run A
    b: Optional[str] = None


class TaskDiff(BaseModel):
    """Differences of one task run matched across the two runs."""

    task: str  #: "name" or "name[map_index]" or "name#occurrence"
    status: Literal["changed", "only_a", "only_b"]
    changes: list[Change] = Field(default_factory=list)


class Section(BaseModel):
    name: str
    title: str
    prefix: str = ""  #: how a line of :meth:`RunDiff.differences` names the section (default: name)
    changes: list[Change] = Field(default_factory=list)


class RunDiff(BaseModel):
    """The differences between run A and run B (empty lists where nothing differs)."""

    run_a: str
    run_b: str
    packages: list[PackageChange] = Field(default_factory=list)
    python: list[Change] = Field(default_factory=list)
    os: list[Change] = Field(default_factory=list)
    hardware: list[Change] = Field(default_factory=list)
    #: shared libraries (key: SONAME) whose version, OS package or bytes differ, added or removed
    system: list[Change] = Field(default_factory=list)
    git: list[Change] = Field(default_factory=list)
    #: task functions whose source changed (key "file.py:qualname"), read from the runs' snapshots
    sources: list[Change] = Field(default_factory=list)
    parameters: list[Change] = Field(default_factory=list)
    env_vars: list[Change] = Field(default_factory=list)
    tasks: list[TaskDiff] = Field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences(include_derived=True)

    def sections(self) -> list[Section]:
        """The non-package sections in display order."""
        return [
            Section(name="python", title="Python", changes=self.python),
            Section(name="os", title="Operating system", changes=self.os),
            Section(name="hardware", title="Hardware and driver", changes=self.hardware),
            Section(name="system", title="System libraries", prefix="system library", changes=self.system),
            Section(name="git", title="Code (git)", changes=self.git),
            Section(name="sources", title="Task source", prefix="source", changes=self.sources),
            Section(name="parameters", title="Flow parameters", prefix="flow parameter", changes=self.parameters),
            Section(name="env_vars", title="Environment variables", changes=self.env_vars),
        ]

    def differences(self, *, include_derived: bool = False) -> list[str]:
        """One line per difference, most relevant first; root causes only unless asked."""
        out: list[str] = []
        for p in self.packages:
            if p.kind == "added":
                out.append(f"package {p.name}: added {p.b}")
            elif p.kind == "removed":
                out.append(f"package {p.name}: removed (was {p.a})")
            else:
                out.append(f"package {p.name}: {p.a} -> {p.b}")
        for s in self.sections():
            out += [f"{s.prefix or s.name} {c.describe()}" for c in s.changes if include_derived or not c.derived]
        for t in self.tasks:
            if t.status != "changed":
                out.append(f"task {t.task}: only in run {'A' if t.status == 'only_a' else 'B'}")
                continue
            out += [f"task {t.task} {c.describe()}" for c in t.changes if include_derived or not c.derived]
        return out


# ------------------------------------------------------------------------------------- build
def _origin(d: Distribution) -> str:
    du = d.direct_url
    if du is None:
        return d.version
    if du.vcs:
        return f"{d.version} ({du.vcs} {du.commit_id or du.url})"
    if du.editable:
        return f"{d.version} (editable {du.url})"
    return f"{d.version} ({du.url})"


def _packages(a: Environment, b: Environment) -> list[PackageChange]:
    da = {canonicalize_name(d.name): d for d in a.distributions}
    db = {canonicalize_name(d.name): d for d in b.distributions}
    out: list[PackageChange] = []
    for name in sorted(set(da) | set(db)):
        x, y = da.get(name), db.get(name)
        if x is None and y is not None:
            out.append(PackageChange(name=y.name, kind="added", b=_origin(y)))
        elif y is None and x is not None:
            out.append(PackageChange(name=x.name, kind="removed", a=_origin(x)))
        elif x is not None and y is not None:
            ox, oy = _origin(x), _origin(y)
            changed = ox != oy or (x.source_blob and y.source_blob and x.source_blob != y.source_blob)
            if changed:
                if ox == oy:  # same version and origin, different stored source: local edits
                    ox, oy = f"{ox} source {x.source_blob[:12]}", f"{oy} source {(y.source_blob or '')[:12]}"  # type: ignore[index]
                out.append(PackageChange(name=x.name, kind="changed", a=ox, b=oy))
    kind_order = {"changed": 0, "added": 1, "removed": 2}
    return sorted(out, key=lambda p: (kind_order[p.kind], p.name.lower()))


def _compare(fields: dict[str, tuple[Any, Any]]) -> list[Change]:
    return [Change(key=k, a=a, b=b) for k, (a, b) in fields.items() if a != b]


def _env_vars(a: Environment, b: Environment, ignore: frozenset[str]) -> list[Change]:
    out: list[Change] = []
    for name in sorted(set(a.env_vars) | set(b.env_vars)):
        if name in ignore:
            continue
        x, y = a.env_vars.get(name), b.env_vars.get(name)

        def shown(v: Any) -> Any:
            if v is None:
                return None
            return f"<redacted {v.fingerprint or '?'}>" if v.redacted else v.value

        if x is not None and y is not None and x.redacted and y.redacted:
            if x.fingerprint != y.fingerprint:
                out.append(Change(key=name, a=shown(x), b=shown(y), note="secret value changed (fingerprint)"))
            continue
        if shown(x) != shown(y):
            out.append(Change(key=name, a=shown(x), b=shown(y)))
    return out


def _task_label(t: TaskRecord, occurrence: int) -> str:
    base = (f"{t.subflow}/" if t.subflow else "") + (t.task_name if t.map_index is None else f"{t.task_name}[{t.map_index}]")
    return base if occurrence == 0 else f"{base}#{occurrence + 1}"


def _qual(t: TaskRecord) -> str:
    return (t.function or "").partition(":")[2] or t.task_name


def _match_tasks(a: Run, b: Run) -> list[tuple[str, Optional[TaskRecord], Optional[TaskRecord]]]:
    """Pair the task runs of two runs by task name and function qualname (stable when the code
    changes, unlike ``task_key``), then map index, then order among runs of the same key."""

    def keyed(run: Run) -> dict[tuple[Any, ...], tuple[str, TaskRecord]]:
        seen: dict[tuple[Any, ...], int] = {}
        out: dict[tuple[Any, ...], tuple[str, TaskRecord]] = {}
        for t in run.final_tasks():
            base = (t.task_name, _qual(t), t.map_index, t.subflow)
            n = seen.get(base, 0)
            seen[base] = n + 1
            out[(*base, n)] = (_task_label(t, n), t)
        return out

    ka, kb = keyed(a), keyed(b)
    order = list(ka) + [k for k in kb if k not in ka]
    return [(ka.get(k, kb.get(k))[0], ka.get(k, (None, None))[1], kb.get(k, (None, None))[1]) for k in order]  # type: ignore[index]


def _sources(pairs: list[tuple[str, Optional[TaskRecord], Optional[TaskRecord]]],
             readers: Optional[tuple[SnapshotReader, SnapshotReader]]) -> tuple[list[Change], dict[str, str]]:  # fmt: skip
    """The task functions whose source changed, and for each task run of B that ran one, its label.

    The definitions are read from each run's stored source snapshot and compared by syntax tree.
    Without a snapshot on either side, a changed ``task_key`` (Prefect's hash of the code object)
    is the only sign, and the change says so.
    """
    changes: dict[str, Change] = {}
    by_task: dict[str, str] = {}
    done: dict[tuple[Any, ...], Optional[str]] = {}
    for _, x, y in pairs:
        if x is None or y is None:
            continue
        key = (x.function, x.function_file, x.task_key, y.function, y.function_file, y.task_key)
        if key not in done:
            done[key] = None
            fa = readers[0].function(x) if readers else None
            fb = readers[1].function(y) if readers else None
            if fa is not None and fb is not None:
                if fa.digest != fb.digest:
                    added, removed = changed_lines(fa.text, fb.text)
                    done[key] = fb.label
                    what = f"changed (+{added} -{removed} lines)"
                    changes.setdefault(fb.label, Change(key=fb.label, a=fa.digest[:12], b=fb.digest[:12], note=what,
                                                        text=what))  # fmt: skip
            elif x.task_key != y.task_key:
                label = (fb or fa).label if (fb or fa) is not None else (y.function or y.task_name)  # type: ignore[union-attr]
                done[key] = label
                what = "code changed (Prefect's code hash differs; no stored source to compare, so it may only have moved)"
                changes.setdefault(label, Change(key=label, a=x.task_key, b=y.task_key, note=what, text=what))
        if done[key] is not None:
            by_task[y.task_run_id] = done[key]  # type: ignore[assignment]
    return list(changes.values()), by_task


def _ref_key(r: DataRef) -> tuple[str, str]:
    return (r.param or "", r.uri)


def _refs(xs: list[DataRef], ys: list[DataRef], what: str, derived: bool,
          produced: Optional[tuple[set[str], set[str]]] = None) -> list[Change]:  # fmt: skip
    """Changes between two lists of data references. With ``produced`` (the output hashes of each
    run), an input whose old and new contents were both written by the run itself is derived:
    it follows from the change of the task that wrote it. The same change listed under two
    parameters (a path passed in and returned) is reported once."""
    out: list[Change] = []
    mx = {_ref_key(r): r for r in xs}
    my = {_ref_key(r): r for r in ys}
    unmatched_x = [r for k, r in mx.items() if k not in my]
    unmatched_y = [r for k, r in my.items() if k not in mx]
    # Same parameter, other location (e.g. a per-run temporary folder): compare by content.
    by_param_y = {r.param: r for r in unmatched_y if r.param}
    for r in list(unmatched_x):
        other = by_param_y.get(r.param) if r.param else None
        if other is not None:
            mx[(r.param or "", "")] = r
            my[(r.param or "", "")] = other
            unmatched_x.remove(r)
            unmatched_y.remove(other)
            mx.pop(_ref_key(r), None)
            my.pop(_ref_key(other), None)
    for k in mx:
        if k in my and mx[k].sha256 != my[k].sha256:
            label = k[1] or mx[k].uri
            inner = produced is not None and mx[k].sha256 in produced[0] and my[k].sha256 in produced[1]
            out.append(Change(key=f"{what} {label}", a=mx[k].sha256, b=my[k].sha256, derived=derived or inner))
    for r in unmatched_x:
        out.append(Change(key=f"{what} {r.uri}", a=r.sha256, b=None, derived=derived))
    for r in unmatched_y:
        out.append(Change(key=f"{what} {r.uri}", a=None, b=r.sha256, derived=derived))
    seen: set[tuple[str, Any, Any]] = set()
    unique = []
    for c in out:
        if (c.key, c.a, c.b) not in seen:
            seen.add((c.key, c.a, c.b))
            unique.append(c)
    return unique


def _object_state(task: TaskRecord) -> str:
    """For a task that calls an object's method (``?module:Class.method``, recorder._callee):
    the state its record does not hold, named first among the possible causes."""
    function = task.function or ""
    if not function.startswith("?") or "." not in function.partition(":")[2]:
        return ""
    owner = function.partition(":")[2].rsplit(".", 1)[0]
    return f"the {owner} object it calls may hold other state (not recorded); "


def _flow_param_hashes(run: Run) -> dict[str, set[str]]:
    """Per flow parameter, the hashes a task parameter fed by it can have: the value's own, and
    each item's when it is a list or tuple (a task mapped over it gets one item per run)."""
    out: dict[str, set[str]] = {}
    recorded = run.record.parameter_hashes  # schema 1.1+: as hashed when the run started
    for k, v in run.record.parameters.items():
        if has_opaque(v) and k not in recorded:
            continue
        # Instances of the user's classes decode to their fields: nothing of theirs is imported here.
        value = from_typed_json(v, rebuild=False)
        own = recorded.get(k)
        hashes = {own if own is not None and not own.startswith("unhashable:") else stable_hash(value)}
        if isinstance(value, (list, tuple)):
            hashes |= {stable_hash(item) for item in value}
        out[k] = {h for h in hashes if h is not None}
    return out


def _tasks(a: Run, b: Run, changed_flow_params: dict[str, tuple[set[str], set[str]]],
           pairs: list[tuple[str, Optional[TaskRecord], Optional[TaskRecord]]],
           source_changed: dict[str, str], code_changed: bool = False) -> list[TaskDiff]:  # fmt: skip
    """Per task pair, what differs. ``code_changed``: the commit or the uncommitted diff differs,
    so a result that changed with nothing else may come from code the task calls."""
    unexplained = ("same inputs, different result: the code it calls may have changed (see git), or "
                   "nondeterminism or environment") if code_changed else (
                   "same inputs, different result: nondeterminism or environment")  # fmt: skip
    out: list[TaskDiff] = []
    changed_results: set[str] = set()  # task_run_ids (of run B) whose result changed
    # (hash in A, hash in B) of every changed result: a parameter that changed from one to the other
    # was that task's result, passed on (Prefect records no edge for small ints, None, booleans)
    changed_values: set[tuple[Optional[str], Optional[str]]] = set()
    produced = ({r.sha256 for t in a.final_tasks() for r in t.outputs if r.sha256},
                {r.sha256 for t in b.final_tasks() for r in t.outputs if r.sha256})  # fmt: skip
    for label, x, y in pairs:
        if x is None or y is None:
            out.append(TaskDiff(task=label, status="only_b" if x is None else "only_a"))
            continue
        changes: list[Change] = []
        source = source_changed.get(y.task_run_id)
        if source is not None:
            changes.append(Change(key="source", a=x.task_key, b=y.task_key, derived=True, text="changed",
                                  note=f"the source of {source}"))  # fmt: skip
        if x.state != y.state:
            changes.append(Change(key="state", a=x.state, b=y.state, derived=source is not None))
        cause = False
        # a cache hit (CACHED) is recorded without its parameters: absent there is not recorded,
        # not changed (its cache key stood for them)
        unrecorded = {t.task_run_id for t in (x, y) if t.state == "CACHED" and not t.parameter_hashes}
        for p in sorted(set(x.parameter_hashes) | set(y.parameter_hashes)):
            hx, hy = x.parameter_hashes.get(p), y.parameter_hashes.get(p)
            if hx == hy or (hx is None and x.task_run_id in unrecorded) or (hy is None and y.task_run_id in unrecorded):
                continue
            # the flow parameters it may have come from: its own name first, then in order
            fed = sorted((k for k, (fa, fb) in changed_flow_params.items() if hx in fa and hy in fb), key=lambda k: k != p)
            from_flow = " or ".join(fed) if fed else None
            explained = (from_flow is not None or any(u in changed_results for u in y.upstream.get(p, []))
                         or (hx, hy) in changed_values)  # fmt: skip
            cause = cause or not explained
            vx = x.parameters.get(p)
            vy = y.parameters.get(p)
            note = f"flow parameter {from_flow}" if from_flow is not None else None
            if vx is None or vy is None:
                changes.append(Change(key=f"parameter {p}", a=_short(vx) if vx is not None else hx,
                                      b=_short(vy) if vy is not None else hy, derived=explained, note=note))
                continue
            for key, fx, fy in changed_fields(p, vx, vy) or [(p, vx, vy)]:  # equal JSON, other hash: whole
                changes.append(Change(key=f"parameter {key}", a=_short(fx), b=_short(fy), derived=explained, note=note))
        inputs = _refs(x.inputs, y.inputs, "input", derived=False, produced=produced)
        cause = cause or any(not c.derived for c in inputs)
        upstream_input = any(c.derived for c in inputs)
        changes += inputs
        upstream_changed = any(u in changed_results for ids in y.upstream.values() for u in ids)
        effect_derived = (
            cause or source is not None or upstream_changed or upstream_input or x.state != y.state
            or any(c.key.startswith("parameter") for c in changes)
        )  # fmt: skip
        outputs = _refs(x.outputs, y.outputs, "output", derived=effect_derived)
        changes += outputs
        if x.result_hash != y.result_hash:
            changes.append(Change(key="return", a=x.result_hash, b=y.result_hash, derived=effect_derived,
                                  note=None if effect_derived else _object_state(y) + unexplained))  # fmt: skip
            changed_results.add(y.task_run_id)
            if x.result_hash and y.result_hash:
                changed_values.add((x.result_hash, y.result_hash))
        if outputs:
            changed_results.add(y.task_run_id)
        if changes:
            out.append(TaskDiff(task=label, status="changed", changes=changes))
    return out


def _fields(typed: Any) -> tuple[Any, dict[str, Any]] | None:
    """(its class, its fields) for typed JSON of an object recorded by its fields or attributes
    (a dataclass, a pydantic model, an ``argparse.Namespace``, a plain class) or a plain dict
    (class None); None for anything else."""
    if not isinstance(typed, dict):
        return None
    tag = typed.get("__rf__")
    if tag is None:
        return None, typed
    fields = object_fields(typed)
    if fields is not None:
        return (typed.get("kind"), typed.get("class") or typed.get("type")), fields
    return None


def changed_fields(key: str, a: Any, b: Any, depth: int = 0) -> list[tuple[str, Any, Any]]:
    """``(key, a, b)`` for what differs between two typed JSON values: two objects of the same
    class, or two dicts, field by field and down into their fields (``args.lr``, ``cfg.paths.src``),
    so a changed hyperparameter in a config object is named rather than shown as two long values
    cut at 80 characters; anything else whole. A field one side lacks is None on that side."""
    fa, fb = _fields(a), _fields(b)
    if fa is None or fb is None or fa[0] != fb[0] or depth >= 8:
        return [(key, a, b)] if a != b else []
    out: list[tuple[str, Any, Any]] = []
    for name in list(fa[1]) + [n for n in fb[1] if n not in fa[1]]:
        x, y = fa[1].get(name), fb[1].get(name)
        if name not in fb[1] or name not in fa[1]:
            out.append((f"{key}.{name}", x, y))
        else:
            out += changed_fields(f"{key}.{name}", x, y, depth + 1)
    return out


def _short(v: Any) -> Any:
    text = json.dumps(v, sort_keys=True, default=str)
    return v if len(text) <= 80 else text[:77] + "..."


def diff_runs(store: Store, run_a: str, run_b: str, *, ignore_env: frozenset[str] = VOLATILE_ENV) -> RunDiff:
    """Compare two runs of a store (ids or unique prefixes)."""
    a = store.load_run(run_a)
    b = store.load_run(run_b)
    assert a.context is not None and b.context is not None
    ea = store.get_model_blob(a.context.environment_blob, Environment)
    eb = store.get_model_blob(b.context.environment_blob, Environment)
    return compare(a, b, ea, eb, ignore_env=ignore_env, store=store)


def compare(a: Run, b: Run, ea: Environment, eb: Environment, *, ignore_env: frozenset[str] = VOLATILE_ENV,
            store: Optional[Store] = None) -> RunDiff:  # fmt: skip
    """Compare two loaded runs and their environments; with ``store``, task functions are compared
    by their source in the runs' stored snapshots, and the system libraries they loaded."""
    system: list[Change] = []
    if store is not None:
        from ..capture.system import drift, run_libraries

        system = [Change(key=name, a=was, b=now, text=words, note=words)
                  for name, was, now, words in drift(run_libraries(store, a), run_libraries(store, b))]  # fmt: skip
    assert a.context is not None and b.context is not None
    ca, cb = a.context, b.context
    pa, pb = ea.python, eb.python
    python = _compare({"implementation": (pa.implementation, pb.implementation), "version": (pa.version, pb.version),
                       "compiler": (pa.compiler, pb.compiler)})  # fmt: skip
    la, lb = ea.platform, eb.platform
    os_changes = _compare({
        "system": (la.system, lb.system), "release": (la.release, lb.release), "machine": (la.machine, lb.machine),
        "libc": (la.libc, lb.libc), "distro": (la.distro, lb.distro),
    })  # fmt: skip
    ha, hb = ca.hardware, cb.hardware

    def gpus(h: Any) -> list[str]:
        return [f"{g.name} {g.memory_total_bytes or ''} cc{g.compute_capability or ''}".strip() for g in h.gpus]

    def pools(h: Any) -> list[str]:
        return sorted(f"{p.internal_api} {p.version or ''} threads={p.num_threads}" for p in h.threadpools)

    hardware = _compare({
        "cpu": (ha.cpu.model, hb.cpu.model), "cpu cores": (ha.cpu.logical_cores, hb.cpu.logical_cores),
        "cpu flags": (sorted(ha.cpu.flags), sorted(hb.cpu.flags)),
        "memory": (ha.memory_total_bytes, hb.memory_total_bytes), "gpus": (gpus(ha), gpus(hb)),
        "gpu driver": (ha.gpu_driver, hb.gpu_driver), "cuda driver": (ha.cuda_driver_version, hb.cuda_driver_version),
        "blas/openmp": (pools(ha), pools(hb)),
    })  # fmt: skip
    ga, gb = ca.git, cb.git
    git = _compare({
        "available": (ga.available, gb.available), "commit": (ga.commit, gb.commit), "branch": (ga.branch, gb.branch),
        "remote": (ga.remote_url, gb.remote_url), "dirty": (ga.dirty, gb.dirty),
        "uncommitted diff": (ga.diff_blob, gb.diff_blob), "untracked files": (sorted(ga.untracked), sorted(gb.untracked)),
    })  # fmt: skip
    for c in git:
        if c.key == "uncommitted diff":
            c.note = "the uncommitted changes differ"
    params: list[Change] = []
    changed_flow: dict[str, tuple[set[str], set[str]]] = {}
    ha_, hb_ = _flow_param_hashes(a), _flow_param_hashes(b)
    for k in sorted(set(a.record.parameters) | set(b.record.parameters)):
        va, vb = a.record.parameters.get(k), b.record.parameters.get(k)
        if va != vb:
            params += [Change(key=key, a=_short(x) if x is not None else None, b=_short(y) if y is not None else None)
                       for key, x, y in changed_fields(k, va, vb) or [(k, va, vb)]]
            changed_flow[k] = (ha_.get(k, set()), hb_.get(k, set()))
    pairs = _match_tasks(a, b)
    readers = (SnapshotReader(store, a), SnapshotReader(store, b)) if store is not None else None
    sources, by_task = _sources(pairs, readers)
    return RunDiff(
        run_a=a.run_id,
        run_b=b.run_id,
        packages=_packages(ea, eb),
        python=python,
        os=os_changes,
        hardware=hardware,
        system=system,
        git=git,
        sources=sources,
        parameters=params,
        env_vars=_env_vars(ea, eb, ignore_env),
        tasks=_tasks(a, b, changed_flow, pairs, by_task,
                     code_changed=any(c.key in ("commit", "uncommitted diff") for c in git)),
    )


# ------------------------------------------------------------------------------------- render
def render_diff(diff: RunDiff, console: Any) -> None:
    """Print a diff as rich tables, most relevant section first."""
    from rich.table import Table

    console.print(f"[bold]run A[/] {diff.run_a}\n[bold]run B[/] {diff.run_b}")
    if diff.identical:
        console.print("[green]no differences[/] (ids, timestamps and pids are not compared)")
        return
    if diff.packages:
        t = Table(title="Packages", title_justify="left")
        for col in ("package", "change", "run A", "run B"):
            t.add_column(col)
        for p in diff.packages:
            t.add_row(p.name, p.kind, p.a or "", p.b or "")
        console.print(t)
    for s in diff.sections():
        if not s.changes:
            continue
        t = Table(title=s.title, title_justify="left")
        for col in ("what", "run A", "run B", "note"):
            t.add_column(col, overflow="fold")
        for c in s.changes:
            t.add_row(c.key, _cell(c.a), _cell(c.b), c.note or "")
        console.print(t)
    if diff.tasks:
        t = Table(title="Tasks", title_justify="left")
        for col in ("task", "what", "run A", "run B", "note"):
            t.add_column(col, overflow="fold")
        for td in diff.tasks:
            if td.status != "changed":
                t.add_row(td.task, "only in run " + ("A" if td.status == "only_a" else "B"), "", "", "")
            for c in td.changes:
                note = (f"follows from {c.note}" if c.note else "follows from a change above") if c.derived else (c.note or "")
                t.add_row(td.task, c.key, _cell(c.a), _cell(c.b), note)
        console.print(t)


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    text = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["Change", "PackageChange", "RunDiff", "Section", "TaskDiff", "VOLATILE_ENV", "compare", "diff_runs", "render_diff"]
