"""Files a task writes at paths it never names (issue 10): a report written to a path given as a
``str`` (argparse gives ``str``), a file named by a module constant. They were no outputs, so a
replay compared the return value alone and called a task reproduced whose file differed. Now a
file the task only wrote is an undeclared output (``DataRef.undeclared`` on an output), which a
replay compares. Runs as plain Python (the same recorder as under Prefect; the corpus shape
str_paths covers a Prefect flow)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import reproflow
from reproflow import repro_task
from reproflow.store import Store

COUNTER = "counter.txt"


@repro_task
def report(n: int, dst: str) -> int:
    with open(dst, "w") as fh:
        fh.write(f"{n}\n")
    with open(os.path.join(os.path.dirname(dst), "also.txt"), "w") as fh:  # a name built inside
        fh.write("x")
    fd, tmp = tempfile.mkstemp()
    os.close(fd)
    os.unlink(tmp)  # gone by the end: no output
    with open(dst + ".tmp", "w") as fh:  # an atomic write: the file moved into place is the output
        fh.write("atomic")
    os.replace(dst + ".tmp", os.path.join(os.path.dirname(dst), "final.txt"))
    return n


@repro_task
def bump() -> int:
    n = int(Path(COUNTER).read_text()) if Path(COUNTER).exists() else 0
    Path(COUNTER).write_text(str(n + 1))  # read, then rewritten: state kept in place, no output
    return 1


@repro_task
def into(out_dir: Path) -> None:
    (out_dir / "part.txt").write_text("p")  # a folder it was passed: one output, by the folder's rule


def test_files_a_task_only_wrote_at_paths_it_never_named_are_its_outputs(store: Store, tmp_path: Path,
                                                                          monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    Path(COUNTER).write_text("5")
    (tmp_path / "parts").mkdir()
    with reproflow.record("undeclared-writes") as run:
        report(3, str(tmp_path / "report.txt"))
        bump()
        into(tmp_path / "parts")
    tasks = {t.task_name: t for t in store.load_run(run.run_id).final_tasks()}
    got = [(Path(r.uri).name, r.undeclared, r.param, r.kind) for r in tasks["report"].outputs]
    assert got == [("also.txt", True, None, "file"), ("final.txt", True, None, "file"), ("report.txt", True, None, "file")]
    assert tasks["bump"].outputs == []
    assert [(Path(r.uri).name, r.undeclared) for r in tasks["into"].outputs] == [("part.txt", None)]


@repro_task
def logs_and_writes(out_dir: Path, log_file: Path, text_log: str) -> None:
    import logging

    logger = logging.getLogger(f"reproflow-test-{out_dir.name}")
    handlers = [logging.FileHandler(text_log), logging.FileHandler(out_dir / "run.log"),
                logging.FileHandler(log_file)]  # a str path, a file in a folder it was passed, a Path parameter
    for h in handlers:
        h.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(message)s"))
        logger.addHandler(h)
    try:
        logger.warning("started")  # time-stamped: no replay writes these bytes again
    finally:
        for h in handlers:
            logger.removeHandler(h)
            h.close()
    (out_dir / "data.txt").write_text("d")
    with open(os.path.join(os.path.dirname(text_log), "plain.txt"), "w") as fh:  # no handler opened it
        fh.write("p")


@repro_task(outputs=["log_file"])
def declared_log(log_file: Path) -> None:
    import logging

    handler = logging.FileHandler(log_file)
    logger = logging.getLogger("reproflow-test-declared-log")
    logger.addHandler(handler)
    logger.warning("declared")
    logger.removeHandler(handler)
    handler.close()


def test_a_log_file_a_logging_handler_writes_is_no_output(store: Store, tmp_path: Path) -> None:
    """A log written through ``logging.FileHandler`` holds time stamps, so a replay comparing it
    said "differs" (nondeterminism) about a task whose data reproduced. A file a logging handler
    opened for writing is a log, no output, wherever it is: at a ``str`` path, in a folder the task
    was passed, at a ``Path`` parameter; the task's data files next to it still are outputs, and
    so is a log the task declares an output."""
    (tmp_path / "out").mkdir()
    with reproflow.record("logs") as run:
        logs_and_writes(tmp_path / "out", tmp_path / "task.log", str(tmp_path / "text.log"))
        declared_log(tmp_path / "declared.log")
    t, d = sorted(store.load_run(run.run_id).final_tasks(), key=lambda t: t.task_name, reverse=True)
    assert [(Path(r.uri).name, r.param, r.declared) for r in d.outputs] == [("declared.log", "log_file", True)]
    assert sorted((Path(r.uri).name, r.param) for r in t.outputs) == [("data.txt", "out_dir"), ("plain.txt", None)]
    assert all((tmp_path / name).read_text().strip().endswith("started") for name in ("task.log", "text.log", "out/run.log"))


@repro_task
def threaded(n: int, out: str, src: str) -> int:
    """Writes and reads from threads of its own: a pool (as an I/O-bound task does), a plain
    thread, and a thread started by a pool's thread."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    def write(i: int) -> str:
        with open(os.path.join(out, f"part-{i}.txt"), "w") as fh:
            fh.write(str(i))
        return Path(src).read_text()  # an undeclared input, read in a thread

    def nested() -> None:
        t = threading.Thread(target=lambda: Path(out, "nested.txt").write_text("n"))
        t.start()
        t.join()

    with ThreadPoolExecutor(3) as pool:
        texts = list(pool.map(write, range(n)))
        pool.submit(nested).result()
    t = threading.Thread(target=lambda: Path(out, "thread.txt").write_text("t"))
    t.start()
    t.join()
    return len(texts)


@repro_task
def after(out: str) -> int:
    return len(os.listdir(out))


def test_files_a_task_writes_and_reads_from_threads_it_starts_are_its_own(store: Store, tmp_path: Path) -> None:
    """A thread does not inherit the context the hook tells tasks apart by: the files a task
    wrote from its own thread pool at a ``str`` path were no outputs, so a replay compared
    nothing and called the task reproduced whatever those files held, and a file read there was
    no undeclared input. A thread the attempt started (or one started by such a thread) is the
    attempt's until it ends: a later task's opens are not."""
    out, src = tmp_path / "parts", tmp_path / "in.txt"
    out.mkdir()
    src.write_text("data")
    with reproflow.record("threads") as run:
        threaded(4, str(out), str(src))
        after(str(out))
    tasks = {t.task_name: t for t in store.load_run(run.run_id).final_tasks()}
    got = sorted((Path(r.uri).name, r.undeclared) for r in tasks["threaded"].outputs)
    assert got == sorted([(f"part-{i}.txt", True) for i in range(4)] + [("nested.txt", True), ("thread.txt", True)])
    assert [(Path(r.uri).name, r.undeclared) for r in tasks["threaded"].inputs if r.undeclared] == [("in.txt", True)]
    assert tasks["after"].outputs == [] and not [r for r in tasks["after"].inputs if r.undeclared]


#: a pool made before any task, shared by the tasks below (as a module-level executor is)
_SHARED_POOL = None


@repro_task
def pooled(name: str, out: str) -> None:
    _SHARED_POOL.submit(Path(out, f"{name}.txt").write_text, name).result()  # type: ignore[union-attr]


@repro_task
async def via_loop(out: str) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, Path(out, "loop.txt").write_text, "l")  # as aiofiles writes
    await loop.run_in_executor(_SHARED_POOL, Path(out, "shared-loop.txt").write_text, "s")


def test_work_a_task_hands_to_a_pool_is_its_own_in_whichever_thread(store: Store, tmp_path: Path) -> None:
    """A pool made before the task (its threads started by nobody's attempt), shared by tasks,
    and asyncio's run_in_executor: each work item runs as the task that submitted it, so each
    task records its own file and not the other's; work submitted outside any task is nobody's."""
    global _SHARED_POOL
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path / "out"
    out.mkdir()
    with ThreadPoolExecutor(1) as pool:
        _SHARED_POOL = pool
        pool.submit(Path(out, "warm.txt").write_text, "w").result()  # the worker thread starts outside any task
        with reproflow.record("pools") as run:
            pooled("first", str(out))
            pooled("second", str(out))
            pool.submit(Path(out, "nobody.txt").write_text, "n").result()
            import asyncio

            asyncio.run(via_loop(str(out)))
    tasks = sorted(store.load_run(run.run_id).final_tasks(), key=lambda t: t.started_at)
    got = [(t.task_name, sorted(Path(r.uri).name for r in t.outputs)) for t in tasks]
    assert got == [("pooled", ["first.txt"]), ("pooled", ["second.txt"]), ("via_loop", ["loop.txt", "shared-loop.txt"])]
