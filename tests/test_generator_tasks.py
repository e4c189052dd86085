"""Generator tasks (``def`` with ``yield``, ``async def`` with ``yield``) on the real Prefect 3 engine:
their body's opens are watched like any task's, and only while the body runs (issue 10).

Prefect runs a generator task step by step, interleaved with its consumer (the flow body, which
reads the items as they come). Files the body reads without naming them are the task's
undeclared inputs; files the consumer reads between two items are not the task's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prefect import flow

from reproflow import repro_task
from reproflow.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


@repro_task
def tagged_lines(src: Path) -> Iterator[str]:
    tag = (src.parent / "tag.txt").read_text().strip()  # an undeclared read, in the body
    for line in src.read_text().splitlines():
        yield f"{tag}:{line}"
    (src.parent / "late.txt").read_text()  # after the last item: still the body


@repro_task
async def atagged_lines(src: Path) -> AsyncIterator[str]:
    tag = (src.parent / "tag.txt").read_text().strip()
    for line in src.read_text().splitlines():
        await asyncio.sleep(0)
        yield f"{tag}:{line}"
    (src.parent / "late.txt").read_text()


@flow
def consume(src: Path, side: Path) -> list[str]:
    out = []
    for item in tagged_lines(src):
        out.append(item + side.read_text())  # the consumer reads between two items: not the task's read
    return out


@flow
async def aconsume(src: Path, side: Path) -> list[str]:
    out = []
    async for item in atagged_lines(src):
        out.append(item + side.read_text())
    return out


def _data(tmp_path: Path) -> tuple[Path, Path]:
    d = tmp_path / "data"
    d.mkdir()
    (d / "lines.txt").write_text("a\nb\n")
    (d / "tag.txt").write_text("T\n")
    (d / "late.txt").write_text("late\n")
    side = tmp_path / "side.txt"
    side.write_text("!")
    return d / "lines.txt", side


def _undeclared(store: Store, name: str) -> list[str]:
    (run_id,) = list(store.run_ids())
    (t,) = [t for t in store.load_run(run_id).final_tasks() if t.task_name == name]
    assert t.state == "COMPLETED", t.error
    return sorted(Path(r.uri).name for r in t.inputs if r.undeclared)


def test_a_generator_task_records_what_its_body_read_and_not_what_its_consumer_read(store: Store, tmp_path: Path) -> None:
    src, side = _data(tmp_path)
    assert consume(src, side) == ["T:a!", "T:b!"]
    assert _undeclared(store, "tagged_lines") == ["late.txt", "tag.txt"]


def test_an_async_generator_task_records_what_its_body_read_and_not_what_its_consumer_read(store: Store, tmp_path: Path) -> None:
    src, side = _data(tmp_path)
    assert asyncio.run(aconsume(src, side)) == ["T:a!", "T:b!"]
    assert _undeclared(store, "atagged_lines") == ["late.txt", "tag.txt"]
