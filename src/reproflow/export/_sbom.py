"""CycloneDX 1.6 JSON SBOM of the recorded environment, via cyclonedx-python-lib.

The flow is the BOM's ``metadata.component`` (an application); every recorded distribution is a
``library`` component with its ``pkg:pypi`` package URL (VCS installs carry ``vcs_url``), its
license (an SPDX expression where it parses as one, else a named license), archive hashes where
PEP 610 recorded them, and dependency edges from its ``Requires-Dist`` to the distributions
present. The interpreter is a ``platform`` component.
"""

from __future__ import annotations

import functools
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ._common import ExportContext, Pin


def _purl(pin: Pin) -> Any:
    from packageurl import PackageURL

    qualifiers: dict[str, str] = {}
    if pin.kind == "vcs" and pin.url:
        qualifiers["vcs_url"] = f"{pin.vcs or 'git'}+{pin.url}" + (f"@{pin.commit}" if pin.commit else "")
    elif pin.kind == "archive" and pin.url and not pin.path:
        qualifiers["download_url"] = pin.url
    return PackageURL(type="pypi", name=pin.normalized, version=pin.version, qualifiers=qualifiers or None)


@functools.lru_cache(maxsize=1)
def spdx_licensing() -> Any:
    """license_expression's SPDX licensing, built once per process: building it reads the whole
    SPDX license table (about 0.4 s of CPU), which per package made a 200-package SBOM take
    minutes on a loaded machine."""
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


def _licenses(license_text: str | None, classifiers: list[str]) -> list[Any]:
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
    from license_expression import ExpressionError

    text = (license_text or "").strip()
    if text and "\n" not in text and len(text) < 200 and text.upper() not in ("UNKNOWN", "NONE"):
        licensing = spdx_licensing()
        try:
            parsed = licensing.parse(text, validate=True, strict=True)
            if parsed is not None and not licensing.unknown_license_keys(parsed):
                return [LicenseExpression(str(parsed))]
        except ExpressionError:
            pass
        return [DisjunctiveLicense(name=text)]
    names = [c.split("::")[-1].strip() for c in classifiers if c.split("::")[-1].strip() != "OSI Approved"]
    return [DisjunctiveLicense(name=n) for n in names]


def export_sbom(ctx: ExportContext) -> str:
    """Render the SBOM as CycloneDX 1.6 JSON (validated with the library's JSON validator in tests)."""
    from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, XsUri
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.dependency import Dependency
    from cyclonedx.output.json import JsonV1Dot6

    from .._version import __version__

    rec = ctx.run.record
    bom = Bom()
    git = ctx.context.git
    app = Component(
        name=rec.flow_name,
        type=ComponentType.APPLICATION,
        bom_ref=f"flow:{rec.flow_name}",
        version=git.commit if git.available and git.commit else None,
        description=f"Prefect flow run {rec.run_id}, recorded by reproflow",
    )
    bom.metadata.component = app
    bom.metadata.timestamp = rec.started_at
    bom.metadata.tools.components.add(
        Component(name="reproflow", version=__version__, type=ComponentType.APPLICATION)
    )
    py = ctx.environment.python
    interpreter = Component(
        name=py.implementation.lower(), version=py.version, type=ComponentType.PLATFORM, bom_ref=f"python:{py.version}"
    )
    bom.components.add(interpreter)

    components: dict[str, Any] = {}
    dists = {canonicalize_name(d.name): d for d in ctx.environment.distributions}
    for pin in ctx.pins():
        dist = dists[pin.normalized]
        comp = Component(
            name=pin.name,
            version=pin.version,
            type=ComponentType.LIBRARY,
            purl=_purl(pin),
            bom_ref=f"pkg:pypi/{pin.normalized}@{pin.version}",
            licenses=_licenses(dist.license, dist.license_classifiers),
            description=dist.summary,
        )
        if pin.sha256:
            comp.hashes.add(HashType(alg=HashAlgorithm.SHA_256, content=pin.sha256))
        if pin.kind == "vcs" and pin.url:
            comp.external_references.add(ExternalReference(type=ExternalReferenceType.VCS, url=XsUri(pin.url)))
        bom.components.add(comp)
        components[pin.normalized] = comp
    # Each component's edges are added once, as Dependency objects: Bom.register_dependency
    # searches every registered dependency per call (quadratic: 1.6 s for 200 packages).
    for name, comp in components.items():
        deps = []
        for raw in dists[name].requires:
            try:
                req = Requirement(raw)
            except InvalidRequirement:
                continue
            if req.marker is not None and "extra" in str(req.marker):
                continue  # optional extras are not part of what was installed for this one
            target = components.get(canonicalize_name(req.name))
            if target is not None and target is not comp:
                deps.append(target)
        bom.dependencies.add(Dependency(ref=comp.bom_ref, dependencies=[Dependency(ref=d.bom_ref) for d in deps]))
    bom.dependencies.add(Dependency(ref=interpreter.bom_ref))
    everything = [*components.values(), interpreter]
    bom.dependencies.add(Dependency(ref=app.bom_ref, dependencies=[Dependency(ref=c.bom_ref) for c in everything]))
    return str(JsonV1Dot6(bom).output_as_string(indent=2)) + "\n"
