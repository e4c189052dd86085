"""One run shared by many processes (reproflow.recorder._join): open/join/close, record_task, and the
plain recorder joining ``$REPROFLOW_RUN_ID``; edges between processes from data lineage."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from reproflow.recorder._dag import edges
from reproflow.recorder._join import (RUN_ID_ENV, child_env, close_shared_run, open_shared_run, record_task,
                             shared_run_id)
from reproflow.store import Store


def _run_py(code: str, cwd: pathlib.Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_shared_run_id_is_the_same_everywhere_and_tells_engines_apart() -> None:
    """The id is a pure function of the engine and its identity of the run (a UUID5), so
    processes that never talk agree on it; another engine or identity gives another id."""
    a = shared_run_id("airflow", "etl", "manual__2026-12-02T06:00:00+00:00")
    assert a == shared_run_id("airflow", "etl", "manual__2026-12-02T06:00:00+00:00")
    assert a != shared_run_id("snakemake", "etl", "manual__2026-12-02T06:00:00+00:00")
    assert a != shared_run_id("airflow", "etl", "manual__2026-12-03T06:00:00+00:00")
    assert a != shared_run_id("airflow", "et", "lmanual__2026-12-02T06:00:00+00:00")  # parts are separated
    code = ("from reproflow.recorder._join import shared_run_id; "
            "print(shared_run_id('airflow', 'etl', 'manual__2026-12-02T06:00:00+00:00'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == a
    with pytest.raises(ValueError):
        shared_run_id("airflow")


def test_processes_racing_to_open_one_run_make_one_run(store: Store, tmp_path: pathlib.Path) -> None:
    """Three processes open the same shared run at once: one run.json (the first writer's), each
    process gets the same id, and none of them fails."""
    run_id = shared_run_id("command", "race", str(tmp_path))
    code = f"""
        import sys
        from reproflow.recorder._join import open_shared_run
        print(open_shared_run({run_id!r}, name='opener-' + sys.argv[1], engine='command', store={str(store.url)!r},
                              engine_info={{'who': sys.argv[1]}}, lease=False))
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e for _, e in outs]
    assert {o.strip() for o, _ in outs} == {run_id}
    assert store.run_ids() == [run_id]
    record = store.load_run_record(run_id)
    assert record.flow_name == f"opener-{record.engine_info['who']}"
    assert record.engine == "command" and record.liveness is None


def test_tasks_in_separate_processes_join_one_run_with_a_data_edge(store: Store, tmp_path: pathlib.Path) -> None:
    """Two processes with $REPROFLOW_RUN_ID record one task each (record_task with explicit
    paths): one run, the second task's input is the first's output, so the DAG has that edge;
    close_shared_run records the exit status."""
    (tmp_path / "raw.txt").write_text("a,b\n1,2\n")
    run_id = open_shared_run(name="two-steps", engine="command", store=store, engine_info={"argv": ["make"]})
    env = child_env(run_id, store)
    step = """
        import sys, pathlib
        from reproflow.recorder._join import record_task
        src, dst = sys.argv[1:3]
        with record_task('step-' + dst, inputs={'src': src}, outputs={'dst': dst}, engine_info={'target': dst}):
            pathlib.Path(dst).write_text(pathlib.Path(src).read_text().upper())
    """
    for src, dst in (("raw.txt", "mid.txt"), ("mid.txt", "out.txt")):
        subprocess.run([sys.executable, "-c", textwrap.dedent(step), src, dst], cwd=tmp_path, env=env, check=True,
                       timeout=300)
    close_shared_run(run_id, "COMPLETED", 0, store=store)
    close_shared_run(run_id, "FAILED", 3, store=store)  # a second close changes nothing
    run = store.load_run(run_id)
    assert run.status == "COMPLETED" and run.end is not None and run.end.exit_code == 0 and run.end.n_tasks == 2
    assert run.record.engine_info == {"argv": ["make"]}
    first, second = run.final_tasks()
    assert (first.task_name, second.task_name) == ("step-mid.txt", "step-out.txt")
    assert first.engine == "command" and first.engine_info == {"target": "mid.txt"}
    assert first.outputs[0].sha256 == second.inputs[0].sha256 and first.outputs[0].param == "dst"
    assert [(e.src, e.dst, e.via, e.how) for e in edges(run)] == [(first.task_run_id, second.task_run_id, "src", "data")]


def test_record_task_failure_is_recorded_and_raised(store: Store, tmp_path: pathlib.Path) -> None:
    """A block that raises is recorded FAILED with the error and what it wrote, and the
    exception goes on; a command's non-zero exit status set on the attempt is FAILED too."""
    run_id = open_shared_run(name="fails", engine="command", store=store)
    out = tmp_path / "half.txt"
    with pytest.raises(RuntimeError, match="disk on fire"):
        with record_task("breaks", run_id=run_id, outputs=[out], store=store):
            out.write_text("half")
            raise RuntimeError("disk on fire")
    with record_task("exits", run_id=run_id, store=store) as att:
        att.exit_code = 2
    run = store.load_run(run_id)
    breaks, exits = run.final_tasks()
    assert breaks.state == "FAILED" and breaks.error is not None and "disk on fire" in breaks.error.message
    assert breaks.outputs[0].kind == "file" and breaks.outputs[0].size == 4
    assert exits.state == "FAILED" and exits.engine_info == {"exit_code": 2}


def test_record_task_without_a_run_records_a_one_task_run(store: Store, tmp_path: pathlib.Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside any shared run, record_task opens a run of its own and closes it with the task."""
    monkeypatch.delenv(RUN_ID_ENV, raising=False)
    (tmp_path / "in.txt").write_text("x")
    with record_task("alone", inputs=[tmp_path / "in.txt"], store=store) as att:
        pass
    run = store.load_run(att.run_id)
    assert run.status == "COMPLETED" and run.record.flow_name == "alone" and len(run.tasks) == 1


def test_plain_tasks_and_record_blocks_in_child_processes_join_the_run(store: Store, tmp_path: pathlib.Path) -> None:
    """A plain @repro_task call and a reproflow.record() block, each in its own process with
    $REPROFLOW_RUN_ID set, record into that run (no run of their own, nothing closed), and the
    file the first wrote and the second read is an edge between them."""
    (tmp_path / "raw.csv").write_text("x\n3\n1\n2\n")
    (tmp_path / "steps.py").write_text(textwrap.dedent("""
        from pathlib import Path
        from reproflow import repro_task

        @repro_task(inputs=["src"], outputs=["dst"])
        def clean(src: Path, dst: Path) -> int:
            rows = sorted(Path(src).read_text().split()[1:])
            dst.write_text("x\\n" + "\\n".join(rows) + "\\n")
            return len(rows)

        @repro_task(inputs=["src"], outputs=["dst"])
        def total(src: Path, dst: Path) -> int:
            n = sum(int(v) for v in Path(src).read_text().split()[1:])
            dst.write_text(str(n))
            return n
    """))
    run_id = open_shared_run(name="plain-join", engine="command", store=store)
    env = child_env(run_id, store)
    _run_py("""
        from pathlib import Path
        from steps import clean
        clean(Path('raw.csv'), Path('clean.csv'))
    """, tmp_path, env)
    _run_py("""
        from pathlib import Path
        import reproflow
        from steps import total
        with reproflow.record(parameters={'ignored': 1}) as run:
            total(Path('clean.csv'), Path('total.txt'))
        print(run.run_id)
    """, tmp_path, env)
    assert store.run_ids() == [run_id]
    run = store.load_run(run_id)
    assert run.end is None  # the children closed nothing: the opener does
    close_shared_run(run_id, "COMPLETED", 0, store=store)
    run = store.load_run(run_id)
    clean, total = run.final_tasks()
    assert (clean.task_name, total.task_name, clean.engine) == ("clean", "total", "plain")
    assert (tmp_path / "total.txt").read_text() == "6"
    assert [(e.src, e.dst, e.how) for e in edges(run)] == [(clean.task_run_id, total.task_run_id, "data")]


def test_a_joined_process_opens_the_run_when_no_one_has(store: Store, tmp_path: pathlib.Path) -> None:
    """$REPROFLOW_RUN_ID naming a run that no process opened yet: the first recorded task opens
    it (with no lease: that process may end first), so its records are never orphaned."""
    run_id = shared_run_id("command", "unopened", str(tmp_path))
    env = dict(os.environ, **{RUN_ID_ENV: run_id, "REPROFLOW_STORE": store.url})
    _run_py("""
        from reproflow.recorder._join import record_task
        with record_task('only'):
            pass
    """, tmp_path, env)
    run = store.load_run(run_id)
    assert run.record.flow_name == "only" and run.record.liveness is None and [t.task_name for t in run.tasks] == ["only"]
    assert run.end is None


def test_equal_bytes_in_two_files_link_each_reader_to_its_own_writer(store: Store, tmp_path: pathlib.Path) -> None:
    """Two tasks write the same bytes to two files; a reader of the second file is linked to the
    task that wrote that file (lineage by path and hash), not to the first writer of the bytes."""
    run_id = open_shared_run(name="twins", engine="command", store=store)
    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    for name, path in (("write-a", a), ("write-b", b)):
        with record_task(name, run_id=run_id, outputs=[path], store=store):
            path.write_text("same bytes\n")
    with record_task("read-b", run_id=run_id, inputs=[b], outputs=[c], store=store):
        c.write_text(b.read_text())
    run = store.load_run(run_id)
    ids = {t.task_name: t.task_run_id for t in run.final_tasks()}
    assert [(e.src, e.dst) for e in edges(run)] == [(ids["write-b"], ids["read-b"])]
