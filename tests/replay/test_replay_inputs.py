"""Input verification before a replay: SHA-256 of every external input, stored copies restored."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from replay_records import file_ref, sha, task

from reproflow.errors import InputChanged, UnsafeArchive
from reproflow.records import DataRef
from reproflow.replay._inputs import external_inputs, restore_copy, verify_inputs
from reproflow.store import Store


def _tasks(tmp_path: Path, store: Store, *, stored: bool = False) -> tuple[Path, list]:
    raw = tmp_path / "raw.csv"
    raw.write_text("a,b\n1,2\n")
    mid = tmp_path / "mid.csv"
    mid.write_text("intermediate\n")
    blob = store.put_blob_file(raw) if stored else None
    t1 = task("r", 0, "c", name="load", inputs=[file_ref(raw, "raw", blob)], outputs=[file_ref(mid, "return")])
    t2 = task("r", 1, "c", name="fit", inputs=[file_ref(mid, "mid")])
    return raw, [t1, t2]


def test_only_external_inputs_are_verified(tmp_path: Path, store: Store) -> None:
    """A file written by an earlier task is not checked before running: the replay rewrites it."""
    raw, tasks = _tasks(tmp_path, store)
    planned = external_inputs(tasks)
    assert [p.uri for p in planned] == [str(raw)]
    assert planned[0].tasks == ["load"]
    # a partial replay of "fit" alone needs the intermediate file as it was
    assert [p.uri for p in external_inputs(tasks[1:])] == [str(tmp_path / "mid.csv")]


def test_unchanged_inputs_pass(tmp_path: Path, store: Store) -> None:
    """Same bytes: status ok with both hashes equal."""
    _, tasks = _tasks(tmp_path, store)
    checks = verify_inputs(external_inputs(tasks), tasks, store)
    assert [c.status for c in checks] == ["ok"]
    assert checks[0].expected == checks[0].actual


def test_one_changed_byte_refuses_naming_file_and_hashes(tmp_path: Path, store: Store) -> None:
    """One changed byte stops the replay, naming the file, the recorded and the found hash."""
    raw, tasks = _tasks(tmp_path, store)
    expected = sha(raw.read_bytes())
    raw.write_text("a,b\n1,3\n")
    with pytest.raises(InputChanged) as info:
        verify_inputs(external_inputs(tasks), tasks, store)
    err = info.value
    assert err.uri == str(raw) and err.expected == expected and err.actual == sha(raw.read_bytes())
    assert str(raw) in str(err) and expected in str(err) and err.actual in str(err)


def test_allow_changed_inputs_marks_instead(tmp_path: Path, store: Store) -> None:
    """--allow-changed-inputs turns the refusal into a 'changed' check."""
    raw, tasks = _tasks(tmp_path, store)
    raw.write_text("different")
    checks = verify_inputs(external_inputs(tasks), tasks, store, allow_changed=True)
    assert checks[0].status == "changed" and checks[0].actual == sha(b"different")


def test_missing_input_without_copy_refuses(tmp_path: Path, store: Store) -> None:
    """A missing input with no stored copy: InputChanged saying it is missing."""
    raw, tasks = _tasks(tmp_path, store)
    raw.unlink()
    with pytest.raises(InputChanged, match="missing") as info:
        verify_inputs(external_inputs(tasks), tasks, store)
    assert info.value.actual is None


def test_missing_input_is_restored_from_stored_copy(tmp_path: Path, store: Store) -> None:
    """A missing input stored at record time comes back, byte for byte, verified."""
    raw, tasks = _tasks(tmp_path, store, stored=True)
    original = raw.read_bytes()
    raw.unlink()
    checks = verify_inputs(external_inputs(tasks), tasks, store)
    assert checks[0].status == "restored"
    assert raw.read_bytes() == original


def test_changed_input_with_copy_is_not_overwritten(tmp_path: Path, store: Store) -> None:
    """A stored copy never overwrites a changed file (the user's data): it still refuses."""
    raw, tasks = _tasks(tmp_path, store, stored=True)
    raw.write_text("edited by the user")
    with pytest.raises(InputChanged):
        verify_inputs(external_inputs(tasks), tasks, store)
    assert raw.read_text() == "edited by the user"


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_directory_copy_is_restored(tmp_path: Path, store: Store) -> None:
    """A stored directory tar is extracted back at the directory's path."""
    digest = store.put_blob(_tar({"a.txt": b"A", "sub/b.txt": b"B"}))
    dest = tmp_path / "data" / "shards"
    restore_copy(store, digest, str(dest), "directory")
    assert (dest / "a.txt").read_bytes() == b"A" and (dest / "sub" / "b.txt").read_bytes() == b"B"


def test_directory_copy_escaping_its_root_is_refused(tmp_path: Path, store: Store) -> None:
    """A tampered tar with '..' is UnsafeArchive, and nothing lands outside."""
    digest = store.put_blob(_tar({"../evil.txt": b"x"}))
    with pytest.raises(UnsafeArchive):
        restore_copy(store, digest, str(tmp_path / "out"), "directory")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out").exists()


def test_input_recorded_missing_is_unchecked(tmp_path: Path, store: Store) -> None:
    """An input that did not exist at record time has no hash to check."""
    ref = DataRef(uri=str(tmp_path / "nothing"), kind="missing", param="p")
    tasks = [task("r", 0, "c", name="t", inputs=[ref])]
    checks = verify_inputs(external_inputs(tasks), tasks, store)
    assert checks[0].status == "unchecked"


def test_a_file_the_run_wrote_outside_any_task_is_derived_when_the_flow_runs_again(tmp_path: Path, store: Store) -> None:
    """An input marked written_in_run (the flow body wrote it before the task read it) is not
    checked before a replay that runs the flow again (the flow writes it again), so a checkout
    without it is no refusal; replayed task by task, or --task alone, it is an input as any."""
    settings = tmp_path / "settings.json"
    settings.write_text('{"factor": 2}')
    ref = file_ref(settings, "settings")
    ref.written_in_run = True
    raw, tasks = _tasks(tmp_path, store)
    tasks[0].inputs.append(ref)
    settings.unlink()  # the user's checkout no longer has it
    assert [p.uri for p in external_inputs(tasks, flow_reruns=True)] == [str(raw)]
    planned = external_inputs(tasks)
    assert [p.uri for p in planned] == [str(raw), str(settings)]
    with pytest.raises(InputChanged):
        verify_inputs(planned, tasks, store)
