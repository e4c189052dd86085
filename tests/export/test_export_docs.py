"""Every registered export format has its docs page, listed in the index, with an example."""

from __future__ import annotations

import pathlib

import pytest

from reproflow.export import formats

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "exports"


@pytest.mark.parametrize("name", sorted(formats()))
def test_every_format_has_a_docs_page(name: str) -> None:
    """docs/exports/<name>.md exists, shows the export command for this format, says what the
    format cannot express and has an example section, and docs/exports/README.md links to it:
    a new format without docs fails here."""
    page = DOCS / f"{name}.md"
    assert page.is_file(), f"add docs/exports/{name}.md for the {name!r} export format"
    text = page.read_text(encoding="utf-8")
    assert f"--format {name}" in text
    assert "## What it cannot express" in text and "## Example" in text
    assert f"({name}.md)" in (DOCS / "README.md").read_text(encoding="utf-8")


def test_no_page_for_a_format_that_does_not_exist() -> None:
    """Every page in docs/exports (but the index) documents a registered format."""
    pages = {p.stem for p in DOCS.glob("*.md")} - {"README"}
    assert pages == set(formats())
