"""Bad input to `reproflow replay`: one clear line, a non-zero exit, nothing written to the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from replay_records import environment, store_files, write_run

from reproflow.cli._common import run_cli
from reproflow.cli import app
from reproflow.records import SCHEMA_VERSION, Distribution
from reproflow.store import Store

SRC = {"flow.py": b"from prefect import flow\n\n@flow\ndef pipeline():\n    return 1\n"}


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run_cli(app, ["replay", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    return lines[0]


def test_unknown_run_id(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    """An id that is not in the store: exit 4, one line pointing at `runs list`."""
    write_run(store, source_files=SRC)
    before = store_files(store)
    code, out, err = _run(["0123456789abcdef", "--store", store.url], capsys)
    assert code == 4 and out == ""
    assert "no run '0123456789abcdef'" in _one_line(err) and "runs list" in err
    assert store_files(store) == before


def test_run_from_a_newer_schema(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    """A run.json written by a newer major schema: exit 5, one line saying to upgrade."""
    run_id = write_run(store, source_files=SRC)
    path = Path(store.root) / "runs" / run_id / "run.json"
    path.write_text(path.read_text().replace(f'"schema_version":"{SCHEMA_VERSION}"', '"schema_version":"9.3"'))
    before = store_files(store)
    code, _, err = _run([run_id, "--store", store.url], capsys)
    assert code == 5 and "schema version 9.3" in _one_line(err) and "upgrade" in err
    assert store_files(store) == before


def test_python_not_available(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run recorded with a Python this machine lacks: exit 7, one line naming the version."""
    run_id = write_run(store, env=environment(version="3.4.10"), source_files=SRC)
    before = store_files(store)
    code, _, err = _run([run_id, "--store", store.url], capsys)
    line = _one_line(err)
    assert code == 7 and "Python 3.4.10 is not available" in line and "--python" in line
    assert store_files(store) == before


def test_dry_run_shows_every_problem(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run prints the plan with what is missing and exits 1 without running anything."""
    run_id = write_run(store, env=environment(version="3.4.10"), parameters={"x": {"__rf__": "opaque", "type": "Lock", "hash": None, "repr": ""}})
    before = store_files(store)
    code, out, _ = _run([run_id, "--store", store.url, "--dry-run"], capsys)
    assert code == 1
    assert "replay plan" in out and "3.4.10" in out and "'x'" in out and "missing" in out
    assert store_files(store) == before


@pytest.mark.slow
def test_pin_that_no_longer_resolves(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A recorded pin the index does not have: exit 7, one line naming the pin (with --json
    nothing else is printed: no plan, no progress); no half-built environment is left in the
    cache, and nothing is written to the store."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(cache))
    env = environment(Distribution(name="reproflow-no-such-dist", version="9.9.9"))
    run_id = write_run(store, env=env, source_files=SRC)
    before = store_files(store)
    code, out, err = _run([run_id, "--store", store.url, "--json"], capsys)
    line = _one_line(err)
    assert code == 7 and out == "" and "cannot install reproflow-no-such-dist==9.9.9" in line
    assert store_files(store) == before
    envs = cache / "envs"
    assert not envs.exists() or [p.name for p in envs.iterdir() if not p.name.startswith(".")] == []
