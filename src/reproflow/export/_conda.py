"""conda ``environment.yml``: Python from conda-forge, every recorded distribution in ``pip:``."""

from __future__ import annotations

import re
from typing import Any

from ._common import ExportContext

# pip, setuptools and wheel are conda packages in their own right: keep them out of pip:.
_CONDA_OWNED = {"pip", "setuptools", "wheel"}


def export_conda(ctx: ExportContext) -> str:
    """Render environment.yml; parse it back with ``yaml.safe_load``."""
    import yaml

    rec = ctx.run.record
    pins = ctx.pins()
    pip_lines = [p.requirement() for p in pins if p.normalized not in _CONDA_OWNED]
    conda_deps: list[Any] = [f"python={ctx.python_minor()}"]
    for p in pins:
        if p.normalized in _CONDA_OWNED and p.kind == "index":
            conda_deps.append(f"{p.normalized}={p.version}")
    if not any(str(d).startswith("pip=") for d in conda_deps):
        conda_deps.append("pip")
    conda_deps.append({"pip": pip_lines})
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{rec.flow_name}-{ctx.run_id[:8]}").strip("-")
    doc = {"name": name, "channels": ["conda-forge"], "dependencies": conda_deps}
    header = [f"# {line}" for line in ctx.header_lines("environment.yml")]
    header.append(f"# recorded Python: {ctx.python_version()} (conda-forge publishes most patch releases)")
    header.append("# create with: conda env create -f environment.yml")
    return "\n".join(header) + "\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
