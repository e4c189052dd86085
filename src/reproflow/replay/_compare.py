"""Compare a replay with its original, task by task, and name the likely cause of a difference.

Matching: a replayed task run answers the recorded one with the same task name, function
qualname, map index and subflow name (``task_key`` is not used: Prefect derives it from the code object, which
includes the file path, and the replay runs from a restored copy). Within such a group, runs with
equal parameter hashes pair first, the rest in DAG order (depth, then start position).

A task is reproduced when it ended in the same state, every output hashes the same and its
return value's hash is equal. When all of that holds but the return value has no stable hash (a
fitted model object: nothing could compare it), the task is ``unverified``, never
``reproduced``. The replay runs in a
restored copy of the code, so outputs and path values inside the recorded source root are
compared at their relocated place (see :mod:`reproflow.replay._relocate`).
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..capture._files import untimed_format
from ..values._typed import from_typed_json, hash_mapping, stable_hash
from ..records import DataRef, Environment, EnvVar, Hardware, Run, RunRecord, TaskRecord
from ._models import InputCheck, OutputCheck, TaskVerdict
from ._relocate import Relocation

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store


def _qual(t: TaskRecord) -> str:
    return (t.function or "").partition(":")[2] or t.task_name


def _group_key(t: TaskRecord) -> tuple[str, str, int | None, str | None]:
    return (t.task_name, _qual(t), t.map_index, t.subflow)


def match_tasks(
    original: list[TaskRecord], replayed: list[TaskRecord], orig_order: dict[str, tuple[int, int]],
    new_order: dict[str, tuple[int, int]], *, by_position: bool = False, relocation: Relocation | None = None,
    calls: dict[str, str] | None = None,
) -> tuple[list[tuple[TaskRecord, TaskRecord | None]], list[TaskRecord]]:
    """Pair each original task run with its replayed counterpart.

    Args:
        by_position: pair strictly in the given order (partial replays run tasks one by one).
        calls: with ``by_position``, the runner's map of each recorded task run to the task run
            of the call it made for it: pairs by that, so task runs a called task made inside it
            (a task calling a task) neither shift the pairing nor count as extra.
        relocation: the recorded source root and its restored copy: replayed parameters holding
            paths inside the copy are hashed as they would have been recorded before pairing.

    Returns:
        (pairs, extra): every original with its match (or None), and replayed runs left over.
    """
    if by_position and calls:
        by_id = {t.task_run_id: t for t in replayed}
        return [(o, by_id.get(calls.get(o.task_run_id, ""))) for o in original], []
    if by_position:
        pairs = [(o, replayed[i] if i < len(replayed) else None) for i, o in enumerate(original)]
        return pairs, replayed[len(original):]
    groups_o: dict[tuple[str, str, int | None, str | None], list[TaskRecord]] = defaultdict(list)
    groups_n: dict[tuple[str, str, int | None, str | None], list[TaskRecord]] = defaultdict(list)
    for t in sorted(original, key=lambda t: orig_order.get(t.task_run_id, (0, 0))):
        groups_o[_group_key(t)].append(t)
    for t in sorted(replayed, key=lambda t: new_order.get(t.task_run_id, (0, 0))):
        groups_n[_group_key(t)].append(t)
    found: dict[str, TaskRecord] = {}
    extra: list[TaskRecord] = []
    for key, olist in groups_o.items():
        nlist = list(groups_n.get(key, []))
        rest_o: list[TaskRecord] = []
        for o in olist:  # equal parameters first
            hit = next((n for n in nlist if _params_hash_as_recorded(n, relocation) == o.parameters_hash), None)
            if hit is not None:
                nlist.remove(hit)
                found[o.task_run_id] = hit
            else:
                rest_o.append(o)
        for o, n in zip(rest_o, nlist):
            found[o.task_run_id] = n
        extra += nlist[len(rest_o):]
    for key, nlist in groups_n.items():
        if key not in groups_o:
            extra += nlist
    return [(o, found.get(o.task_run_id)) for o in original], extra


def _params_hash_as_recorded(n: TaskRecord, relocation: Relocation | None) -> str:
    """The replayed task's parameters hash, with paths inside the restored code mapped back to
    the recorded source root (so a relocated path parameter pairs with its original)."""
    if relocation is None or relocation.recorded_root is None:
        return n.parameters_hash
    back = relocation.reverse
    params = {k: back.typed(v) for k, v in n.parameters.items()}
    if params == n.parameters:
        return n.parameters_hash
    return hash_mapping({k: from_typed_json(v) for k, v in params.items()})[1]


def _result_matches(o: TaskRecord, n: TaskRecord, relocation: Relocation | None,
                    renames: Mapping[str, str] | None = None) -> bool:
    """Equal result hashes, or equal once paths inside the restored code in the replayed
    result (recorded inline as typed JSON) are mapped back to the recorded source root, and
    the replay's run names and ids in its strings back to the recorded run's (``renames``)."""
    if o.result_hash == n.result_hash:
        return True
    if n.result is None:
        return False
    back = n.result
    if relocation is not None and relocation.recorded_root is not None:
        back = relocation.reverse.typed(back)
    if renames:
        back = _renamed_strings(back, {new: old for old, new in renames.items()})
    return back != n.result and stable_hash(from_typed_json(back)) == o.result_hash


#: Run names and ids shorter than this are not looked for in paths (a short one could be part
#: of any name); Prefect's generated flow run names ("crimson-tiger") and every id are longer.
_MIN_RENAME = 8


def run_renames(o_run: RunRecord | None, n_run: RunRecord | None, o: TaskRecord, n: TaskRecord | None) -> dict[str, str]:
    """What every run names anew, recorded -> replayed: the flow run's name and id, the task
    run's id, and its subflow run's id. A task that names its output after them
    (``runs/{flow_run.name}/values.txt``, ``by_id/{task_run.id}.txt``) writes the same bytes at
    a place the replay names otherwise: its output is found there, and a returned path holding
    them compares equal once they are put back."""
    pairs: list[tuple[str | None, str | None]] = []
    if o_run is not None and n_run is not None:
        pairs += [(o_run.flow_run_name, n_run.flow_run_name), (o_run.run_id, n_run.run_id)]
    if n is not None:
        pairs += [(o.task_run_id, n.task_run_id), (o.subflow_run_id, n.subflow_run_id), (o.run_id, n.run_id)]
    return {a: b for a, b in pairs if a and b and a != b and len(a) >= _MIN_RENAME and len(b) >= _MIN_RENAME}


def _renamed(text: str, renames: Mapping[str, str]) -> str:
    for old, new in renames.items():
        if old in text:
            text = text.replace(old, new)
    return text


def _renamed_strings(value: Any, renames: Mapping[str, str]) -> Any:
    """A typed-JSON value with ``renames`` applied inside every string it holds."""
    if isinstance(value, str):
        return _renamed(value, renames)
    if isinstance(value, list):
        return [_renamed_strings(v, renames) for v in value]
    if isinstance(value, dict):
        return {k: _renamed_strings(v, renames) for k, v in value.items()}
    return value


def _first(refs: Mapping[str, DataRef], keys: Iterable[str]) -> DataRef | None:
    """The ref at the first of ``keys`` that ``refs`` holds."""
    return next((refs[k] for k in keys if k in refs), None)


def _output_key(uri: str) -> str:
    return os.path.normpath(uri) if "://" not in uri else uri


#: the cause of a gzip output whose bytes differ in its header's time stamp alone
GZIP_TIME_ONLY = ("a gzip file it wrote differs only in the time stamp gzip puts in its header (when it was "
                  "compressed): the compressed data is the same. Write it without one and it reproduces: "
                  "gzip.GzipFile(path, 'wb', mtime=0), or pandas' compression={'method': 'gzip', 'mtime': 0}")
#: the cause of an output whose bytes differ in the times its format records alone, by format
TIME_ONLY = {
    "zip": ("a zip archive it wrote differs only in the times zip records for its members (when each was added, "
            "or its file's mtime): names, order, compression and data are the same. Write it with fixed times and "
            "it reproduces: zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)) given to ZipFile.writestr; "
            "pandas' .csv.zip takes the clock, shutil.make_archive the files' mtimes"),
    "pdf": ("a PDF it wrote differs only in the dates its metadata records (CreationDate, ModDate): the rest is "
            "the same. Set SOURCE_DATE_EPOCH when running it (matplotlib, LaTeX and reportlab write that date "
            "instead), or pass metadata={'CreationDate': None} to matplotlib's savefig"),
    "svg": ("an SVG it wrote differs only in the date its metadata records (dc:date): the drawing is the same. "
            "Set SOURCE_DATE_EPOCH when running it, or pass metadata={'Date': None} to matplotlib's savefig"),
}


def compare_task(o: TaskRecord, n: TaskRecord | None, relocation: Relocation | None = None,
                 elsewhere: dict[str, DataRef] | None = None, *,
                 runs: tuple[list[TaskRecord], list[TaskRecord]] | None = None,
                 order_dependent: dict[str, dict[str, str]] | None = None,
                 renames: Mapping[str, str] | None = None) -> TaskVerdict:
    """The verdict for one pair (causes are added by :func:`explain`).

    With ``relocation``, a recorded output inside the source root is matched to the replayed
    output at the same place in the restored code (then by parameter name, when the parameter
    names one output on both sides), and a return value holding such paths compares equal when
    it is equal up to that move.

    A file a task wrote into a folder parameter is that task's output, so the verdict compares
    what this task wrote. Tasks that run at the same time and fill one folder can each record
    the others' files too (the folder changed while they ran); such a file, not among the
    replayed task's own outputs, is compared with what the replay wrote there (``elsewhere``:
    every output of the replayed run by place).

    ``runs`` (every final task record of the original run and of the replay) lets an old
    whole-folder output (:func:`legacy_folder_outputs`) be compared where that is sound (see
    :func:`legacy_folder_check`); without it, such an output leaves the task ``unverified``.

    ``order_dependent`` (:func:`order_dependent_outputs` of the recorded run): an output whose
    bytes depend on the order tasks ran in is not compared, and the task is ``unverified``.

    ``renames`` (:func:`run_renames`): the run's names and ids, recorded -> replayed, as they
    appear in the paths of outputs named after the run.
    """
    v = TaskVerdict(
        task_name=o.task_name,
        function=o.function,
        map_index=o.map_index,
        subflow=o.subflow,
        original_task_run_id=o.task_run_id,
        original_state=o.state,
        original_result_hash=o.result_hash,
        verdict="missing",
    )
    if n is None:
        v.causes.append("the replay never ran this task (the flow took another path or stopped before it)")
        return v
    v.replay_task_run_id, v.replay_state, v.replay_result_hash = n.task_run_id, n.state, n.result_hash
    if n.error is not None:
        v.error = f"{n.error.type}: {n.error.message}"[:500]
    new_outputs = {_output_key(r.uri): r for r in n.outputs}
    n_params, o_params = Counter(r.param for r in n.outputs), Counter(r.param for r in o.outputs)
    by_param = {r.param: r for r in n.outputs if r.param and n_params[r.param] == 1}
    move = relocation.path if relocation is not None else (lambda u: u)
    legacy: list[tuple[DataRef, str]] = []  # (old whole-folder output, why it cannot be compared)
    unhashed: list[str] = []  # why an output could not be compared (no hash on one side)
    old_folders = legacy_folder_outputs(o)
    racing = (order_dependent or {}).get(o.task_run_id, {})
    for ref in o.outputs:
        if racing and _output_key(ref.uri) in racing:
            unhashed.append(f"output {ref.uri} was also written by task {racing[_output_key(ref.uri)]}, running at the "
                            "same time, with other bytes, and neither task depends on the other: what it held when "
                            "this task ended depends on the order they ran in (appends to one results file, say), so "
                            "nothing compared it; give each task a file of its own to compare it")
            continue
        if ref in old_folders:
            check = legacy_folder_check(o, n, ref, runs, move)
            if isinstance(check, str):
                legacy.append((ref, check))
            else:
                v.outputs.append(check)
            continue
        keys = (_output_key(move(ref.uri)), _output_key(ref.uri))
        if renames and (named := _renamed(keys[0], renames)) != keys[0]:
            keys = (named, *keys)  # named after the run: the replay's run wrote it at its own name
        got = _first(new_outputs, keys)
        if got is None and ref.kind == "directory" and ref.declared and ref.n_files and any(
                _under_folder(r.uri, keys[0]) or _under_folder(r.uri, keys[1]) for r in n.outputs):
            # a declared output folder recorded whole (as reproflow did before it recorded the
            # files a task writes into one), replayed as those files: never one file's hash
            # against the folder's
            legacy.append((ref, "the replay recorded the files the task wrote into it, not the whole folder"))
            continue
        by_elsewhere = elsewhere is not None and ref.param not in (None, "return")
        if got is None and by_elsewhere and not ref.declared:
            got = _first(elsewhere, keys)  # type: ignore[arg-type]
        if got is None and ref.param and o_params[ref.param] == 1:
            got = by_param.get(ref.param)
            if got is not None and (got.kind == "directory") != (ref.kind == "directory"):
                got = None  # a folder is never compared with a file
        if got is None and by_elsewhere and ref.declared:
            # a file in a declared output folder that a task beside this one wrote (in another
            # worker process, where no hook saw it): compared with what the replay wrote there
            got = _first(elsewhere, keys)  # type: ignore[arg-type]
        if ref.kind == "unhashed" or (got is not None and got.kind == "unhashed"):
            side, why = ("recorded run", ref.reason) if ref.kind == "unhashed" else ("replay", got.reason)  # type: ignore[union-attr]
            unhashed.append(f"output {ref.uri} has no hash in the {side}, so nothing compared it: {why or 'no reason recorded'}")
            continue
        check = OutputCheck(
            uri=ref.uri, param=ref.param, expected=ref.sha256,
            actual=got.sha256 if got is not None else None,
            match=got is not None and got.sha256 == ref.sha256,
        )
        if not check.match and got is not None:
            if ref.gzip_sha256 and ref.gzip_sha256 == got.gzip_sha256:
                check.gzip_time_only = True
                if GZIP_TIME_ONLY not in v.causes:
                    v.causes.append(GZIP_TIME_ONLY)
            elif ref.untimed_sha256 and ref.untimed_sha256 == got.untimed_sha256:
                check.time_only = True
                cause = TIME_ONLY.get(untimed_format(ref.uri) or "")
                if cause and cause not in v.causes:
                    v.causes.append(cause)
        v.outputs.append(check)
    if o.result_hash is None and n.result_hash is None:
        v.result_match = None
    else:
        v.result_match = _result_matches(o, n, relocation, renames)
    v.parameters_changed = parameter_changes(o, n, relocation)
    same_state = _final(o.state) == _final(n.state)
    if not same_state:
        v.verdict = "failed" if _final(n.state) == "FAILED" else "differs"
    elif _final(o.state) == "FAILED":
        same_error = (o.error.type if o.error else None) == (n.error.type if n.error else None)
        v.verdict = "reproduced" if same_error else "differs"
    elif all(x.match for x in v.outputs) and v.result_match is not False:
        unhashable = n.result_unhashable or o.result_unhashable
        if n.state == "CACHED":
            v.verdict = "unverified"
            v.causes.append(SERVED_FROM_CACHE)
        elif v.result_match is None and unhashable:
            v.verdict, v.result_unhashable = "unverified", unhashable
            v.causes.append(unverified_cause(unhashable))
        elif legacy or unhashed:
            v.verdict = "unverified"
            v.causes += [legacy_folder_cause(ref.uri, why) for ref, why in legacy] + unhashed
        elif unseen := [f for f in o.findings if f.code == "RPF302"]:
            # all it recorded matches, but it writes a file no record holds: that file was never compared
            v.verdict = "unverified"
            v.causes += [f"{f.message} (RPF302, line {f.line}): pass its path to the task as a parameter and "
                         "record again" for f in unseen[:3]]
        else:
            v.verdict = "reproduced"
    else:
        v.verdict = "differs"
    if v.verdict in ("differs", "failed"):
        v.causes += rewritten_input_changes(o, n, move)
    return v


def rewritten_input_changes(o: TaskRecord, n: TaskRecord, move: Any = None) -> list[str]:
    """The input files the run wrote itself outside any task before ``o`` read them
    (``DataRef.written_in_run``: the flow body's, not checked before the replay) that the replayed
    task read with other contents."""
    move = move or (lambda u: u)
    new = {_output_key(r.uri): r for r in n.inputs}
    out = []
    for ref in o.inputs:
        if not ref.written_in_run:
            continue
        got = new.get(_output_key(move(ref.uri))) or new.get(_output_key(ref.uri))
        if got is None or got.sha256 == ref.sha256:
            continue
        found = f"sha256:{got.sha256[:12]}" if got.sha256 else "nothing"
        out.append(f"input {ref.uri}, which the run wrote outside any task (the flow body) before this task read it, "
                   f"held sha256:{(ref.sha256 or '')[:12]} when recorded and {found} in the replay")
    return out


#: a replayed task that ended CACHED: the replay asks Prefect to recompute every task, but a task
#: declared with ``refresh_cache=False`` is still served its stored result
SERVED_FROM_CACHE = ("the replay was served its cached result (the task sets refresh_cache=False): it did not run "
                     "again, so nothing was recomputed; drop refresh_cache=False to compare it")


def _shown(typed: Any) -> str:
    try:
        value = from_typed_json(typed)
        text = f"Path({str(value)!r})" if isinstance(value, os.PathLike) else repr(value)
    except Exception:  # noqa: BLE001 - a value this reproflow cannot rebuild is shown as stored
        text = repr(typed)
    return text if len(text) <= 120 else text[:117] + "..."


def parameter_changes(o: TaskRecord, n: TaskRecord, relocation: Relocation | None = None) -> list[str]:
    """The parameters the replayed task ``n`` was given otherwise than the recorded ``o``, one
    line each with both values (a path moved into the restored code counts as the same)."""
    back = relocation.reverse if relocation is not None and relocation.recorded_root is not None else None
    out: list[str] = []
    for name, h in o.parameter_hashes.items():
        nh = n.parameter_hashes.get(name)
        if not h or not nh or nh == h:
            continue
        if back is not None and name in n.parameters:
            moved = back.typed(n.parameters[name])
            try:
                if moved != n.parameters[name] and stable_hash(from_typed_json(moved)) == h:
                    continue
            except Exception:  # noqa: BLE001 - not rebuildable here: compare as stored
                pass
        a = _shown(o.parameters[name]) if name in o.parameters else f"hash {h[:19]}"
        b = _shown(n.parameters[name]) if name in n.parameters else f"hash {nh[:19]}"
        out.append(f"parameter {name} was {a} when recorded and is {b} in the replay")
    return out


def order_dependent_outputs(tasks: list[TaskRecord]) -> dict[str, dict[str, str]]:
    """The outputs of a run whose bytes depend on the order its tasks ran in: a path that two
    tasks recorded as an output with different bytes, which ran at the same time (their runs
    overlapped, or both are runs of one ``.map``) and neither of which is upstream of the other
    (no edge of the run's DAG leads from one to the other), so a scheduler may run them in either
    order: mapped tasks appending their line to one results file, tasks each overwriting one
    "latest" file. What such a path held when each task ended is the order's, not the task's.
    Tasks the flow called one after the other (never overlapping, not one map) keep their order.
    ``{task_run_id: {output path: the other task's label}}``; empty for most runs (a path one
    task wrote, or several wrote with the same bytes, as a file a task beside its writer saw
    complete)."""
    from ..recorder._dag import reachable, task_edges

    writers: dict[str, list[tuple[TaskRecord, str | None]]] = defaultdict(list)
    for t in tasks:
        for r in t.outputs:
            if r.kind in ("file", "object", "missing"):
                writers[_output_key(r.uri)].append((t, r.sha256))
    shared = {p: ws for p, ws in writers.items() if len(ws) > 1 and len({d for _, d in ws}) > 1}
    if not shared:
        return {}

    parents: dict[str, set[str]] = defaultdict(set)
    for e in task_edges(tasks):
        parents[e.dst].add(e.src)
    above: dict[str, set[str]] = {}

    def ancestors(tid: str) -> set[str]:
        if tid not in above:
            above[tid] = reachable(parents, [tid])
        return above[tid]

    out: dict[str, dict[str, str]] = {}
    for path, ws in shared.items():
        for t, digest in ws:
            for u, other in ws:
                if u is t or other == digest:
                    continue
                one_map = t.map_index is not None and u.map_index is not None and t.task_name == u.task_name
                if not (one_map or _overlap(t, u)):
                    continue
                if u.task_run_id in ancestors(t.task_run_id) or t.task_run_id in ancestors(u.task_run_id):
                    continue
                out.setdefault(t.task_run_id, {})[path] = _label(u)
                break
    return out


def legacy_folder_outputs(o: TaskRecord) -> list[DataRef]:
    """Outputs of a record made before reproflow recorded a folder's new files one by one: a
    task that wrote into a folder it was passed (an inferred input) recorded the whole folder
    as its output, with the files other tasks had put there (or were putting there at the same
    time). What this task wrote cannot be told apart from the rest, so such an output is never
    compared (neither "differs" nor "reproduced"); today's records never hold one: a folder
    read before the task is recorded as the files written into it."""
    folders_read = {_output_key(r.uri) for r in o.inputs if r.kind == "directory" and not r.declared}
    return [r for r in o.outputs if r.kind == "directory" and not r.declared and r.param not in (None, "return")
            and _output_key(r.uri) in folders_read]


def legacy_folder_cause(uri: str, why: str = "") -> str:
    return (f"folder {uri} was recorded whole, as an older reproflow did (before it recorded the files each task "
            f"wrote into a folder), and cannot be compared soundly{': ' + why if why else ''}; nothing compared "
            "it: record the run again to compare it")


def _under_folder(uri: str, folder: str) -> bool:
    key = _output_key(uri)
    return key == folder or key.startswith(folder.rstrip("/") + "/")


def _overlap(a: TaskRecord, b: TaskRecord) -> bool:
    return a.started_at < b.ended_at and b.started_at < a.ended_at


def _label(t: TaskRecord) -> str:
    return t.task_name + (f"[{t.map_index}]" if t.map_index is not None else "")


def legacy_folder_check(o: TaskRecord, n: TaskRecord | None, ref: DataRef,
                        runs: tuple[list[TaskRecord], list[TaskRecord]] | None,
                        move: Any = None) -> OutputCheck | str:
    """Compare an old whole-folder output where that is sound, else say why not.

    The old record holds the folder's tree hash when the task ended: what was in it before, with
    the task's changes, and with whatever other tasks running at the same time had put there
    (maybe half written). The replay records, for the same task, the folder's tree before it
    (hash and file names) and the files it wrote or removed. The folder's state at the task's
    end in the replay is therefore known exactly when:

    - no other task of the recorded run wrote into the folder while this one ran (else the old
      hash may hold its files, complete or not), nor did one in the replay;
    - every file the folder held before the task in the replay was written by a replayed task
      that ended before this one started (its hash is known), and those hashes give the tree
      hash the replay recorded for the folder before the task (so nothing else wrote into it).

    Then that state's tree hash is compared with the old one; otherwise the reason is returned."""
    from ..capture._digest import tree_digest

    if runs is None or n is None:
        return "the other tasks of the runs were not at hand to tell whether that is sound"
    move = move or (lambda u: u)
    original, replayed = runs
    old_dir, new_dir = _output_key(ref.uri), _output_key(move(ref.uri))
    for side, tasks, me, folder in (("recorded run", original, o, old_dir), ("replay", replayed, n, new_dir)):
        for t in tasks:
            if t.task_run_id != me.task_run_id and _overlap(t, me) and any(_under_folder(r.uri, folder) for r in t.outputs):
                return f"task {_label(t)} wrote into it at the same time in the {side}"
    before = next((r for r in n.inputs if r.kind == "directory" and _output_key(r.uri) == new_dir), None)
    if before is None or before.sha256 is None:
        return "the replay recorded no state of it before the task"
    names = before.entries if before.entries is not None else ([] if before.n_files == 0 else None)
    if names is None:
        return "it held too many files before the task for their names to be recorded"
    known: dict[str, tuple[Any, str]] = {}  # relative name -> (ended_at, sha256) of its last writer before n
    for t in replayed:
        if t.task_run_id == n.task_run_id or t.ended_at > n.started_at:
            continue
        for r in t.outputs:
            if r.kind in ("file", "missing") and _under_folder(r.uri, new_dir) and _output_key(r.uri) != new_dir:
                rel = os.path.relpath(_output_key(r.uri), new_dir).replace(os.sep, "/")
                if rel not in known or known[rel][0] <= t.ended_at:
                    known[rel] = (t.ended_at, r.sha256 if r.kind == "file" else "")
    state: dict[str, str] = {}
    for rel in names:
        digest = known.get(rel, (None, ""))[1]
        if not digest:
            return f"it held {rel} before the task, which no task of the replay wrote, so its hash is not known"
        state[rel] = digest
    if tree_digest(sorted(state.items())) != before.sha256:
        return "what it held before the task in the replay is not what the replayed tasks wrote into it"
    for r in n.outputs:
        if _under_folder(r.uri, new_dir) and _output_key(r.uri) != new_dir:
            rel = os.path.relpath(_output_key(r.uri), new_dir).replace(os.sep, "/")
            if r.kind == "missing":
                state.pop(rel, None)
            elif r.kind == "file" and r.sha256:
                state[rel] = r.sha256
            else:
                return f"the replay recorded {rel} as {r.kind}, not as a file's hash"
    actual = tree_digest(sorted(state.items()))
    return OutputCheck(uri=ref.uri, param=ref.param, expected=ref.sha256, actual=actual, match=actual == ref.sha256)


def unverified_cause(what: str) -> str:
    """Why a task is unverified, and the two ways to make it comparable."""
    return (f"its return value ({what}) has no stable hash, so nothing compared it; register a hasher for "
            "its class (reproflow.register_hasher), or write it to a declared output file")


def _final(state: str) -> str:
    return "COMPLETED" if state in ("COMPLETED", "CACHED") else state


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def environment_drift(old: Environment | None, new: Environment | None, old_hw: Hardware | None = None,
                      new_hw: Hardware | None = None) -> list[str]:
    """Human-readable differences between two recorded environments (and hardware)."""
    out: list[str] = []
    if old is not None and new is not None:
        if old.python.version != new.python.version or old.python.implementation != new.python.implementation:
            out.append(f"Python {old.python.implementation} {old.python.version} -> {new.python.implementation} {new.python.version}")
        po, pn = old.platform, new.platform
        for label, a, b in (("OS", f"{po.system} {po.release}", f"{pn.system} {pn.release}"),
                            ("machine", po.machine, pn.machine), ("libc", po.libc, pn.libc)):
            if a != b:
                out.append(f"{label} {a} -> {b}")
        versions_o = {_norm(d.name): d for d in old.distributions}
        versions_n = {_norm(d.name): d for d in new.distributions}
        changed = [f"{versions_o[k].name} {versions_o[k].version} -> {versions_n[k].version}"
                   for k in sorted(versions_o.keys() & versions_n.keys())
                   if versions_o[k].version != versions_n[k].version]
        removed = [f"{versions_o[k].name} {versions_o[k].version} removed" for k in sorted(versions_o.keys() - versions_n.keys())]
        added = [f"{versions_n[k].name} {versions_n[k].version} added" for k in sorted(versions_n.keys() - versions_o.keys())]
        for item in changed + removed + added:
            out.append(f"package {item}")
    if old_hw is not None and new_hw is not None:
        if old_hw.cpu.model != new_hw.cpu.model:
            out.append(f"CPU {old_hw.cpu.model} -> {new_hw.cpu.model}")
        gpus_o = [g.name for g in old_hw.gpus]
        gpus_n = [g.name for g in new_hw.gpus]
        if gpus_o != gpus_n:
            out.append(f"GPUs {', '.join(gpus_o) or 'none'} -> {', '.join(gpus_n) or 'none'}")
        for label, a, b in (("GPU driver", old_hw.gpu_driver, new_hw.gpu_driver),
                            ("CUDA driver", old_hw.cuda_driver_version, new_hw.cuda_driver_version)):
            if a != b and (a or b):
                out.append(f"{label} {a or 'none'} -> {b or 'none'}")
        blas_o = sorted(f"{t.internal_api} {t.version}" for t in old_hw.threadpools)
        blas_n = sorted(f"{t.internal_api} {t.version}" for t in new_hw.threadpools)
        if blas_o != blas_n:
            out.append(f"BLAS/OpenMP {', '.join(blas_o) or 'none'} -> {', '.join(blas_n) or 'none'}")
    return out


def library_drift(store: Store, old: Run, new: Run) -> list[str]:
    """The system libraries whose version, OS package or bytes differ between two runs, one line
    each ("system library libopenblas.so.0: 0.3.21 -> 0.3.27 (libopenblas0-pthread)")."""
    from ..capture.system import drift, run_libraries

    return [f"system library {name}: {words}" for name, _, _, words in drift(run_libraries(store, old), run_libraries(store, new))]


def environment_causes(names: Iterable[str], old: dict[str, EnvVar], new: dict[str, EnvVar]) -> list[str]:
    """One cause per environment variable in ``names`` (those a task reads) that is set otherwise
    in the replay than when the task was recorded (a secret by its keyed fingerprint)."""
    def shown(v: EnvVar | None) -> str:
        if v is None:
            return "unset"
        return "a secret value (redacted)" if v.redacted else repr(v.value)

    out: list[str] = []
    for name in names:
        a, b = old.get(name), new.get(name)
        if a is None and b is None:
            continue
        if a is not None and b is not None and (a.redacted or b.redacted):
            if a.redacted and b.redacted and a.fingerprint == b.fingerprint:
                continue
            out.append(f"environment variable {name}, which the task reads, holds another secret value in the "
                       "replay than when recorded: set it as recorded and replay again")
            continue
        if a is not None and b is not None and a.value == b.value:
            continue
        out.append(f"environment variable {name}, which the task reads, was {shown(a)} when recorded and is "
                   f"{shown(b)} in the replay: set it as recorded and replay again")
    return out


def explain(
    verdicts: list[TaskVerdict],
    original: Run,
    drift: list[str],
    inputs: Iterable[InputCheck],
    env_causes: dict[str, list[str]] | None = None,
) -> None:
    """Add likely causes to every verdict that is not ``reproduced`` or ``unverified`` (in place).

    ``env_causes``: per recorded task run id, the environment variables it reads that the replay
    set otherwise (:func:`environment_causes`)."""
    from ..recorder._dag import upstream_map

    by_id = {t.task_run_id: t for t in original.final_tasks()}
    ups = upstream_map(original)
    bad = {v.original_task_run_id for v in verdicts if v.verdict not in ("reproduced", "unverified")}
    unchecked = {v.original_task_run_id for v in verdicts if v.verdict == "unverified"}
    changed_inputs = [i for i in inputs if i.status in ("changed", "missing")]
    pkg = [d for d in drift if d.startswith("package ")]
    py = [d for d in drift if d.startswith("Python")]
    hw = [d for d in drift if d.startswith(("CPU", "GPU", "CUDA", "BLAS", "OS", "machine", "libc", "system library"))]
    for v in verdicts:
        if v.verdict in ("reproduced", "unverified") or v.original_task_run_id is None:
            continue
        o = by_id.get(v.original_task_run_id)
        causes: list[str] = []
        if v.verdict == "failed" and v.error:
            causes.append(f"the task raised {v.error}")
        for i in changed_inputs:
            if o is not None and any(r.uri == i.uri for r in o.inputs):
                causes.append(f"input {i.uri} {'is missing' if i.actual is None else 'changed'} "
                              f"(recorded sha256:{(i.expected or '')[:12]}, found {('sha256:' + i.actual[:12]) if i.actual else 'nothing'})")
        upstream_bad = sorted({by_id[s].task_name for srcs in ups.get(v.original_task_run_id, {}).values()
                               for s in srcs if s in bad and s in by_id})
        env_changed = (env_causes or {}).get(v.original_task_run_id or "", [])
        causes += env_changed
        fed = {p for p, srcs in ups.get(v.original_task_run_id, {}).items() if any(s in bad or s in unchecked for s in srcs)}
        params_changed = [f"{line} (not from a task whose result differs: the flow body computed it otherwise, "
                          "from the clock, the environment or something else that changed)"
                          for line in v.parameters_changed if line.split(" ", 2)[1] not in fed]
        causes += params_changed
        if upstream_bad:
            causes.append(f"upstream task(s) {', '.join(upstream_bad)} did not reproduce, so this task got different inputs")
        upstream_unchecked = sorted({by_id[s].task_name for srcs in ups.get(v.original_task_run_id, {}).values()
                                     for s in srcs if s in unchecked and s in by_id})
        if upstream_unchecked:
            causes.append(f"upstream task(s) {', '.join(upstream_unchecked)} returned a value with no stable hash "
                          "(unverified): it may have differed, and fed this task")
        if pkg:
            causes.append("package versions changed: " + "; ".join(d[len("package "):] for d in pkg[:5])
                          + (f" (+{len(pkg) - 5} more)" if len(pkg) > 5 else ""))
        causes += [f"{d} changed" if not d.endswith("changed") else d for d in py]
        if hw:
            causes.append("hardware or system changed: " + "; ".join(hw))
        if o is not None:
            flagged = [f"{f.code} {f.message}" for f in o.findings if f.code.upper().startswith("RPF1")]
            if flagged:
                causes.append("the checks flagged this task: " + "; ".join(flagged[:3]))
        rewritten = any(c.startswith("input ") for c in v.causes)  # compare_task's: the flow body wrote it otherwise
        stamped = v.verdict == "differs" and v.result_match is not False and all(
            x.match or x.gzip_time_only or x.time_only for x in v.outputs)  # nothing differs but the times a file records
        if not stamped and not (changed_inputs and any(c.startswith("input ") for c in causes)) and not rewritten and not upstream_bad and not upstream_unchecked and not pkg and not py and not hw and not env_changed and not params_changed and v.verdict != "missing":
            seed = f" (recorded seed {o.seed})" if o is not None and o.seed is not None else " (no seed was recorded for it)"
            if v.verdict == "failed":  # no output to differ: the same code, inputs and environment ran without it
                causes.append("it did not raise when recorded, with the same code, inputs and environment: something the "
                              "record does not hold differs (a file or service it reached undeclared, the clock, "
                              f"chance{seed})")
            else:
                hint = ""
                if o is not None and not o.findings and original.record.pythonhashseed is None:
                    # nothing the checks know of: one cause they cannot see is a set of strings
                    # written or returned in its own order, which string hashing changes per process
                    hint = ("; string hashing was random when recorded (PYTHONHASHSEED unset), so a set of strings "
                            "iterates in another order in every process: if the task writes or returns one (a pickled "
                            "pydantic model holds one), sort it, or record with PYTHONHASHSEED=0")
                causes.append(f"nondeterminism in this task{seed}: same code, inputs and environment gave different "
                              f"outputs{hint}")
        v.causes = causes + [c for c in v.causes if c not in causes]


__all__ = ["compare_task", "environment_causes", "environment_drift", "explain", "legacy_folder_cause", "legacy_folder_check",
           "legacy_folder_outputs", "match_tasks", "rewritten_input_changes",
           "unverified_cause"]
