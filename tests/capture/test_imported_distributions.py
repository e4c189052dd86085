"""The distributions a run imported: sys.modules mapped to distributions, recorded at run end."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

from reproflow.capture.environment import imported_distributions
from reproflow.store import Store


def test_modules_map_to_their_distributions() -> None:
    """Top-level and dotted module names map through packages_distributions(); the standard
    library and unknown modules map to nothing; names come back normalised."""
    got = imported_distributions(["requests", "requests.adapters", "charset_normalizer.md", "json", "no_such_mod"])
    assert got == ["charset-normalizer", "requests"]


def test_a_run_records_what_it_imported(tmp_path: pathlib.Path) -> None:
    """A reproflow.record() run in a fresh interpreter that imports idna records idna and reproflow,
    not the dev tool dockerfile-parse (installed, never imported), in end.json."""
    script = textwrap.dedent(f"""
        import reproflow
        with reproflow.record("imports", store={str(tmp_path / "store")!r}):
            import idna
            idna.encode("example.org")
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, capture_output=True, text=True)
    store = Store(tmp_path / "store")
    (summary,) = store.list_runs()
    end = store.load_run(summary.run_id).end
    assert end is not None and end.imported_distributions is not None
    assert "idna" in end.imported_distributions and "reproflow" in end.imported_distributions
    assert "dockerfile-parse" not in end.imported_distributions
