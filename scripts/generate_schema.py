"""Write docs/schema/*.json: the JSON Schema of every stored record, generated from records.py.

    python scripts/generate_schema.py

tests/test_records.py fails when the committed copy is out of date.
"""

from __future__ import annotations

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reproflow import records

STORED = ["RunRecord", "RunEnd", "RunSummary", "TaskRecord", "MapRecord", "ProcessContext", "Environment", "SystemLibraries"]


def schemas() -> dict[str, str]:
    out = {}
    for name in STORED:
        schema = getattr(records, name).model_json_schema(mode="serialization")
        schema["$id"] = f"https://reproflow.dev/schema/{records.SCHEMA_VERSION}/{name}.json"
        out[f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def main() -> None:
    target = ROOT / "docs" / "schema"
    target.mkdir(parents=True, exist_ok=True)
    for name, text in schemas().items():
        (target / name).write_text(text)
        print(f"wrote docs/schema/{name}")


if __name__ == "__main__":
    main()
