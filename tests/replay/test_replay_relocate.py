"""Relocation: paths inside the recorded source root are moved into the restored code.

Unit level (no Prefect): the path mapping itself, typed parameters, where the runner is started,
input verification in the restored tree (restored from a stored copy or copied from the
original path, which is read and never written) and output/result comparison after the move.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from replay_records import file_ref, sha, task, write_run

from reproflow.values._typed import stable_hash, to_typed_json
from reproflow.errors import InputChanged
from reproflow.records import DataRef
from reproflow.replay._compare import compare_task, match_tasks
from reproflow.replay._execute import write_spec
from reproflow.replay._inputs import external_inputs, verify_inputs
from reproflow.replay._plan import prepare
from reproflow.replay._relocate import Relocation, relative_to_root, relocate_path
from reproflow.store import Store


def test_prefix_matching_is_on_path_components() -> None:
    """/a/bc is not under /a/b; the root itself, nested files, '..' and relative paths behave."""
    assert relative_to_root("/a/b/c.txt", "/a/b") == "c.txt"
    assert relative_to_root("/a/b/x/y.txt", "/a/b/") == "x/y.txt"
    assert relative_to_root("/a/b", "/a/b") == "."
    assert relative_to_root("/a/bc/c.txt", "/a/b") is None
    assert relative_to_root("/a/b/../c.txt", "/a/b") is None
    assert relative_to_root("b/c.txt", "/a/b") is None
    assert relative_to_root("/a/b/c.txt", None) is None
    assert relocate_path("/a/b/out/r.txt", "/a/b", "/w/source") == "/w/source/out/r.txt"
    assert relocate_path("/a/b", "/a/b", "/w/source") == "/w/source"
    assert relocate_path("/a/bc/r.txt", "/a/b", "/w/source") == "/a/bc/r.txt"
    assert relocate_path("out/r.txt", "/a/b", "/w/source") == "out/r.txt"


def test_typed_parameters_are_relocated() -> None:
    """Path values and absolute path strings under the root move, nested in lists, dicts,
    tuples and sets; relative strings, paths outside the root and other values do not."""
    reloc = Relocation("/repo", "/w/source")
    params = to_typed_json({
        "data": Path("/repo/data/in.csv"),
        "ext": Path("/data/raw.csv"),
        "sibling": "/repository/x",
        "rel": "out/r.txt",
        "name": "hello",
        "many": [Path("/repo/a"), ("/repo/b", 3), {Path("/repo/c")}],
        "cfg": {"out": "/repo/out"},
        "n": 2.5,
    })
    moved = {k: reloc.typed(v) for k, v in params.items()}
    from reproflow.values._typed import from_typed_json

    got = from_typed_json(moved)
    assert got["data"] == Path("/w/source/data/in.csv")
    assert got["ext"] == Path("/data/raw.csv")
    assert got["sibling"] == "/repository/x" and got["rel"] == "out/r.txt" and got["name"] == "hello"
    assert got["many"] == [Path("/w/source/a"), ("/w/source/b", 3), {Path("/w/source/c")}]
    assert got["cfg"] == {"out": "/w/source/out"} and got["n"] == 2.5
    assert {k: reloc.reverse.typed(v) for k, v in moved.items()} == params
    assert Relocation(None, "/w").typed(params) == params


def test_cwd_is_the_counterpart_in_the_restored_code() -> None:
    """Inside the root: the same relative folder; outside or unknown: the restored root."""
    reloc = Relocation("/repo", "/w/source")
    assert reloc.cwd("/repo") == ("/w/source", True)
    assert reloc.cwd("/repo/sub/dir") == ("/w/source/sub/dir", True)
    assert reloc.cwd("/elsewhere") == ("/w/source", False)


def test_spec_runs_in_the_restored_code(tmp_path: Path, store: Store) -> None:
    """The runner spec never names the original folder, even when it still exists: the cwd and
    path parameters inside the recorded root point into the restored source, others are kept."""
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    params = to_typed_json({"data": Path(repo / "data.csv"), "out": str(repo / "out" / "r.txt"),
                            "ext": Path("/srv/data.csv")})
    run_id = write_run(store, source_files={"flow.py": b"x = 1\n"}, source_root=str(repo), parameters=params)
    prepared = prepare(store, run_id, in_place=True)
    restored = tmp_path / "work" / "source"
    restored.mkdir(parents=True)
    spec_path, _ = write_spec(prepared, store, restored, tmp_path / "work")
    spec = json.loads(spec_path.read_text())
    assert spec["cwd"] == str(restored)
    assert spec["parameters"]["data"] == {"__rf__": "path", "v": str(restored / "data.csv")}
    assert spec["parameters"]["out"] == str(restored / "out" / "r.txt")
    assert spec["parameters"]["ext"] == {"__rf__": "path", "v": "/srv/data.csv"}
    assert spec["entry_file"] == str(restored / "flow.py")
    assert str(repo) not in json.dumps(spec)
    assert prepared.plan.source_root == str(repo) and prepared.plan.cwd == "."


def _tree(path: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(path)): (p.stat().st_mtime_ns, sha(p.read_bytes()))
            for p in sorted(path.rglob("*")) if p.is_file()}


def _input_task(path: Path, stored: str | None = None) -> list:
    return [task("r", 0, "c", name="load", inputs=[file_ref(path, "path", stored)])]


def test_input_in_the_restored_code_is_verified_there(tmp_path: Path, store: Store) -> None:
    """An input under the root is checked in the restored copy; the user's file is not read
    when the copy already hashes as recorded, and nothing in the user's tree changes."""
    repo, restored = tmp_path / "repo", tmp_path / "w"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "in.csv").write_text("a\n1\n")
    tasks = _input_task(repo / "data" / "in.csv")
    (restored / "data").mkdir(parents=True)
    (restored / "data" / "in.csv").write_text("a\n1\n")
    (repo / "data" / "in.csv").write_text("edited since\n")  # the user's copy moved on
    before = _tree(repo)
    checks = verify_inputs(external_inputs(tasks), tasks, store, relocation=Relocation(str(repo), str(restored)))
    assert [(c.status, c.location) for c in checks] == [("ok", str(restored / "data" / "in.csv"))]
    assert _tree(repo) == before


def test_missing_relocated_input_restored_from_stored_copy(tmp_path: Path, store: Store) -> None:
    """Not in the restored code, original gone: the stored copy is written into the restored
    code (not at the original path)."""
    repo, restored = tmp_path / "repo", tmp_path / "w"
    repo.mkdir()
    raw = repo / "raw.bin"
    raw.write_bytes(b"\x00\x01raw")
    tasks = _input_task(raw, store.put_blob_file(raw))
    raw.unlink()
    checks = verify_inputs(external_inputs(tasks), tasks, store, relocation=Relocation(str(repo), str(restored)))
    assert checks[0].status == "restored" and "stored" in (checks[0].note or "")
    assert (restored / "raw.bin").read_bytes() == b"\x00\x01raw"
    assert not raw.exists()


def test_missing_relocated_input_copied_from_original(tmp_path: Path, store: Store) -> None:
    """No stored copy, but the original path still hashes as recorded: copied into the restored
    code, the original read only (same bytes, same mtime)."""
    repo, restored = tmp_path / "repo", tmp_path / "w"
    (repo / "d").mkdir(parents=True)
    raw = repo / "d" / "raw.bin"
    raw.write_bytes(b"untracked data")
    tasks = _input_task(raw)
    before = _tree(repo)
    checks = verify_inputs(external_inputs(tasks), tasks, store, relocation=Relocation(str(repo), str(restored)))
    assert checks[0].status == "restored" and str(raw) in (checks[0].note or "")
    assert (restored / "d" / "raw.bin").read_bytes() == b"untracked data"
    assert _tree(repo) == before


def test_relocated_input_missing_everywhere_refuses_naming_the_fix(tmp_path: Path, store: Store) -> None:
    """Nowhere to be had: one line naming the file and store_inputs / REPROFLOW_STORE_INPUTS."""
    repo, restored = tmp_path / "repo", tmp_path / "w"
    repo.mkdir()
    raw = repo / "raw.bin"
    raw.write_bytes(b"gone soon")
    tasks = _input_task(raw)
    raw.unlink()
    with pytest.raises(InputChanged) as info:
        verify_inputs(external_inputs(tasks), tasks, store, relocation=Relocation(str(repo), str(restored)))
    msg = str(info.value)
    assert "\n" not in msg and str(raw) in msg and "store_inputs=True" in msg and "REPROFLOW_STORE_INPUTS=1" in msg
    assert not restored.exists()


def test_relocated_input_changed_in_the_users_tree_refuses_with_both_hashes(tmp_path: Path, store: Store) -> None:
    """Not restored with the code and the user's file changed: refused with both hashes."""
    repo, restored = tmp_path / "repo", tmp_path / "w"
    repo.mkdir()
    raw = repo / "raw.bin"
    raw.write_bytes(b"v1")
    tasks = _input_task(raw)
    raw.write_bytes(b"v2")
    with pytest.raises(InputChanged) as info:
        verify_inputs(external_inputs(tasks), tasks, store, relocation=Relocation(str(repo), str(restored)))
    assert info.value.expected == sha(b"v1") and info.value.actual == sha(b"v2")
    checks = verify_inputs(external_inputs(tasks), tasks, store, allow_changed=True,
                           relocation=Relocation(str(repo), str(restored)))
    assert checks[0].status == "changed" and (restored / "raw.bin").read_bytes() == b"v2"
    assert raw.read_bytes() == b"v2"


def test_relocated_outputs_and_results_compare_equal() -> None:
    """An output written at the relocated place matches the recorded one; a returned path
    inside the root is equal up to the move; a different byte still differs."""
    reloc = Relocation("/repo", "/w/source")
    o = task("a", 0, "c", name="write", outputs=[DataRef(uri="/repo/out/r.txt", sha256="aa", param="out")],
             result_hash=stable_hash(Path("/repo/out/r.txt")))
    n = task("b", 0, "c", name="write", outputs=[DataRef(uri="/w/source/out/r.txt", sha256="aa", param="out")],
             result_hash=stable_hash(Path("/w/source/out/r.txt")))
    n.result = to_typed_json(Path("/w/source/out/r.txt"))
    assert compare_task(o, n).verdict == "differs"  # without the mapping: neither matches
    v = compare_task(o, n, reloc)
    assert v.verdict == "reproduced" and v.outputs[0].match and v.result_match is True
    n.outputs[0].sha256 = "ab"
    assert compare_task(o, n, reloc).verdict == "differs"


def test_relocated_parameters_pair_with_their_originals() -> None:
    """Two calls of one task with path parameters pair by their parameters once the replayed
    paths are mapped back, whatever order the replay ran them in."""
    from reproflow.values._typed import hash_mapping

    def call(run: str, i: int, tid: str, p: str) -> object:
        t = task(run, i, "c", name="read", tid=tid, params_hash=hash_mapping({"p": Path(p)})[1])
        t.parameters = {"p": to_typed_json(Path(p))}
        return t

    orig = [call("a", 0, "o1", "/repo/x"), call("a", 1, "o2", "/repo/y")]
    new = [call("b", 0, "n1", "/w/source/y"), call("b", 1, "n2", "/w/source/x")]
    order_o, order_n = {"o1": (0, 0), "o2": (0, 1)}, {"n1": (0, 0), "n2": (0, 1)}
    pairs, _ = match_tasks(orig, new, order_o, order_n, relocation=Relocation("/repo", "/w/source"))  # type: ignore[arg-type]
    assert [(o.task_run_id, n.task_run_id) for o, n in pairs if n] == [("o1", "n2"), ("o2", "n1")]


def test_plan_says_where_each_input_comes_from(tmp_path: Path, store: Store) -> None:
    """On a machine without the original folder: an input in the source snapshot is fine, one
    with a stored copy is restored, one with neither is a problem; outside inputs stay put."""
    repo = tmp_path / "gone"  # never created: the recording machine's folder
    ext = tmp_path / "ext.csv"
    ext.write_text("x\n")
    copy = store.put_blob(b"raw")

    def ref(uri: str, digest: str, blob: str | None = None) -> DataRef:
        return DataRef(uri=uri, kind="file", sha256=digest, param="p", stored_blob=blob)

    inputs = [ref(f"{repo}/data/in.csv", sha(b"a\n")), ref(f"{repo}/raw.bin", sha(b"raw"), copy),
              ref(f"{repo}/lost.bin", sha(b"lost")), ref(str(ext), sha(b"x\n"))]
    run_id = write_run(store, source_files={"flow.py": b"", "data/in.csv": b"a\n"}, source_root=str(repo),
                       tasks=[{"name": "load", "inputs": inputs}])
    plan = prepare(store, run_id, in_place=True).plan
    got = {i.uri: (i.in_source, i.origin) for i in plan.inputs}
    assert got == {f"{repo}/data/in.csv": ("data/in.csv", "source snapshot"),
                   f"{repo}/raw.bin": ("raw.bin", "stored copy"),
                   f"{repo}/lost.bin": ("lost.bin", "missing"),
                   str(ext): (None, "in place")}
    assert [p for p in plan.problems if "lost.bin" in p] and not [p for p in plan.problems if "in.csv" in p]


def test_paths_through_a_symlink_are_relocated(tmp_path: Path) -> None:
    """A path that reaches the recorded root through a symlink is inside it; a symlinked path
    that resolves outside the root, or a sibling with a common string prefix, is not."""
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (tmp_path / "ext").mkdir()
    (tmp_path / "link").symlink_to(root)
    (tmp_path / "extlink").symlink_to(tmp_path / "ext")
    reloc = Relocation(str(root), "/w/source")
    assert reloc.path(str(tmp_path / "link" / "data" / "in.csv")) == "/w/source/data/in.csv"
    assert reloc.typed({"__rf__": "path", "v": str(tmp_path / "link")}) == {"__rf__": "path", "v": "/w/source"}
    assert reloc.path(str(tmp_path / "extlink" / "x")) == str(tmp_path / "extlink" / "x")
    assert reloc.relative(str(tmp_path / "repo2" / "x")) is None


def test_unpickled_values_are_relocated() -> None:
    """A stored result (a pickle) gets the same move: Path objects keep their type, strings,
    nested lists/tuples/named tuples/sets/dicts are walked; relative paths, paths outside the
    root and other objects are left alone; nothing recorded means no change."""
    from collections import OrderedDict, namedtuple
    from pathlib import PurePosixPath

    Pair = namedtuple("Pair", "left right")
    reloc = Relocation("/repo", "/w/source")
    other = object()
    value = {
        "out": Path("/repo/out/x.csv"),
        "pure": PurePosixPath("/repo/a"),
        "ext": Path("/data/raw.csv"),
        "rel": Path("out/r.txt"),
        "s": "/repo/s.txt",
        "sib": "/repository/x",
        "nested": [("/repo/t", 1), {Path("/repo/u")}, Pair(Path("/repo/l"), "r")],
        "od": OrderedDict([("/repo/k", Path("/repo/v"))]),
        "obj": other,
    }
    got = reloc.value(value)
    assert got["out"] == Path("/w/source/out/x.csv") and type(got["out"]) is type(value["out"])
    assert got["pure"] == PurePosixPath("/w/source/a") and type(got["pure"]) is PurePosixPath
    assert got["ext"] is value["ext"] and got["rel"] is value["rel"]
    assert got["s"] == "/w/source/s.txt" and got["sib"] == "/repository/x"
    assert got["nested"] == [("/w/source/t", 1), {Path("/w/source/u")}, Pair(Path("/w/source/l"), "r")]
    assert type(got["nested"][2]) is Pair
    assert got["od"] == OrderedDict([("/w/source/k", Path("/w/source/v"))]) and type(got["od"]) is OrderedDict
    assert got["obj"] is other
    assert Relocation(None, "/w").value(value) is value


def test_partial_replay_moves_paths_inside_stored_results(tmp_path: Path, store: Store) -> None:
    """`--task clean` feeds clean with load's stored (pickled) result: a path in it that pointed
    into the recorded root reaches the task pointing into the restored code."""
    import pickle

    from reproflow.replay._runner import _param

    repo = tmp_path / "repo"
    result = {"table": Path(repo / "out" / "load.csv"), "external": Path("/srv/raw.csv")}
    tasks = [
        dict(name="load", tid="t-load", result_hash="sha256:L", result_blob=store.put_blob(pickle.dumps(result))),
        dict(name="clean", tid="t-clean", upstream={"df": ["t-load"]},
             parameters={"df": {"__rf__": "opaque", "type": "dict", "hash": None, "repr": ""}},
             parameter_hashes={"df": "sha256:L"}, result_hash="sha256:C"),
    ]
    run_id = write_run(store, tasks=tasks, source_files={"flow.py": b"x = 1\n"}, source_root=str(repo))
    prepared = prepare(store, run_id, in_place=True, task="clean")
    restored = tmp_path / "work" / "source"
    restored.mkdir(parents=True)
    spec_path, _ = write_spec(prepared, store, restored, tmp_path / "work")
    spec = json.loads(spec_path.read_text())
    assert spec["mode"] == "tasks" and spec["relocation"] == [str(repo), str(restored)]
    (item,) = spec["tasks"]
    source = item["params"]["df"]
    assert source["kind"] == "blob"
    fed = _param("df", source, {}, "task 'clean'", Relocation(*spec["relocation"]))
    assert fed == {"table": restored / "out" / "load.csv", "external": Path("/srv/raw.csv")}


def test_src_layout_packages_come_from_the_restored_code(tmp_path: Path, store: Store,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A src-layout project editable-installed in the current environment (its src/ folder on
    sys.path, as a .pth file puts it) is imported from the restored code by the runner, not
    from the user's checkout."""
    import importlib
    import sys

    from reproflow.replay._runner import _prepare_path

    user = tmp_path / "repo"
    (user / "src" / "rfpkg_layout").mkdir(parents=True)
    (user / "src" / "rfpkg_layout" / "__init__.py").write_text("WHERE = 'user checkout'\n")
    run_id = write_run(store, source_files={"flow.py": b"import rfpkg_layout\n",
                                            "src/rfpkg_layout/__init__.py": b"WHERE = 'recorded'\n"},
                       source_root=str(user))
    restored = tmp_path / "work" / "source"
    (restored / "src" / "rfpkg_layout").mkdir(parents=True)
    (restored / "src" / "rfpkg_layout" / "__init__.py").write_text("WHERE = 'recorded'\n")
    (restored / "flow.py").write_text("import rfpkg_layout\n")
    spec_path, _ = write_spec(prepare(store, run_id, in_place=True), store, restored, tmp_path / "work")
    spec = json.loads(spec_path.read_text())
    assert str(restored / "src") in spec["sys_path"] and str(user) not in json.dumps(spec)

    monkeypatch.setattr(sys, "path", [*sys.path, str(user / "src")])  # the editable install's entry
    monkeypatch.delitem(sys.modules, "rfpkg_layout", raising=False)
    _prepare_path(spec)
    try:
        assert importlib.import_module("rfpkg_layout").WHERE == "recorded"
    finally:
        sys.modules.pop("rfpkg_layout", None)


def test_a_folder_the_run_wrote_into_is_taken_from_where_it_is_when_it_can_be(tmp_path: Path, store: Store) -> None:
    """A results folder a task was given and wrote into, left from an earlier run: the run wrote
    into it, so its original path may no longer hold the state recorded before the run. Where
    that path is there, the plan takes it from there (the replay hashes it and stops if it
    differs) and says so as a risk; it said the replay could not run, and then ran it. Gone,
    it is a problem naming REPROFLOW_STORE_INPUTS."""
    from reproflow.capture._files import hash_local

    repo = tmp_path / "repo"
    out = repo / "out"
    out.mkdir(parents=True)
    (out / "summary.json").write_text("{}")
    folder = hash_local(out)
    folder.param = "out_dir"
    written = DataRef(uri=str(out / "summary.json"), kind="file", sha256=sha(b"{}"), param="out_dir")
    run_id = write_run(store, source_files={"flow.py": b""}, source_root=str(repo),
                       tasks=[{"name": "summarize", "inputs": [folder], "outputs": [written]}])
    plan = prepare(store, run_id, in_place=True).plan
    assert [(i.uri, i.origin, i.written_by) for i in plan.inputs] == [(str(out), "original path", ["summarize"])]
    assert plan.problems == [] and any(str(out) in r and "written by the run itself" in r for r in plan.risks)
    import shutil

    shutil.rmtree(out)
    plan = prepare(store, run_id, in_place=True).plan
    assert [i.origin for i in plan.inputs] == ["missing"]
    assert any(str(out) in p and "REPROFLOW_STORE_INPUTS=1" in p for p in plan.problems)
