"""Write a pack: one run's records and blobs, its RO-Crate, and its distribution files."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import errors
from ..records import Environment, Run
from ..store import Store, is_record_file
from ._dists import build_requires_of_sdist, build_requires_of_tree, download, resolve_build_requires
from ._format import CRATE, MANIFEST, Manifest, Member, PackedDist, tar_info

Progress = Callable[[str], None]


@dataclass
class PackReport:
    """What a pack holds and what made it big."""

    path: str
    run_id: str
    size: int
    sha256: str  #: of the pack file: what a paper cites
    seconds: float
    with_dists: bool
    by_kind: dict[str, int] = field(default_factory=dict)  #: bytes per kind of member
    counts: dict[str, int] = field(default_factory=dict)  #: members per kind
    largest: list[tuple[str, int, str]] = field(default_factory=list)  #: (member, bytes, what it is)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "run_id": self.run_id, "size": self.size, "sha256": self.sha256,
            "seconds": round(self.seconds, 3), "with_dists": self.with_dists, "by_kind": self.by_kind,
            "counts": self.counts,
            "largest": [{"member": m, "size": s, "what": w} for m, s, w in self.largest],
            "notes": self.notes,
        }


@dataclass
class _Item:
    name: str
    size: int
    sha256: str
    kind: str
    what: str
    data: bytes | None = None  #: in memory, or
    local: str | None = None  #: a local file, or
    store_path: str | None = None  #: a path in the store (a blob, checked while it is copied)


class _HashingReader:
    """Reads from a file object and hashes what passed through."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.hash.update(data)
        return data


def _blob_labels(run: Run, env: Environment) -> dict[str, tuple[str, str]]:
    """digest -> (kind, what it is) for the blobs a run's records name."""
    out: dict[str, tuple[str, str]] = {}
    ctx = run.context
    assert ctx is not None
    out[run.record.context] = ("records", "process context")
    out[ctx.environment_blob] = ("records", "environment record")
    if ctx.source.blob:
        out[ctx.source.blob] = ("source", f"source snapshot of {ctx.source.root} ({ctx.source.files} files)")
    if ctx.system_blob:
        out[ctx.system_blob] = ("records", "system libraries record")
    if ctx.git.diff_blob:
        out[ctx.git.diff_blob] = ("source", "uncommitted git diff")
    for d in env.distributions:
        if d.source_blob:
            out[d.source_blob] = ("source", f"source of {d.name} {d.version}")
    for t in run.tasks:
        out.setdefault(t.context, ("records", "process context"))
        for ref in t.inputs:
            if ref.stored_blob:
                out.setdefault(ref.stored_blob, ("stored inputs", f"stored input {ref.uri} ({t.task_name})"))
        for ref in t.outputs:
            if ref.stored_blob:
                out.setdefault(ref.stored_blob, ("stored outputs", f"stored output {ref.uri} ({t.task_name})"))
        if t.result_blob:
            out.setdefault(t.result_blob, ("results", f"stored result of {t.task_name}"))
    return out


def _record_items(store: Store, run_id: str) -> list[_Item]:
    rdir = store.run_dir(run_id)
    try:
        found = sorted(store.fs.find(rdir))
    except Exception as exc:  # noqa: BLE001 - any backend failure means "unreachable"
        raise errors.StoreUnreachable.from_exc(store.display_url, exc) from exc
    paths = [p for p in found if is_record_file(p)]
    index = store.path("index", f"{run_id}.json")
    try:
        if store.fs.exists(index):
            paths.append(index)
    except Exception as exc:  # noqa: BLE001
        raise errors.StoreUnreachable.from_exc(store.display_url, exc) from exc
    items = []
    for p in paths:
        data = store.read_bytes(p)
        rel = store.relative(p)
        items.append(_Item(f"store/{rel}", len(data), hashlib.sha256(data).hexdigest(), "records", rel, data=data))
    return items


def _blob_items(store: Store, run: Run, env: Environment, record_items: list[_Item]) -> list[_Item]:
    from ..store._gc import _references, list_blobs

    existing, _ = list_blobs(store)
    keep, by_field = _references(store, [store.path(i.name[len("store/"):]) for i in record_items], existing)
    missing = sorted(by_field - set(existing))
    if missing:
        raise errors.BlobError(f"blob sha256:{missing[0]} that run {run.run_id} names is missing from "
                               f"{store.display_url!r}; the store is incomplete, so it cannot be packed",
                               digest=missing[0])
    labels = _blob_labels(run, env)
    items = []
    for digest in sorted(keep):
        info = existing[digest]
        kind, what = labels.get(digest, ("records", "referenced blob"))
        items.append(_Item(f"store/objects/sha256/{digest[:2]}/{digest[2:]}", info.size, digest, kind, what,
                           store_path=info.path))
    return items


def _crate_item(store: Store, run_id: str, notes: list[str]) -> list[_Item]:
    from ..export import export_run

    try:
        text = export_run(store, run_id, "ro-crate")
    except errors.ExportError as exc:
        notes.append(f"no RO-Crate metadata: {exc}")
        return []
    data = text.encode() if isinstance(text, str) else text
    return [_Item(CRATE, len(data), hashlib.sha256(data).hexdigest(), "ro-crate", "RO-Crate metadata", data=data)]


def _file_item(path: Path, name: str, kind: str, what: str) -> _Item:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return _Item(name, path.stat().st_size, h.hexdigest(), kind, what, local=str(path))


def _dist_items(store: Store, run_id: str, notes: list[str], manifest: Manifest, progress: Progress) -> list[_Item]:
    """The distribution files of every pin, and of the build requirements of local sources and sdists."""
    from ..capture.source import extract_source
    from ..replay import plan as replay_plan
    from ..replay._uv import find_uv, index_config

    prepared = replay_plan(run_id, store, env_cache=False)
    if prepared.env_plan.refused:
        raise errors.UnsafeRecord.because(prepared.env_plan.refused[0])
    if prepared.choice is None:
        raise next((e for e in prepared.fatal if isinstance(e, errors.EnvironmentBuildError)),
                   errors.PythonNotAvailable(f"no Python {prepared.environment.python.version} to pick wheels for; "
                                             "install it, or pack with --no-wheels"))
    interp = prepared.choice.interpreter
    manifest.python, manifest.platform = interp.version, f"{platform.system().lower()}-{platform.machine().lower()}"
    uv_bin, index = find_uv(), index_config()
    pins = [(p.name, p.version) for p in prepared.env_plan.pins if p.kind == "index"]
    for p in prepared.env_plan.pins:
        if p.kind == "vcs":
            notes.append(f"{p.name} {p.version} is installed from {p.requirement.split(' @ ', 1)[-1]}: "
                         "not in the pack, replaying it needs that repository")
        elif p.kind == "archive":
            notes.append(f"{p.name} {p.version} is installed from the local file {p.requirement}: not in the pack")
    progress(f"fetching {len(pins)} distribution files")
    found, missing = download(pins, python=interp.path, python_version=interp.version, uv_bin=uv_bin, index=index)
    if missing:
        raise errors.PinNotResolvable.for_pins(missing, "no index this machine is configured with has them; "
                                               "pack with --no-wheels to leave the distribution files out")
    # Build requirements: local source snapshots and sdists are built by uv at replay, offline.
    requires: list[str] = []
    with tempfile.TemporaryDirectory(prefix="reproflow-pack-") as tmp:
        for p in prepared.env_plan.pins:
            if p.kind == "local" and p.source_blob:
                dest = Path(tmp) / p.source_blob[:16]
                extract_source(store.get_blob(p.source_blob), str(dest), label=f"source of {p.name}")
                from ..replay._envbuild import _project_dir

                requires += build_requires_of_tree(_project_dir(dest))
    for path in found.values():
        if not path.name.endswith(".whl"):
            requires += build_requires_of_sdist(path)
    build_found: dict[tuple[str, str], Path] = {}
    if requires:
        progress("resolving build requirements")
        build_pins = resolve_build_requires(requires, python_version=interp.version, uv_bin=uv_bin, index=index)
        build_pins = [b for b in build_pins if b not in found]
        build_found, missing = download(build_pins, python=interp.path, python_version=interp.version,
                                        uv_bin=uv_bin, index=index)
        if missing:
            raise errors.PinNotResolvable.for_pins(missing, "build requirements no configured index has")
    items = []
    for (name, version), path in sorted(found.items()) + sorted(build_found.items()):
        build_only = (name, version) in build_found
        manifest.dists.append(PackedDist(file=path.name, name=name, version=version, build_only=build_only))
        what = f"{name} {version}" + (" (build requirement)" if build_only else "")
        items.append(_file_item(path, f"dists/{path.name}", "dists", what))
    return items


def write_pack(
    store: Store,
    run_id: str,
    out: str | os.PathLike[str],
    *,
    with_dists: bool = True,
    progress: Progress | None = None,
    top: int = 10,
) -> PackReport:
    """Write one run, its blobs, RO-Crate metadata and (unless ``with_dists`` is False) the
    distribution files of its environment into one deterministic tar at ``out``.

    Raises:
        RunNotFound, RecordError, BlobError: the run cannot be read, or its store is incomplete.
        PinNotResolvable: a pinned distribution is on no configured index (``with_dists``).
    """
    from importlib.metadata import version

    t0 = time.perf_counter()
    report = progress or (lambda _msg: None)
    run = store.load_run(run_id)
    run_id = run.run_id
    assert run.context is not None
    env = store.get_model_blob(run.context.environment_blob, Environment)
    manifest = Manifest(run_id=run_id, flow_name=run.record.flow_name, reproflow_version=version("reproflow"),
                        with_dists=with_dists)
    notes: list[str] = []
    report("collecting records and blobs")
    records = _record_items(store, run_id)
    items = records + _blob_items(store, run, env, records) + _crate_item(store, run_id, notes)
    if with_dists:
        items += _dist_items(store, run_id, notes, manifest, report)
    else:
        notes.append("no distribution files (--no-wheels): a replay installs the pins from an index")
    items.sort(key=lambda i: i.name)
    manifest.notes = notes
    manifest.members = {i.name: Member(size=i.size, sha256=i.sha256) for i in items}
    head = (manifest.model_dump_json(indent=2) + "\n").encode()
    target = os.fspath(out)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    tmp = f"{target}.part-{os.getpid()}"
    report(f"writing {len(items) + 1} members")
    try:
        with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(tar_info(MANIFEST, len(head)), _bytes_reader(head))
            for item in items:
                _add(tar, item, store)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    h = hashlib.sha256()
    with open(target, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    by_kind: dict[str, int] = {"manifest": len(head)}
    counts: dict[str, int] = {"manifest": 1}
    for i in items:
        by_kind[i.kind] = by_kind.get(i.kind, 0) + i.size
        counts[i.kind] = counts.get(i.kind, 0) + 1
    largest = sorted(items, key=lambda i: (-i.size, i.name))[:top]
    return PackReport(
        path=target, run_id=run_id, size=os.path.getsize(target), sha256=h.hexdigest(),
        seconds=time.perf_counter() - t0, with_dists=with_dists,
        by_kind=dict(sorted(by_kind.items(), key=lambda kv: -kv[1])), counts=counts,
        largest=[(i.name, i.size, i.what) for i in largest], notes=notes,
    )


def _bytes_reader(data: bytes) -> IO[bytes]:
    import io

    return io.BytesIO(data)


def _add(tar: tarfile.TarFile, item: _Item, store: Store) -> None:
    info = tar_info(item.name, item.size)
    if item.data is not None:
        tar.addfile(info, _bytes_reader(item.data))
        return
    if item.local is not None:
        with open(item.local, "rb") as fh:
            reader = _HashingReader(fh)
            tar.addfile(info, reader)  # type: ignore[arg-type]
    else:
        assert item.store_path is not None
        with store.fs.open(item.store_path, "rb", block_size=8 << 20) as fh:
            reader = _HashingReader(fh)
            tar.addfile(info, reader)  # type: ignore[arg-type]
    if reader.hash.hexdigest() != item.sha256:
        if item.store_path is not None:
            raise errors.TamperedBlob.for_digest(item.sha256, reader.hash.hexdigest(), store.display_url)
        raise errors.PackError(f"{item.local} changed while it was packed; pack again", path=str(item.local))


__all__ = ["PackReport", "write_pack"]
