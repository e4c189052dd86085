"""Exports of a recorded run into formats other tools read.

Formats live in a registry (name → ``"module:function"``), imported only when asked for, so
``import reproflow`` never pays for rocrate, prov or cyclonedx; a missing optional library
becomes an :class:`~reproflow.errors.ExportError` that names the extra to install::

    from reproflow.export import export_run
    text = export_run(store, run_id, "requirements")
    export_run(store, run_id, "ro-crate", out="crate.zip")

Every exporter takes an :class:`ExportContext` (the run, its environment, options) and returns
``str`` or ``bytes``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

from ..errors import ExportError
from ..store import Store
from ._common import ExportContext, Pin, classify


@dataclass(frozen=True)
class Exporter:
    """One registered format."""

    name: str
    target: str  #: "module:function", imported lazily
    description: str
    default_filename: str
    requires: tuple[str, ...] = ()  #: importable modules it needs
    extra: str | None = None  #: the reproflow extra that installs them
    binary: bool = False  #: whether it returns bytes for this filename

    def load(self) -> Callable[[ExportContext], Union[str, bytes]]:
        for module in self.requires:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                hint = f"pip install 'reproflow[{self.extra}]'" if self.extra else f"pip install {module}"
                raise ExportError(
                    f"export format {self.name!r} needs the {module!r} library, which is not "
                    f"installed ({exc}); install it with `{hint}`"
                ) from None
        module_name, func = self.target.split(":")
        return getattr(importlib.import_module(module_name), func)  # type: ignore[no-any-return]


_REGISTRY: dict[str, Exporter] = {}


def register_exporter(exporter: Exporter) -> None:
    """Add (or replace) a format in the registry."""
    _REGISTRY[exporter.name] = exporter


for _e in [
    Exporter("requirements", "reproflow.export._requirements:export_requirements",
             "pinned requirements.txt (hashes where known; local/editable as paths, VCS as URLs)",
             "requirements.txt"),
    Exporter("pylock", "reproflow.export._pylock:export_pylock",
             "PEP 751 pylock.toml (artifact URLs and hashes looked up on the package index)",
             "pylock.toml"),
    Exporter("conda", "reproflow.export._conda:export_conda",
             "conda environment.yml with python and a pip section", "environment.yml",
             requires=("yaml",)),
    Exporter("dockerfile", "reproflow.export._container:export_dockerfile",
             "Dockerfile: matching Python/OS (or CUDA) base, pinned env via uv, code at its commit",
             "Dockerfile"),
    Exporter("apptainer", "reproflow.export._container:export_apptainer",
             "Apptainer/Singularity definition file (.def)", "reproflow.def"),
    Exporter("cresp", "reproflow.export._cresp:export_cresp",
             "CRESP cresp.toml (TOML 1.0)", "cresp.toml", requires=("tomli_w",)),
    Exporter("ro-crate", "reproflow.export._rocrate:export_rocrate",
             "Provenance Run Crate (WRROC 0.5 on RO-Crate 1.1); a folder, a .zip or the metadata JSON",
             "ro-crate-metadata.json", requires=("rocrate",), extra="export"),
    Exporter("prov", "reproflow.export._prov:export_prov",
             "W3C PROV-JSON document", "prov.json", requires=("prov",), extra="export"),
    Exporter("sbom", "reproflow.export._sbom:export_sbom",
             "CycloneDX 1.6 JSON SBOM of the recorded environment", "sbom.cdx.json",
             requires=("cyclonedx", "packageurl"), extra="export"),
    Exporter("licenses", "reproflow.export._licenses:export_licenses",
             "license report of the recorded environment (Markdown, or JSON for a .json file)",
             "licenses.md"),
    Exporter("graph", "reproflow.export._graph:export_graph",
             "dependency graph of the recorded distributions: Graphviz DOT, or an SVG picture for a .svg file",
             "graph.dot"),
]:  # fmt: skip
    register_exporter(_e)


def formats() -> dict[str, Exporter]:
    """The registered formats, by name."""
    return dict(_REGISTRY)


def get_exporter(fmt: str) -> Exporter:
    key = fmt.strip().lower()
    aliases = {"requirements.txt": "requirements", "rocrate": "ro-crate", "pylock.toml": "pylock",
               "docker": "dockerfile", "singularity": "apptainer", "cyclonedx": "sbom", "license": "licenses", "dot": "graph"}  # fmt: skip
    key = aliases.get(key, key)
    if key not in _REGISTRY:
        raise ExportError(
            f"unknown export format {fmt!r}; choose one of: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[key]


def export_run(
    store: Store,
    run_id: str,
    fmt: str,
    out: str | os.PathLike[str] | None = None,
    notes: list[str] | None = None,
    **options: Any,
) -> Union[str, bytes]:
    """Export a recorded run.

    Args:
        store: the store holding the run.
        run_id: a run id or unique prefix.
        fmt: a registered format name (see :func:`formats`).
        out: where to write the result; ``None`` only returns it. For ``ro-crate`` a path
            ending in ``.zip`` writes a zipped crate and any other path a crate folder.
        notes: a list that receives what the user should know about the result (for example
            the packages a partial lock left out).
        **options: format options (``index_url`` for pylock/requirements hash lookup,
            ``allow_partial`` to write a lock that leaves out packages no index holds,
            ``license`` for ro-crate, ...).

    Returns:
        The exported document (``bytes`` for zipped crates).
    """
    exporter = get_exporter(fmt)
    func = exporter.load()
    if out is not None:
        options["out"] = os.fspath(out)
    ctx = ExportContext.load(store, run_id, **options)
    result = func(ctx)
    if notes is not None:
        notes.extend(ctx.notes)
    if out is not None and not ctx.options.get("_written"):
        path = os.fspath(out)
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        mode = "wb" if isinstance(result, bytes) else "w"
        with open(path, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as fh:
            fh.write(result)
    return result


__all__ = [
    "ExportContext",
    "Exporter",
    "Pin",
    "classify",
    "export_run",
    "formats",
    "get_exporter",
    "register_exporter",
]
