"""The distributions a run imported: sys.modules mapped to distributions, recorded at run end."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

import pytest

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


def _settle() -> None:
    """Let the racy window pass: metadata changed within it is never taken from the cache."""
    import time

    from reproflow.capture._digest import RACY_WINDOW_NS

    time.sleep(RACY_WINDOW_NS / 1e9 * 1.5)


def test_what_distributions_provide_is_cached_and_follows_reinstalls(tmp_path: pathlib.Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """packages_distributions() as importlib.metadata gives it, from the cache while a
    distribution's metadata is unchanged (no METADATA or top_level.txt read); a reinstall that
    changes what it provides, and an uninstall, show in the next process's answer."""
    import importlib.metadata as md

    from reproflow.capture import environment as env_mod

    monkeypatch.setenv("REPROFLOW_CACHE_DIR", str(tmp_path / "cache"))
    site = tmp_path / "site"
    info = site / "demo_pkg-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("demo_a\n")
    monkeypatch.syspath_prepend(str(site))
    _settle()

    def stdlib() -> dict[str, list[str]]:
        return {k: list(v) for k, v in md.packages_distributions().items()}

    first = env_mod._packages_distributions()
    assert first == stdlib() and first["demo_a"] == ["demo-pkg"]

    declared = md._top_level_declared  # type: ignore[attr-defined]

    def no_reading(dist: object) -> object:
        # only the demo's: another distribution of this environment changed within the racy
        # window (a test beside this one installing into it) is read again, rightly
        if pathlib.Path(getattr(dist, "_path", "")) == info:
            raise AssertionError(f"metadata read again for {dist}")
        return declared(dist)

    with monkeypatch.context() as m:
        m.setattr(md, "_top_level_declared", no_reading)
        assert env_mod._packages_distributions() == first

    new = info / "top_level.txt.new"  # a reinstall writes a new file
    new.write_text("demo_b\n")
    new.replace(info / "top_level.txt")
    _settle()
    second = env_mod._packages_distributions()
    assert second == stdlib() and second["demo_b"] == ["demo-pkg"] and "demo_a" not in second

    for f in info.iterdir():
        f.unlink()
    info.rmdir()
    third = env_mod._packages_distributions()
    assert third == stdlib() and "demo_b" not in third
