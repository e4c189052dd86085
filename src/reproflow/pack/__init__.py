"""Packs: one file holding everything needed to replay a run on another machine, offline.

``reproflow pack RUN_ID -o FILE`` writes the run's records and blobs (source snapshot, stored
inputs, environment), its RO-Crate metadata and the distribution files of every pin;
``reproflow replay FILE`` rebuilds the environment from those files alone (``uv pip install
--no-index --find-links``) and replays; ``reproflow unpack FILE --store URL`` imports the run into
a store. See docs/packs.md and :mod:`reproflow.pack._format` for the layout and its checks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._format import Manifest, OpenedPack, read_pack
from ._write import PackReport, Progress, write_pack


def pack(
    run_id: str,
    out: str | os.PathLike[str],
    store: Any = None,
    *,
    with_dists: bool = True,
    progress: Progress | None = None,
) -> PackReport:
    """Pack a recorded run into one file (see :func:`reproflow.pack._write.write_pack`).

    Args:
        run_id: a run id, a unique prefix or ``latest``.
        out: the pack file to write (replaced when it exists).
        store: a store URL or :class:`~reproflow.store.Store` (default ``$REPROFLOW_STORE``).
        with_dists: include the distribution files of every pin (False: ``--no-wheels``).
        progress: called with a short description of each step.
    """
    from ..store import Store

    st = store if isinstance(store, Store) else Store(store)
    st.require()
    return write_pack(st, run_id, out, with_dists=with_dists, progress=progress)


@contextmanager
def opened(path: str | os.PathLike[str], *, keep: bool = False) -> Iterator[OpenedPack]:
    """Check a pack and copy it out into a temporary folder (removed afterwards unless ``keep``).

    Raises:
        PackError, UnsafePack: the file is not a pack, or a member is unsafe or altered.
        RecordError, BlobError: a record in it does not validate.
    """
    from ..store import Store

    root = Path(tempfile.mkdtemp(prefix="reproflow-pack-"))
    try:
        found = read_pack(path, root)
        Store(str(found.store_dir)).load_run(found.run_id)  # every record validates before use
        yield found
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def pack_index(found: OpenedPack) -> Any:
    """The uv index arguments for a replay from this pack: its files and nothing else, or this
    machine's configuration when the pack has none (``--no-wheels``)."""
    from ..replay._uv import IndexConfig

    if not found.manifest.with_dists:
        return None
    n = len(found.manifest.dists)
    return IndexConfig(args=["--no-index", "--find-links", str(found.dists_dir)],
                       source=f"the pack's {n} distribution files only (--no-index)",
                       find_links=[str(found.dists_dir)])


def replay_pack(path: str | os.PathLike[str], *, keep: bool = False, **options: Any) -> Any:
    """Replay the run in a pack, building its environment from the pack's files alone.

    Takes the options of :func:`reproflow.replay.replay`. The replay's own records go into the
    pack's opened store (kept with ``keep``, and its folder named in the result's warnings).
    """
    from ..replay import replay
    from ..store import Store

    with opened(path, keep=keep) as found:
        result = replay(found.run_id, Store(str(found.store_dir)), keep=keep, index=pack_index(found), **options)
        if keep:
            result.warnings.append(f"the pack was opened in {found.root} (its store holds the replay's records)")
        return result


@dataclass
class UnpackReport:
    """What ``unpack`` imported."""

    run_id: str
    store: str
    records: int = 0
    blobs: int = 0
    already: int = 0  #: files the store already had (same content)
    dists_left: int = 0  #: distribution files not imported (a store has no place for them)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def unpack(path: str | os.PathLike[str], store: Any = None) -> UnpackReport:
    """Check a pack and import its run (records and blobs) into a store.

    Blobs go first and ``run.json`` last, so the run appears in the store only once everything
    it names is there. A record the store already has with other content is refused.
    """
    from .. import errors
    from ..store import Store

    st = store if isinstance(store, Store) else Store(store)
    with opened(path) as found:
        report = UnpackReport(run_id=found.run_id, store=st.display_url, dists_left=len(found.manifest.dists))
        names = sorted(found.manifest.members)
        blobs = [n for n in names if n.startswith("store/objects/")]
        records = [n for n in names if n.startswith("store/") and n not in blobs]
        run_json = f"store/runs/{found.run_id}/run.json"
        order = [n for n in records if n != run_json and not n.startswith("store/index/")]
        order += [run_json] + [n for n in records if n.startswith("store/index/")]
        for name in blobs:
            digest = name.replace("/", "")[-64:]
            if st.has_blob(digest):
                report.already += 1
                continue
            st.put_blob_file(found.root / name, digest)
            report.blobs += 1
        for name in order:
            data = (found.root / name).read_bytes()
            target = st.path(name[len("store/"):])
            if name.startswith("store/index/"):  # a summary derived from the records: replaced
                if _read_or_none(st, target) == data:
                    report.already += 1
                else:
                    st.write_bytes(target, data)
                    report.records += 1
            elif st.write_bytes(target, data, create_only=True):
                report.records += 1
            elif st.read_bytes(target) == data:
                report.already += 1
            else:
                raise errors.UnsafePack.because(
                    os.fspath(path), f"the store already holds {name[len('store/'):]} with other content")
        report.notes = list(found.manifest.notes)
        return report


def _read_or_none(st: Any, path: str) -> bytes | None:
    try:
        return bytes(st.read_bytes(path))
    except FileNotFoundError:
        return None


__all__ = ["Manifest", "OpenedPack", "PackReport", "UnpackReport", "opened", "pack", "read_pack", "replay_pack", "unpack"]
