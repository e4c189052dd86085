"""``graph``: the recorded distributions' dependency graph, as Graphviz DOT or a self-contained SVG.

Edges come from each distribution's recorded ``Requires-Dist``, kept when the requirement's
environment marker holds for the recorded Python and platform and its target was recorded too.
A requirement that only an extra asks for is drawn dashed (whether the extra was requested is not
recorded). Nodes are told apart by origin: index packages plain, editable installs yellow, VCS
installs blue, local folders and archives grey.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from xml.sax.saxutils import escape

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ._common import ExportContext, Pin

#: fill colour and legend label per origin
ORIGINS: dict[str, tuple[str, str]] = {
    "index": ("#ffffff", "from a package index"),
    "editable": ("#fff3b0", "editable install"),
    "vcs": ("#c6dbff", "VCS install (git commit)"),
    "local": ("#dddddd", "local folder"),
    "archive": ("#dddddd", "archive URL"),
}


@dataclass(frozen=True)
class Edge:
    source: str  #: normalized name of the dependent
    target: str  #: normalized name of the dependency
    extra: bool  #: only an extra asks for it


def edges(ctx: ExportContext, pins: list[Pin]) -> list[Edge]:
    """The recorded dependencies between recorded distributions."""
    known = {p.normalized for p in pins}
    py = ctx.environment.python
    plat = ctx.environment.platform
    marker_env = {
        "python_version": ".".join(py.version.split(".")[:2]),
        "python_full_version": py.version,
        "implementation_name": py.implementation.lower(),
        "platform_python_implementation": py.implementation,
        "sys_platform": plat.system.lower(),
        "platform_system": plat.system,
        "platform_machine": plat.machine,
        "os_name": "nt" if plat.system == "Windows" else "posix",
    }
    found: dict[tuple[str, str], Edge] = {}
    for pin in pins:
        dist = ctx.distribution(pin.name)
        for line in dist.requires if dist else []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            target = canonicalize_name(req.name)
            if target not in known or target == pin.normalized:
                continue
            extra = False
            if req.marker is not None:
                if req.marker.evaluate({**marker_env, "extra": ""}):
                    pass
                elif "extra" in str(req.marker):
                    extra = True  # holds for some extra; keep it, drawn dashed
                else:
                    continue
            key = (pin.normalized, target)
            if key not in found or (found[key].extra and not extra):
                found[key] = Edge(pin.normalized, target, extra)
    return sorted(found.values(), key=lambda e: (e.source, e.target))


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(ctx: ExportContext) -> str:
    pins = ctx.pins()
    lines = [f"// {line}" for line in ctx.header_lines("dependency graph")]
    lines.append("// edit freely and render with: dot -Tsvg graph.dot -o graph.svg")
    lines.append("digraph dependencies {")
    lines.append("  rankdir=LR;")
    lines.append('  node [shape=box, style="rounded,filled", fontname="Helvetica", fillcolor="#ffffff"];')
    imported = ctx.imported()
    if imported is not None:
        lines.append("  // thick border: imported by the run")
    for pin in pins:
        color, origin = ORIGINS[pin.kind]
        used = ""
        if imported is not None:
            used = ', penwidth=3, imported="true"' if pin.normalized in imported else ', imported="false"'
        label = f"{pin.name}\n{pin.version}"
        if pin.kind != "index":
            label += f"\n({origin})"
        lines.append(f"  {_dot_id(pin.normalized)} [label={_dot_id(label)}, fillcolor={_dot_id(color)}, "
                     f"origin={_dot_id(pin.kind)}{used}];")  # fmt: skip
    for e in edges(ctx, pins):
        style = ' [style=dashed, label="extra"]' if e.extra else ""
        lines.append(f"  {_dot_id(e.source)} -> {_dot_id(e.target)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _layers(names: list[str], deps: dict[str, set[str]]) -> dict[str, int]:
    """Column of each node: the length of its longest dependency chain (leaves in column 0);
    cycles are cut where first met."""
    column: dict[str, int] = {}
    active: set[str] = set()

    def depth(n: str) -> int:
        if n in column:
            return column[n]
        active.add(n)
        d = 1 + max((depth(m) for m in deps.get(n, ()) if m not in active), default=-1)
        active.discard(n)
        column[n] = d
        return d

    for n in names:
        depth(n)
    return column


def to_svg(ctx: ExportContext) -> str:
    """A picture with no scripts and no external references: dependents left of what they use."""
    pins = ctx.pins()
    imported = ctx.imported() or set()
    graph_edges = edges(ctx, pins)
    deps: dict[str, set[str]] = {}
    for e in graph_edges:
        deps.setdefault(e.source, set()).add(e.target)
    column = _layers([p.normalized for p in pins], deps)
    top = max(column.values(), default=0)
    width, height, gap_x, gap_y, margin = 190, 34, 70, 12, 20
    rows: dict[int, int] = {}
    pos: dict[str, tuple[int, int]] = {}
    for pin in pins:
        col = top - column[pin.normalized]
        row = rows.get(col, 0)
        rows[col] = row + 1
        pos[pin.normalized] = (margin + col * (width + gap_x), margin + 40 + row * (height + gap_y))
    total_w = margin * 2 + (top + 1) * (width + gap_x)
    total_h = margin * 2 + 60 + max(rows.values(), default=1) * (height + gap_y) + 20 * (len(ORIGINS) + 1)

    def parts() -> Iterator[str]:
        yield (f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" '
               f'viewBox="0 0 {total_w} {total_h}" font-family="Helvetica, Arial, sans-serif" font-size="11">')  # fmt: skip
        yield f"<title>{escape(ctx.header_lines('dependency graph')[0])}</title>"
        yield f'<text x="{margin}" y="{margin + 12}" font-size="13">{escape(ctx.header_lines("dependency graph")[0])}</text>'
        for e in graph_edges:
            (x1, y1), (x2, y2) = pos[e.source], pos[e.target]
            dash = ' stroke-dasharray="4 3"' if e.extra else ""
            yield (f'<line x1="{x1 + width}" y1="{y1 + height // 2}" x2="{x2}" y2="{y2 + height // 2}" '
                   f'stroke="#8896a8" stroke-width="0.8"{dash}><title>{escape(e.source)} requires '
                   f'{escape(e.target)}{" (extra)" if e.extra else ""}</title></line>')  # fmt: skip
        for pin in pins:
            x, y = pos[pin.normalized]
            color, origin = ORIGINS[pin.kind]
            used = pin.normalized in imported
            yield (f'<g class="{pin.kind}{" imported" if used else ""}"><title>{escape(pin.requirement())} '
                   f'({origin}{", imported by the run" if used else ""})</title>'
                   f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="5" fill="{color}" stroke="#333" '
                   f'stroke-width="{3 if used else 1}"/>'
                   f'<text x="{x + 6}" y="{y + 14}">{escape(pin.name)}</text>'
                   f'<text x="{x + 6}" y="{y + 28}" fill="#555">{escape(pin.version)}</text></g>')  # fmt: skip
        y = total_h - 20 * len(ORIGINS)
        for kind, (color, origin) in ORIGINS.items():
            yield (f'<rect x="{margin}" y="{y - 10}" width="14" height="12" fill="{color}" stroke="#333"/>'
                   f'<text x="{margin + 20}" y="{y}">{escape(kind)}: {escape(origin)}</text>')  # fmt: skip
            y += 20
        if imported:
            yield (f'<rect x="{margin}" y="{y - 10}" width="14" height="12" fill="#fff" stroke="#333" stroke-width="3"/>'
                   f'<text x="{margin + 20}" y="{y}">thick border: imported by the run</text>')  # fmt: skip
        yield "</svg>"

    return "\n".join(parts()) + "\n"


def export_graph(ctx: ExportContext) -> str:
    """DOT, or an SVG picture when the output file ends in ``.svg``."""
    out = str(ctx.options.get("out") or "")
    return to_svg(ctx) if out.lower().endswith(".svg") else to_dot(ctx)


__all__ = ["Edge", "edges", "export_graph", "to_dot", "to_svg"]
