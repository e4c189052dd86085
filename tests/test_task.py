"""@repro_task on the real Prefect 3 engine: every way of running a task leaves its records."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
from typing import Annotated

import pytest
from prefect import flow, task, unmapped

import reproflow
from reproflow import Input, Output, repro_task
from reproflow.errors import DeclarationError
from reproflow.records import SCHEMA_VERSION
from reproflow.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


@repro_task
def double(x: int) -> int:
    return 2 * x


@repro_task(inputs=["src"], outputs=["dst"], name="copy-upper", tags=["io"], retries=0)
def copy_upper(src: pathlib.Path, dst: pathlib.Path) -> int:
    text = src.read_text()
    dst.write_text(text.upper())
    return len(text)


@repro_task
def count_lines(path: Annotated[pathlib.Path, Input]) -> int:
    return len(path.read_text().splitlines())


@repro_task
def byte_count(path: Annotated[pathlib.Path, Input]) -> int:
    return len(path.read_bytes())


@repro_task
def write_report(n: int, target: Annotated[pathlib.Path, Output]) -> pathlib.Path:
    target.write_text(f"{n}\n")
    return target


def _run_records(store: Store, run_id: str):  # type: ignore[no-untyped-def]
    run = store.load_run(run_id)
    return run, {t.task_name: t for t in run.final_tasks()}


def test_direct_call_records_run_task_and_data(store: Store, tmp_path: pathlib.Path) -> None:
    """A flow of direct calls leaves run.json, end.json, one record per task, hashed data, and DAG edges."""
    src = tmp_path / "in.txt"
    src.write_text("hello\nworld\n")

    @flow
    def pipeline(src: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
        copy_upper(src, out / "upper.txt")
        n = count_lines.submit(out / "upper.txt")  # a future: Prefect records the edge
        return write_report(n, out / "report.txt")

    state = pipeline(src, tmp_path, return_state=True)
    run_id = str(state.state_details.flow_run_id)
    run, tasks = _run_records(store, run_id)
    assert run.status == "COMPLETED"
    assert run.record.flow_name == "pipeline"
    assert run.record.entrypoint and run.record.entrypoint.endswith("test_task.py:test_direct_call_records_run_task_and_data.<locals>.pipeline")
    assert reproflow.values._typed.from_typed_json(run.record.parameters) == {"src": src, "out": tmp_path}
    assert set(tasks) == {"copy-upper", "count_lines", "write_report"}
    cu = tasks["copy-upper"]
    assert cu.state == "COMPLETED" and cu.attempt == 1 and cu.tags == ["io"]
    import hashlib

    assert [(r.param, r.sha256) for r in cu.inputs] == [("src", hashlib.sha256(b"hello\nworld\n").hexdigest())]
    assert [(r.param, r.sha256, r.size) for r in cu.outputs] == [("dst", hashlib.sha256(b"HELLO\nWORLD\n").hexdigest(), 12)]
    assert cu.result == 12 and cu.result_hash == reproflow.stable_hash(12)
    # count_lines read copy_upper's output (a data edge); write_report consumed count_lines' future
    from reproflow.recorder._dag import upstream_map

    up = upstream_map(run)
    assert up[tasks["count_lines"].task_run_id] == {"path": [cu.task_run_id]}
    assert up[tasks["write_report"].task_run_id]["n"] == [tasks["count_lines"].task_run_id]
    wr = tasks["write_report"]
    assert [r.param for r in wr.outputs] == ["target", "return"]
    assert run.end is not None and run.end.n_tasks == 3
    assert run.context is not None and run.context.python_version.count(".") == 2


def test_submit_map_and_upstream_ids(store: Store) -> None:
    """.submit and .map record every task run; Prefect's future edges land in `upstream`."""

    @flow
    def fan(xs: list[int]) -> int:
        futs = double.map(xs)
        total = add_all.submit(futs)
        return total.result()

    state = fan([1, 2, 3], return_state=True)
    run, _ = _run_records(store, str(state.state_details.flow_run_id))
    doubles = [t for t in run.final_tasks() if t.task_name == "double"]
    assert sorted(t.result for t in doubles) == [2, 4, 6]
    add = next(t for t in run.final_tasks() if t.task_name == "add_all")
    assert add.result == 12
    assert sorted(add.upstream["xs"]) == sorted(t.task_run_id for t in doubles)


def test_map_index_follows_the_iterable_order(store: Store, store_dir: pathlib.Path) -> None:
    """Mapped runs finish in any order; each record gets its position in the iterable (from the
    map call's MapRecord), also for a second map of the same task in the same flow."""

    @flow
    def fan(xs: list[int]) -> list[int]:
        first = double.map(xs)
        again = double.map([10, 20])
        return [f.result() for f in first] + [f.result() for f in again]

    xs = [9, 3, 7, 1, 5, 8]
    state = fan(xs, return_state=True)
    run_id = str(state.state_details.flow_run_id)
    run, _ = _run_records(store, run_id)
    doubles = [t for t in run.final_tasks() if t.task_name == "double"]
    assert len(doubles) == 8
    by_x: dict[int, list[int | None]] = {}
    for t in doubles:
        by_x.setdefault(t.parameters["x"], []).append(t.map_index)
    assert by_x == {**{x: [i] for i, x in enumerate(xs)}, 10: [0], 20: [1]}
    assert len(list((store_dir / "runs" / run_id / "maps").iterdir())) == 2


@repro_task
def add_all(xs: list[int]) -> int:
    return sum(xs)


@repro_task
async def async_square(x: int) -> int:
    await asyncio.sleep(0)
    return x * x


def test_async_task_and_async_flow(store: Store) -> None:
    """An async task in an async flow records its awaited result."""

    @flow
    async def aflow() -> int:
        return await async_square(7)

    state = asyncio.run(aflow(return_state=True))
    run, tasks = _run_records(store, str(state.state_details.flow_run_id))
    assert tasks["async_square"].result == 49 and run.status == "COMPLETED"


@repro_task(timeout_seconds=0.5)
async def async_too_slow() -> int:
    await asyncio.sleep(30)
    return 1


def test_an_async_task_that_times_out_is_recorded(store: Store) -> None:
    """Prefect cancels an async task past its timeout; the wrapper's await of the failure record
    was cancelled again at once (the cancel scope holds), and the attempt had no record."""

    @flow
    async def aflow() -> str:
        state = await async_too_slow(return_state=True)
        return state.type.value

    state = asyncio.run(aflow(return_state=True))
    assert state.result() == "FAILED"
    run, tasks = _run_records(store, str(state.state_details.flow_run_id))
    record = tasks["async_too_slow"]
    assert record.state == "FAILED" and record.error is not None and record.duration_s < 10


_attempts = {"n": 0}


@repro_task(retries=2, retry_delay_seconds=0)
def flaky() -> str:
    _attempts["n"] += 1
    if _attempts["n"] < 3:
        raise RuntimeError(f"boom {_attempts['n']}")
    return "ok"


def test_retries_record_each_attempt(store: Store) -> None:
    """Each retry attempt is its own record with its outcome; the last one completes."""
    _attempts["n"] = 0

    @flow
    def retrying() -> str:
        return flaky()

    state = retrying(return_state=True)
    run = store.load_run(str(state.state_details.flow_run_id))
    attempts = sorted(run.tasks, key=lambda t: t.attempt)
    assert [(t.attempt, t.state) for t in attempts] == [(1, "FAILED"), (2, "FAILED"), (3, "COMPLETED")]
    assert len({t.task_run_id for t in attempts}) == 1
    assert attempts[0].error is not None and attempts[0].error.message == "boom 1"
    assert attempts[0].error.type == "builtins.RuntimeError"


class Boom(ValueError):
    pass


@repro_task
def always_fails(x: int) -> int:
    raise Boom(f"bad {x}")


def test_failure_is_recorded_and_raised_as_prefect_would(store: Store) -> None:
    """A failing task is recorded FAILED with its error, and the flow sees the same exception."""

    @flow
    def failing() -> int:
        return always_fails(3)

    with pytest.raises(Boom, match="bad 3"):
        failing()
    runs = store.list_runs()
    assert runs[0].status == "FAILED"
    run, tasks = _run_records(store, runs[0].run_id)
    assert tasks["always_fails"].state == "FAILED"
    assert tasks["always_fails"].error.type.endswith("test_task.Boom")  # type: ignore[union-attr]


def test_with_options_keeps_recording_and_prefect_options(store: Store) -> None:
    """with_options returns a ReproTask: it keeps recording and applies Prefect's options."""
    renamed = double.with_options(name="twice", tags=["x"], retries=3)
    assert isinstance(renamed, reproflow.ReproTask)
    assert renamed.name == "twice" and renamed.retries == 3 and set(renamed.tags) == {"x"}
    assert renamed.task_key == double.task_key

    @flow
    def f() -> int:
        return renamed(21)

    state = f(return_state=True)
    _, tasks = _run_records(store, str(state.state_details.flow_run_id))
    assert tasks["twice"].result == 42 and tasks["twice"].tags == ["x"]


def test_task_key_comes_from_user_function() -> None:
    """Same-named functions with different code get different keys (not the wrapper's)."""

    def make(k: int):  # type: ignore[no-untyped-def]
        if k == 1:
            def step(x: int) -> int:
                return x + 1
        else:
            def step(x: int) -> int:
                return x - 1
        return repro_task(step)

    assert make(1).task_key != make(2).task_key
    assert repro_task(name="n")(lambda x: x).task_key != double.task_key


def _every_kind(a: int, /, b: int, c: int = 2, *, d: int, e: int = 5, **more: int) -> list[object]:
    return [a, b, c, d, e, sorted(more.items())]


def _var_positional(a: int, *rest: int, k: int = 0) -> list[object]:
    return [a, list(rest), k]


def test_every_kind_of_parameter_binds_as_with_task(store: Store) -> None:
    """Prefect binds a task's parameters from ``inspect.signature(task.fn)``, which the wrapper
    states (``__signature__``, issue 16): it is the user's own, and positional-only, defaulted,
    keyword-only, ``*args`` and ``**kwargs`` parameters reach the function as with ``@task``,
    called, submitted and mapped."""
    import inspect

    pairs = [(task(f), repro_task(f)) for f in (_every_kind, _var_positional)]
    for plain, repro in pairs:
        assert inspect.signature(repro.fn) == inspect.signature(plain.fn)
        assert inspect.signature(repro.fn, follow_wrapped=False) == inspect.signature(plain.fn)

    def calls(kind, rest):  # type: ignore[no-untyped-def]
        @flow(name="every-kind")
        def f() -> list[object]:
            return [
                kind(1, 2, d=4),
                kind(1, 2, 3, d=4, e=6, x=7),
                kind.submit(1, b=2, d=4, y=8).result(),
                [fut.result() for fut in kind.map([1, 9], b=unmapped(2), d=unmapped(4))],
                rest(1, 2, 3, k=4),
                rest(1),
                rest.submit(1, 2).result(),
            ]

        return f()

    expected = calls(pairs[0][0], pairs[1][0])
    assert calls(pairs[0][1], pairs[1][1]) == expected
    run = store.load_run(store.list_runs()[0].run_id)
    assert len(run.final_tasks()) == 8  # each call recorded (the map's two as two)
    params = [json.dumps(t.parameters, sort_keys=True) for t in run.final_tasks()]
    assert any('"x": 7' in p for p in params) and any('"y": 8' in p for p in params)  # **kwargs values recorded


def test_bare_and_called_decorator_and_prefect_options() -> None:
    """@repro_task works bare and with arguments, passing every Prefect option through."""
    t = repro_task(description="d", version="1", timeout_seconds=5, log_prints=True, persist_result=False)(lambda: 1)
    plain = task(description="d", version="1", timeout_seconds=5, log_prints=True, persist_result=False)(lambda: 1)
    for attr in ("description", "version", "timeout_seconds", "log_prints", "persist_result"):
        assert getattr(t, attr) == getattr(plain, attr), attr


def test_bad_declarations_fail_at_decoration() -> None:
    """A declared name that is not a parameter is caught when decorating, with the names listed."""
    with pytest.raises(DeclarationError, match=r"'nope', which is not a parameter; parameters are: a"):
        repro_task(inputs=["nope"])(lambda a: a)
    with pytest.raises(DeclarationError, match="'return' can only be an output"):
        repro_task(inputs=["return"])(lambda a: a)
    from reproflow.errors import InvalidSeed

    with pytest.raises(InvalidSeed, match=r"invalid @repro_task\(seed=...\) 'x'"):
        repro_task(seed="x")(lambda a: a)  # type: ignore[arg-type]


def test_fifty_concurrent_task_runs_leave_fifty_records(store: Store) -> None:
    """50 concurrently submitted task runs in one flow: exactly 50 valid records, none lost."""

    @flow
    def many() -> list[int]:
        return [f.result() for f in [double.submit(i) for i in range(50)]]

    state = many(return_state=True)
    run = store.load_run(str(state.state_details.flow_run_id))
    assert len(run.tasks) == 50
    assert sorted(t.result for t in run.tasks) == [2 * i for i in range(50)]
    tasks = store.run_dir(run.run_id) + "/tasks"
    files = os.listdir(tasks)
    assert not [f for f in files if f.startswith(".tmp")]
    assert all(f.endswith((".json", ".jsonl")) for f in files), files
    lines = [line for f in files for line in open(os.path.join(tasks, f), "rb").read().splitlines()]
    assert len(lines) == 50  # one record per file or per line of a batch, none twice
    assert len(files) < 50  # the flow's writer thread wrote them in batches


def test_hashes_identical_for_identical_content_and_differ_by_one_byte(store: Store, tmp_path: pathlib.Path) -> None:
    """Same bytes at two paths hash the same; one changed byte changes the hash (and the result hash)."""
    a, b, c = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "c.bin"
    data = os.urandom(100_000)
    a.write_bytes(data)
    b.write_bytes(data)
    c.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))

    @flow
    def hashing() -> None:
        for p in (a, b, c):
            byte_count.with_options(name=p.stem)(p)

    state = hashing(return_state=True)
    _, tasks = _run_records(store, str(state.state_details.flow_run_id))
    ha, hb, hc = (tasks[n].inputs[0].sha256 for n in "abc")
    assert ha == hb != hc


def test_plain_python_without_prefect_engine(store: Store, tmp_path: pathlib.Path) -> None:
    """Outside a flow, tasks run as plain Python: one run per call, or one run per record() block."""
    assert double(4) == 8
    runs = store.list_runs()
    assert len(runs) == 1 and runs[0].status == "COMPLETED"
    run = store.load_run(runs[0].run_id)
    assert run.record.engine == "plain" and run.tasks[0].result == 8

    with reproflow.record("plain-pipeline", parameters={"k": 3}) as r:
        doubled = double(3)
        add_all([doubled, 1])
    run = store.load_run(r.run_id)
    assert run.record.flow_name == "plain-pipeline" and run.status == "COMPLETED"
    assert [t.task_name for t in run.final_tasks()] == ["double", "add_all"]


def test_plain_retries_and_async(store: Store) -> None:
    """The plain engine honours retries and runs async tasks."""
    _attempts["n"] = 0
    assert flaky() == "ok"
    run = store.load_run("latest")
    assert [t.state for t in sorted(run.tasks, key=lambda t: t.attempt)] == ["FAILED", "FAILED", "COMPLETED"]
    assert asyncio.run(async_square(5)) == 25


def test_records_are_valid_json_with_schema_version(store: Store) -> None:
    """Every file in runs/ is a JSON object carrying schema_version."""
    assert double(1) == 2
    for root, _, files in os.walk(store.path("runs")):
        for f in files:
            data = json.loads(pathlib.Path(root, f).read_text())
            assert data["schema_version"] == SCHEMA_VERSION


def test_cache_hit_is_recorded_as_cached(store: Store, tmp_path: pathlib.Path) -> None:
    """With persisted results and an INPUTS cache policy, the second call is a cache hit: the body
    runs once, and the hit is recorded as CACHED with the same result hash. Tasks that cannot hit
    a cache carry no hook (Prefect would log two INFO lines per task for it)."""
    from prefect.cache_policies import INPUTS

    calls: list[int] = []

    @repro_task(cache_policy=INPUTS, persist_result=True)  # results under the session's PREFECT_HOME
    def cached_square(x: int) -> int:
        calls.append(x)
        return x * x

    @repro_task
    def uncached(x: int) -> int:
        return x

    @flow
    def twice() -> list[int]:
        return [cached_square(4), cached_square(4), uncached(1)]

    state = twice(return_state=True)
    assert state.result() == [16, 16, 1] and calls == [4]
    run, _ = _run_records(store, str(state.state_details.flow_run_id))
    squares = [t for t in run.final_tasks() if t.task_name == "cached_square"]
    assert sorted(t.state for t in squares) == ["CACHED", "COMPLETED"]
    assert len({t.result_hash for t in squares}) == 1
    from reproflow.engines.prefect._task import _cache_hook

    assert _cache_hook in cached_square.on_completion_hooks
    assert _cache_hook not in uncached.on_completion_hooks
