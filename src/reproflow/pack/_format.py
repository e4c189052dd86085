"""The pack file: a plain, deterministic tar whose first member is a manifest of all the others.

Layout::

    reproflow-pack.json                    manifest: run, every member with size and SHA-256, dists
    ro-crate-metadata.json                 the run's Provenance Run Crate (when rocrate is installed)
    dists/<wheel or sdist file name>       distribution files of every pin (not with --no-wheels)
    store/runs/<run-id>/run.json ...       the run's records, as in a store
    store/index/<run-id>.json
    store/objects/sha256/<ab>/<rest>       every blob the run's records reference

A pack is untrusted input. :func:`read_pack` accepts only regular files at the names above (no
links, folders, absolute names or ``..``), each listed once in the manifest with its size and
SHA-256, each within the size limits, and a blob only when its content hashes to its name. It
checks every member while copying it out, so a refused pack leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import PackError, UnsafePack

MANIFEST = "reproflow-pack.json"
CRATE = "ro-crate-metadata.json"
FORMAT = "reproflow-pack"
FORMAT_MAJOR = 1
FORMAT_VERSION = "1.0"

#: Limits for reading: a member, the manifest, the whole pack, the number of members.
MAX_MEMBER_BYTES = 16 << 30
MAX_MANIFEST_BYTES = 64 << 20
MAX_TOTAL_BYTES = 256 << 30
MAX_MEMBERS = 1_000_000

_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_DIST = r"[A-Za-z0-9][A-Za-z0-9._+!-]{0,250}\.(?:whl|tar\.gz|zip)"
_NAMES = re.compile(
    rf"^(?:{re.escape(CRATE)}"
    rf"|dists/{_DIST}"
    rf"|store/runs/{_ID}/(?:run|end)\.json"
    rf"|store/runs/{_ID}/maps/{_ID}\.json"
    rf"|store/runs/{_ID}/tasks/{_ID}\.jsonl?"
    rf"|store/index/{_ID}\.json"
    r"|store/objects/sha256/[0-9a-f]{2}/[0-9a-f]{62})$"
)
_CHUNK = 1 << 20


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Member(_Model):
    """One file in the pack."""

    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class PackedDist(_Model):
    """A distribution file in ``dists/`` and the pin it serves."""

    file: str
    name: str
    version: str
    build_only: bool = False  #: only needed to build a local source or an sdist


class Manifest(_Model):
    """``reproflow-pack.json``: what the pack holds."""

    format: str = FORMAT
    format_version: str = FORMAT_VERSION
    run_id: str
    flow_name: str = ""
    reproflow_version: str = ""
    with_dists: bool = True
    python: str = ""  #: the Python version the distribution files were picked for
    platform: str = ""
    members: dict[str, Member] = Field(default_factory=dict)
    dists: list[PackedDist] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  #: what the pack leaves out, and why


def member_problem(name: str) -> str | None:
    """Why ``name`` may not be a pack member, or None."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name or ".." in name.split("/"):
        return f"member {name[:200]!r} is an absolute path or climbs out with '..'"
    if not _NAMES.match(name):
        return f"member {name[:200]!r} is not part of the pack layout"
    return None


def tar_info(name: str, size: int) -> tarfile.TarInfo:
    """A member header that depends on nothing but its name and size (deterministic packs)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


@dataclass
class OpenedPack:
    """A checked pack, copied out into a folder."""

    path: str
    manifest: Manifest
    root: Path  #: the folder it was copied into
    store_dir: Path  #: a local store holding the run's records and blobs
    dists_dir: Path  #: the distribution files

    @property
    def run_id(self) -> str:
        return self.manifest.run_id


def _copy_checked(src: IO[bytes], dst: Path, size: int) -> str:
    h = hashlib.sha256()
    left = size
    with open(dst, "wb") as out:
        while left > 0:
            chunk = src.read(min(_CHUNK, left))
            if not chunk:
                break
            h.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return h.hexdigest()


def _parse_manifest(data: bytes, label: str) -> Manifest:
    try:
        obj: Any = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UnsafePack.because(label, f"its manifest is not valid JSON ({exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UnsafePack.because(label, f"{MANIFEST} does not describe a reproflow pack")
    version = str(obj.get("format_version", ""))
    major = version.split(".")[0]
    if not major.isdigit():
        raise UnsafePack.because(label, f"its format version {version[:40]!r} is not valid")
    if int(major) > FORMAT_MAJOR:
        raise PackError(f"the pack {label} has format {version}, newer than this reproflow reads ({FORMAT_VERSION}); "
                        "upgrade reproflow (`pip install -U reproflow`)", path=label)
    try:
        manifest = Manifest.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UnsafePack.because(label, f"its manifest field {where} is invalid ({first['msg']})") from None
    if not re.fullmatch(_ID, manifest.run_id):
        raise UnsafePack.because(label, f"its run id {manifest.run_id[:80]!r} is not a plain id")
    if len(manifest.members) > MAX_MEMBERS:
        raise UnsafePack.because(label, f"it lists {len(manifest.members)} members (at most {MAX_MEMBERS})")
    total = 0
    for name, m in manifest.members.items():
        problem = member_problem(name)
        if problem:
            raise UnsafePack.because(label, problem)
        if m.size > MAX_MEMBER_BYTES:
            raise UnsafePack.because(label, f"member {name} is {m.size} bytes (at most {MAX_MEMBER_BYTES})")
        if name.startswith("store/objects/") and name.replace("/", "")[-64:] != m.sha256:
            raise UnsafePack.because(label, f"blob {name} is listed with another hash (sha256:{m.sha256})")
        total += m.size
    if total > MAX_TOTAL_BYTES:
        raise UnsafePack.because(label, f"its members add up to {total} bytes (at most {MAX_TOTAL_BYTES})")
    if f"store/runs/{manifest.run_id}/run.json" not in manifest.members:
        raise UnsafePack.because(label, f"it does not hold the record of its run {manifest.run_id}")
    for d in manifest.dists:
        if f"dists/{d.file}" not in manifest.members:
            raise UnsafePack.because(label, f"its distribution file {d.file[:200]!r} is not a member")
    return manifest


def read_pack(path: str | os.PathLike[str], dest: str | os.PathLike[str]) -> OpenedPack:
    """Check a pack member by member and copy it out into ``dest`` (an empty or new folder).

    Raises:
        PackError: the file is missing or not a pack.
        UnsafePack: a member is unsafe, unlisted, missing, too large or does not hash as listed;
            ``dest`` is then emptied again.
    """
    label = os.fspath(path)
    if not os.path.isfile(label):
        raise PackError(f"no pack file at {label}; give the path of a file written by `reproflow pack`", path=label)
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    try:
        return _read(label, root)
    except BaseException:
        for child in root.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise


def _read(label: str, root: Path) -> OpenedPack:
    try:
        tar = tarfile.open(label, mode="r:")  # a plain tar only: no decompression bombs
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise PackError(f"{label} is not a reproflow pack (not a plain tar file: {exc}); "
                        "make one with `reproflow pack RUN_ID -o FILE`", path=label) from None
    with tar:
        try:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isreg():
                raise PackError(f"{label} is not a reproflow pack (its first member is not {MANIFEST}); "
                                "make one with `reproflow pack RUN_ID -o FILE`", path=label)
            if first.size > MAX_MANIFEST_BYTES:
                raise UnsafePack.because(label, f"its manifest is {first.size} bytes (at most {MAX_MANIFEST_BYTES})")
            fh = tar.extractfile(first)
            assert fh is not None
            manifest = _parse_manifest(fh.read(), label)
            seen: set[str] = set()
            while True:
                member = tar.next()
                if member is None:
                    break
                _extract_member(tar, member, manifest, seen, root, label)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise UnsafePack.because(label, f"it cannot be read to the end ({exc})") from None
    missing = sorted(set(manifest.members) - seen)
    if missing:
        raise UnsafePack.because(label, f"{len(missing)} listed member(s) are missing, first {missing[0]}")
    return OpenedPack(label, manifest, root, root / "store", root / "dists")


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, manifest: Manifest, seen: set[str], root: Path,
                    label: str) -> None:
    name = member.name
    problem = member_problem(name)
    if problem:
        raise UnsafePack.because(label, problem)
    if not member.isreg():
        raise UnsafePack.because(label, f"member {name} is a link, a folder or a special file, not a regular file")
    if name in seen:
        raise UnsafePack.because(label, f"member {name} appears twice")
    listed = manifest.members.get(name)
    if listed is None:
        raise UnsafePack.because(label, f"member {name} is not listed in its manifest")
    if member.size != listed.size:
        raise UnsafePack.because(label, f"member {name} is {member.size} bytes, its manifest says {listed.size}")
    seen.add(name)
    target = root / name
    target.parent.mkdir(parents=True, exist_ok=True)
    src = tar.extractfile(member)
    assert src is not None
    actual = _copy_checked(src, target, member.size)
    if actual != listed.sha256:
        raise UnsafePack.because(label, f"member {name} hashes to sha256:{actual}, its manifest says sha256:{listed.sha256}")


__all__ = [
    "CRATE",
    "MANIFEST",
    "Manifest",
    "Member",
    "OpenedPack",
    "PackedDist",
    "member_problem",
    "read_pack",
    "tar_info",
]
