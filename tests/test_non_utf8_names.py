"""File names that are not UTF-8 (Latin-1 bytes from an old archive): Python reads them as lone
surrogates (``os.fsdecode``), which UTF-8 cannot encode. A task reading one used to fail when
its record was written; the records keep such a name exactly (JSON's ``\\udcXX`` escapes), and
what people read (reports, RO-Crate, the CLI) shows its bytes as ``\\xNN``. The replay of such a
pipeline runs in the corpus (``non_utf8_names``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import reproflow
from reproflow import repro_task
from reproflow.analysis._report import build_report, save_report
from reproflow.cli import app
from reproflow.cli._common import run_cli
from reproflow.store import Store, canonical_json
from reproflow.values._text import utf8_text

LATIN1 = b"caf\xe9.txt"


@repro_task
def upper(src: Path, dst: Path) -> int:
    dst.write_bytes(src.read_bytes().upper())
    return 1


def test_canonical_json_escapes_lone_surrogates_and_reads_them_back() -> None:
    name = os.fsdecode(LATIN1)
    data = canonical_json({"uri": name, "text": "naïve"})
    assert b"\\udce9" in data and "naïve".encode() in data  # UTF-8 text as ever; the odd byte escaped
    assert json.loads(data) == {"uri": name, "text": "naïve"}
    assert os.fsencode(json.loads(data)["uri"]) == LATIN1
    assert canonical_json({"a": "naïve"}) == '{"a":"naïve"}'.encode()
    assert utf8_text(name) == "caf\\xe9.txt" and utf8_text("naïve") == "naïve"


def test_a_task_reading_a_latin1_name_is_recorded(store: Store, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/" + LATIN1))
    src.write_bytes(b"hello")
    dst = tmp_path / "out.txt"
    with reproflow.record("latin-1 names") as run:
        assert upper(src, dst) == 1
    (task,) = store.load_run(run.run_id).final_tasks()
    assert task.state == "COMPLETED"
    (ref,) = [r for r in task.inputs if r.param == "src"]
    assert os.fsencode(ref.uri) == os.fsencode(str(src)) and ref.kind == "file"

    md = Path(save_report(store, build_report(store, run.run_id)))
    assert "caf\\xe9.txt" in md.read_text(encoding="utf-8")

    crate = tmp_path / "crate"
    assert run_cli(app, ["export", run.run_id, "--format", "ro-crate", "--output", str(crate), "--store", str(store.root)]) == 0
    meta = (crate / "ro-crate-metadata.json").read_text(encoding="utf-8")
    assert "caf%E9.txt" in meta and "caf\\\\xe9.txt" in meta

    capsys.readouterr()
    assert run_cli(app, ["runs", "show", run.run_id, "--json", "--store", str(store.root)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert os.fsdecode(LATIN1) in json.dumps(shown, ensure_ascii=False)
