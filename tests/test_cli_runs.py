"""`reproflow runs show` / `runs list` as a person reads them: values as Python writes them, whole
task names and map indexes at 80 columns."""

from __future__ import annotations

import pathlib

import pytest
from prefect import flow
from typer.testing import CliRunner

from reproflow import repro_task
from reproflow.cli._runs import typed_repr
from reproflow.values._typed import to_typed_json
from reproflow.cli import app
from reproflow.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


@repro_task
def normalise_measurement_batch(i: int) -> int:
    return 2 * i


@repro_task(outputs=["dst"])
def write_summary_report(values: list[int], dst: pathlib.Path) -> int:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(str(values))
    return sum(values)


@flow(name="measurements-pipeline")
def measurements(out: pathlib.Path, tags: tuple[str, ...] = ("a", "b"), n: int = 12) -> int:
    futures = normalise_measurement_batch.map(list(range(n)))
    return write_summary_report(futures, out)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [
    pathlib.Path("out"), ("a",), (1, "b"), {"x": pathlib.Path("y")}, {3}, frozenset({1}), set(), {1: "a"},
    [pathlib.Path("a"), 2.5, None], float("nan"), b"\x00ab", 10**20,
])
def test_typed_repr_reads_as_python(value: object) -> None:
    """A recorded value shows as the Python a user writes (`Path('out')`), never as the store's
    typed JSON (`{'__rf__': 'path', ...}`)."""
    text = typed_repr(to_typed_json(value))
    assert "__rf__" not in text
    expected = repr(value).replace("PosixPath(", "Path(").replace("WindowsPath(", "Path(")
    if value != value:  # nan
        expected = "float('nan')"
    assert text == expected


def test_typed_repr_of_instances_imports_nothing() -> None:
    """A recorded dataclass or named tuple of a class that cannot be imported here (the user's
    flow.py) shows as `Class(field=...)` from the record alone."""
    typed = {"__rf__": "object", "kind": "dataclass", "type": "__main__:Options",
             "v": {"src": {"__rf__": "path", "v": "in.csv"}, "scale": 2.0}}
    assert typed_repr(typed) == "Options(src=Path('in.csv'), scale=2.0)"
    span = {"__rf__": "object", "kind": "namedtuple", "type": "no_such_module:Span", "v": [1, 2]}
    assert typed_repr(span) == "Span(1, 2)"
    namespace = {"__rf__": "object", "kind": "state", "class": "argparse:Namespace", "v": {"lr": 0.5}}
    assert typed_repr(namespace) == "Namespace(lr=0.5)"
    slotted = {"__rf__": "object", "kind": "state", "class": "__main__:Slotted",
               "v": {"__rf__": "tuple", "v": [None, {"a": 1, "b": [2]}]}}
    assert typed_repr(slotted) == "Slotted(a=1, b=[2])"


def test_runs_show_at_80_columns(store: Store, store_dir: pathlib.Path, tmp_path: pathlib.Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """At 80 columns every task name and map index is printed whole on one line, upstream tasks
    are named (a mapped task's runs folded into an index range), and parameters read as Python."""
    monkeypatch.chdir(tmp_path)
    state = measurements(pathlib.Path("out/summary.txt"), return_state=True)
    assert state.is_completed()
    result = CliRunner().invoke(app, ["runs", "show", "latest", "--store", str(store_dir)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "__rf__" not in out
    assert "out = Path('out/summary.txt')" in out and "tags = ('a', 'b')" in out and "n = 12" in out
    assert all(len(line) <= 80 for line in out.splitlines())
    lines = out.splitlines()
    for i in range(12):
        assert any(f"normalise_measurement_batch[{i}] " in line for line in lines), f"[{i}] cut:\n{out}"
    assert "write_summary_report ← values←normalise_measurement_batch[0-11]" in out
    assert any("write_summary_report " in line and " dst " in line for line in lines), out  # the data table

    listed = CliRunner().invoke(app, ["runs", "list", "--store", str(store_dir)], env={"COLUMNS": "80"})
    assert listed.exit_code == 0 and "measurements-pipeline" in listed.stdout, listed.stdout
    assert all(len(line) <= 80 for line in listed.stdout.splitlines())
