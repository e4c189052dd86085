"""--format graph: the dependency graph as DOT, read back by a real DOT parser, and as SVG."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import warnings
import xml.etree.ElementTree as ET

import pydot
import pytest
from rf_factory import dist, make_run, real_distribution

from reproflow.export import export_run
from reproflow.records import DirectUrl
from reproflow.store import Store


def _graph_run(store: Store) -> str:
    packages = [
        dist("rf-alpha", "1.0", requires=["rf-beta>=2", "rf-gamma; extra == 'fast'", "not-recorded>=1",
                                          "rf-win; sys_platform == 'win32'"]),
        dist("rf-beta", "2.0"),
        dist("rf-gamma", "0.5", direct_url=DirectUrl(url="https://github.com/example/gamma.git", vcs="git",
                                                     commit_id="e" * 40)),
        dist("rf-win", "1.0"),
        dist("My_Lib", "0.3.0", requires=["rf_alpha"],
             direct_url=DirectUrl(url="file:///src/mylib", editable=True)),
    ]  # fmt: skip
    return make_run(store, packages=packages)


def _parse(text: str) -> pydot.Dot:
    with warnings.catch_warnings():  # pydot 4 calls pyparsing's old camelCase names
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="pyparsing")
        warnings.filterwarnings("ignore", message=".*deprecated - use.*")
        graphs = pydot.graph_from_dot_data(text)
    assert graphs is not None and len(graphs) == 1, "not valid DOT"
    return graphs[0]


def test_dot_export_parses_with_a_real_dot_grammar(store: Store) -> None:
    """pydot's DOT grammar reads the export back: one node per recorded distribution (normalized
    names), an edge per recorded requirement whose target was recorded and whose marker holds
    (not the win32-only one), the extra-only one dashed, and origins told apart."""
    text = export_run(store, _graph_run(store), "graph")
    assert isinstance(text, str)
    graph = _parse(text)
    nodes = {n.get_name().strip('"'): n for n in graph.get_nodes() if n.get_name() not in ("node", "edge", "graph")}
    assert set(nodes) == {"rf-alpha", "rf-beta", "rf-gamma", "rf-win", "my-lib"}
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"')): e for e in graph.get_edges()}
    assert set(edges) == {("rf-alpha", "rf-beta"), ("rf-alpha", "rf-gamma"), ("my-lib", "rf-alpha")}
    assert edges[("rf-alpha", "rf-gamma")].get("style") == "dashed"
    assert edges[("rf-alpha", "rf-beta")].get("style") is None
    origins = {name: n.get("origin").strip('"') for name, n in nodes.items()}
    assert origins == {"rf-alpha": "index", "rf-beta": "index", "rf-gamma": "vcs", "rf-win": "index",
                       "my-lib": "editable"}  # fmt: skip
    fills = {name: n.get("fillcolor").strip('"') for name, n in nodes.items()}
    assert len({fills["rf-beta"], fills["rf-gamma"], fills["my-lib"]}) == 3
    assert nodes["rf-beta"].get("label") == '"rf-beta\\n2.0"'  # DOT's line break, not a backslash


@pytest.mark.skipif(shutil.which("dot") is None,
                    reason="Graphviz is not installed on this machine (.ci/run installs it as root with apt-get)")
def test_graphviz_renders_the_dot(store: Store, tmp_path: pathlib.Path) -> None:
    """Graphviz's own parser reads the export without a word on stderr, and its drawing has one
    node per recorded distribution and the same edges pydot reads."""
    target = tmp_path / "graph.dot"
    export_run(store, _graph_run(store), "graph", out=target)
    done = subprocess.run(["dot", "-Tsvg", str(target)], check=True, capture_output=True, text=True)
    assert done.stderr == ""
    root = ET.fromstring(done.stdout)
    ns = "{http://www.w3.org/2000/svg}"
    titles: dict[str, set[str]] = {"node": set(), "edge": set()}
    for g in root.iter(f"{ns}g"):
        kind, title = g.get("class") or "", g.find(f"{ns}title")
        if title is not None and title.text and kind in titles:
            titles[kind].add(title.text)
    assert titles["node"] == {"rf-alpha", "rf-beta", "rf-gamma", "rf-win", "my-lib"}
    assert titles["edge"] == {"rf-alpha->rf-beta", "rf-alpha->rf-gamma", "my-lib->rf-alpha"}


def test_svg_picture_is_self_contained(store: Store, tmp_path: pathlib.Path) -> None:
    """-o graph.svg gives well-formed SVG with a box per distribution, a line per edge, no scripts
    and no external references."""
    target = tmp_path / "graph.svg"
    export_run(store, _graph_run(store), "graph", out=target)
    text = target.read_text(encoding="utf-8")
    root = ET.fromstring(text)
    ns = "{http://www.w3.org/2000/svg}"
    groups = {g.get("class") for g in root.iter(f"{ns}g")}
    assert groups == {"index", "vcs", "editable"}
    assert len(list(root.iter(f"{ns}line"))) == 3
    assert "<script" not in text and "href" not in text


def test_graph_of_real_installed_distributions(store: Store) -> None:
    """Real metadata (requests and what it needs) gives a parseable graph with requests' edges."""
    names = ["requests", "idna", "certifi", "urllib3", "charset-normalizer"]
    run_id = make_run(store, packages=[real_distribution(n) for n in names])
    text = export_run(store, run_id, "graph")
    assert isinstance(text, str)
    targets = {e.get_destination().strip('"') for e in _parse(text).get_edges() if e.get_source().strip('"') == "requests"}
    assert targets == {"idna", "certifi", "urllib3", "charset-normalizer"}


def test_only_imported_and_the_imported_highlight(store: Store, tmp_path: pathlib.Path) -> None:
    """With the run's imported distributions recorded: --only-imported leaves the others out of
    any export (said in the header), and the graph marks imported nodes (DOT penwidth, SVG class)."""
    from reproflow.errors import ExportError

    packages = [dist("rf-alpha", "1.0", requires=["rf-beta"]), dist("rf-beta", "2.0"), dist("rf-devtool", "9.0")]
    run_id = make_run(store, packages=packages, imported=["rf-alpha", "rf-beta"])
    text = export_run(store, run_id, "requirements", only_imported=True)
    assert isinstance(text, str)
    assert [ln for ln in text.splitlines() if not ln.startswith("#")] == ["rf-alpha==1.0", "rf-beta==2.0"]
    assert "# only the 2 distributions the run imported (of 3 installed)" in text
    nodes = {n.get_name().strip('"'): n for n in _parse(str(export_run(store, run_id, "graph"))).get_nodes()}
    assert nodes["rf-alpha"].get("penwidth") == "3" and nodes["rf-devtool"].get("penwidth") is None
    export_run(store, run_id, "graph", out=tmp_path / "g.svg")
    root = ET.fromstring((tmp_path / "g.svg").read_text(encoding="utf-8"))
    marked = {g.find("{http://www.w3.org/2000/svg}text").text for g in root.iter("{http://www.w3.org/2000/svg}g")
              if "imported" in (g.get("class") or "").split()}  # fmt: skip
    assert marked == {"rf-alpha", "rf-beta"}
    old = make_run(store, packages=packages)  # no imported set recorded (older record)
    with pytest.raises(ExportError, match="no record of the distributions it imported"):
        export_run(store, old, "requirements", only_imported=True)
