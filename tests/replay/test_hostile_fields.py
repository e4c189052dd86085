"""Issue 11's done-when: hostile values in every record field that reaches a path, a command line
or an archive (``hostile_fields.FIELDS``, at least 30 kinds), through the real CLI; replay and
export never write outside their folders, never delete what they did not create, never hand a
command an option from the record, and every bad input is one clear line and a non-zero exit.

The properties draw (field, value) pairs, 25 per stage (each case is a fresh sandbox and a few
real CLI calls, ~0.3 s); ``python tests/replay/hostile_fields.py`` tries them all (3100 cases).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hostile_fields import FIELDS, HOSTILE, PLACED, VALUES, sweep, try_case
from replay_records import sha, write_run

from reproflow import errors
from reproflow.records import DataRef
from reproflow.replay._inputs import verify_inputs
from reproflow.replay._models import PlannedInput
from reproflow.store import Store


def _fields(*stages: str) -> list[str]:
    return [name for name, (stage, _) in FIELDS.items() if stage in stages]


def _case(field: str, value: str) -> None:
    with tempfile.TemporaryDirectory(prefix="rf-hostile-") as tmp:
        out = try_case(field, value, Path(tmp))
    assert out.handled


def test_field_kinds_are_at_least_thirty() -> None:
    """The count the done-when asks for: field kinds (and kinds of value) tried."""
    assert len(FIELDS) >= 30, len(FIELDS)
    assert len(set(VALUES)) >= 40 and len(set(HOSTILE)) >= 30
    stages = {stage for stage, _ in FIELDS.values()}
    assert stages == {"replay", "tasks", "rebuild", "export", "pack"}


@given(field=st.sampled_from(_fields("replay")), value=st.sampled_from(VALUES))
@settings(max_examples=25, deadline=None)
def test_hostile_run_and_context_fields_in_a_replay(field: str, value: str) -> None:
    """run.json and process-context fields (entrypoint, module, cwd, argv, hash seed, source
    root, git root and commit, digests, snapshot members and links) through `reproflow replay`."""
    _case(field, value)


@given(field=st.sampled_from(_fields("tasks")), value=st.sampled_from(VALUES))
@settings(max_examples=25, deadline=None)
def test_hostile_task_fields_in_a_replay_task_by_task(field: str, value: str) -> None:
    """Task fields (names, ids, function and its file, inputs and outputs and their stored
    copies, digests, Snakemake rule/outputs/wildcards/Snakefile, Airflow task id, a command's
    argv) through `reproflow replay --engine tasks`, up to the runner."""
    _case(field, value)


@given(field=st.sampled_from(_fields("rebuild", "pack")), value=st.sampled_from(VALUES))
@settings(max_examples=25, deadline=None)
def test_hostile_environment_fields_in_a_rebuild_and_packs(field: str, value: str) -> None:
    """The recorded interpreter and pins up to uv (which is never run), and pack members."""
    _case(field, value)


@given(field=st.sampled_from(_fields("export")), value=st.sampled_from(VALUES))
@settings(max_examples=25, deadline=None)
def test_hostile_fields_in_exports(field: str, value: str) -> None:
    """Fields that become Dockerfile/Apptainer lines, requirements lines or uv's arguments."""
    _case(field, value)


@pytest.mark.parametrize("value", ["x\nRUN touch /tmp/rf-pwned", "3.11; touch /tmp/rf-pwned", "--output=/tmp/rf-pwned"])
@pytest.mark.parametrize("field", ["python.version (export)", "git commit (export)", "distribution VCS commit",
                                   "run.pythonhashseed", "context git.commit", "task.output uri"])
def test_known_holes_stay_closed(field: str, value: str) -> None:
    """The holes this test found, pinned: a Python version, a commit or a hash seed written
    into a RUN line or a git command, and an output folder made from a relative path."""
    _case(field, value)


def test_sweep_counts_every_case() -> None:
    """The sweep that docs/security.md quotes counts what it tried (here one field, a few values)."""
    values = ["..", "a\x00b", "--output=/tmp/rf-pwned", "@OUT@/planted"]
    counts = sweep(["pack run id"], values)
    assert counts["cases"] == len(values) and counts["broken"] == 0 and counts["tracebacks"] == 0
    assert counts["handled"] == counts["cases"] and counts["fields"] == 1 and counts["refusals"] == 2 * len(values)


def test_folder_cleanup_never_deletes_a_file_the_run_did_not_write(store: Store, tmp_path: Path) -> None:
    """An input folder the run wrote into is cleaned of the run's own outputs before the replay;
    a record naming someone's file as such an output (and the folder's tree without it, here the
    empty tree) does not get that file deleted: it must hold what the record says the run wrote."""
    from reproflow.capture._files import EMPTY_TREE

    folder = tmp_path / "docs"
    folder.mkdir()
    thesis = folder / "thesis.tex"
    thesis.write_text("years of work\n")
    run_id = write_run(store, tasks=[
        {"name": "read", "inputs": [DataRef(uri=str(folder), kind="directory", sha256=EMPTY_TREE, param="d")]},
        {"name": "write", "outputs": [DataRef(uri=str(thesis), kind="file", sha256="0" * 64, param="return")]},
    ], source_files={"flow.py": b"x = 1\n"})
    run = store.load_run(run_id)
    item = PlannedInput(uri=str(folder), kind="directory", sha256=EMPTY_TREE, tasks=["read"], written_by=["write"])
    with pytest.raises(errors.InputChanged):
        verify_inputs([item], run.final_tasks()[:1], store, run_tasks=run.tasks)
    assert thesis.read_text() == "years of work\n"
    # the run's own output (it holds what the run wrote): removed, the replay writes it again
    own = [t.model_copy(update={"outputs": [DataRef(uri=str(thesis), kind="file", param="return",
                                                    sha256=sha(thesis.read_bytes()))]}) if t.task_name == "write" else t
           for t in run.tasks]
    checks = verify_inputs([item], run.final_tasks()[:1], store, run_tasks=own)
    assert checks[0].status == "restored" and not thesis.exists()


def test_function_file_outside_the_restored_code_is_never_loaded(tmp_path: Path) -> None:
    """The runner executes a task's recorded function file: only one inside the restored code."""
    from reproflow.replay._execute import _moved_file
    from reproflow.replay._relocate import Relocation

    restored = tmp_path / "restored"
    restored.mkdir()
    (restored / "flow.py").write_text("x = 1\n")
    evil = tmp_path / "evil.py"
    evil.write_text("import os\n")
    reloc = Relocation("/rec/root", str(restored))
    assert _moved_file("flow.py", restored, reloc) == str(restored / "flow.py")
    assert _moved_file("/rec/root/flow.py", restored, reloc) == str(restored / "flow.py")
    assert _moved_file(str(evil), restored, reloc) is None
    assert _moved_file("../evil.py", restored, reloc) is None
    os.symlink(evil, restored / "link.py")
    assert _moved_file("link.py", restored, reloc) is None


def test_placed_values_aim_outside_and_at_precious_files() -> None:
    assert any("@OUT@" in v for v in PLACED) and any("precious" in v for v in PLACED)
