"""A pack is untrusted input: `read_pack` accepts only regular files at the names of the layout,
each listed once in the manifest with its size and hash, and copies nothing out of a pack it
refuses. These packs are built by hand, member by member, as an attacker would."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from reproflow.errors import PackError, UnsafePack
from reproflow.pack._format import MAX_MEMBER_BYTES, member_problem, read_pack

RUN = "0f0e0d0c-0000-4000-8000-000000000001"
RECORD = b'{"schema_version":"1.2"}'
BLOB = b"some bytes"
BLOB_NAME = f"store/objects/sha256/{hashlib.sha256(BLOB).hexdigest()[:2]}/{hashlib.sha256(BLOB).hexdigest()[2:]}"


def _member(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _write(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], manifest: dict[str, Any] | None = None) -> Path:
    if manifest is None:
        manifest = {"format": "reproflow-pack", "format_version": "1.0", "run_id": RUN,
                    "members": {i.name: _member(d) for i, d in members if i.isreg()}}
    head = json.dumps(manifest).encode()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("reproflow-pack.json")
        info.size = len(head)
        tar.addfile(info, io.BytesIO(head))
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _file(name: str, data: bytes = RECORD) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _good() -> list[tuple[tarfile.TarInfo, bytes]]:
    return [_file(f"store/runs/{RUN}/run.json"), _file(BLOB_NAME, BLOB)]


def test_a_well_formed_pack_is_copied_out(tmp_path: Path) -> None:
    """The control: every member listed and intact is copied out under the pack's folder."""
    opened = read_pack(_write(tmp_path / "p.tar", _good()), tmp_path / "out")
    assert opened.run_id == RUN
    assert (opened.store_dir / "runs" / RUN / "run.json").read_bytes() == RECORD
    assert (tmp_path / "out" / BLOB_NAME).read_bytes() == BLOB


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ([_file("../escape.json")], "climbs out"),
        ([_file("/etc/cron.d/x")], "absolute path"),
        ([_file("store/runs/../../x.json")], "climbs out"),
        ([_file("store/evil.sh")], "not part of the pack layout"),
        ([_file("dists/../../x.whl")], "climbs out"),
        ([_link(f"store/runs/{RUN}/end.json", "/etc/passwd")], "link"),
        ([_link(f"store/runs/{RUN}/end.json", f"store/runs/{RUN}/run.json", tarfile.LNKTYPE)], "link"),
    ],
    ids=["dotdot", "absolute", "dotdot-inside", "outside-layout", "dist-dotdot", "symlink", "hardlink"],
)
def test_unsafe_member_is_refused(members: list[tuple[tarfile.TarInfo, bytes]], expected: str, tmp_path: Path) -> None:
    """Absolute names, '..', names outside the layout and links are refused before any write."""
    pack = _write(tmp_path / "p.tar", _good() + members,
                  manifest={"format": "reproflow-pack", "format_version": "1.0", "run_id": RUN,
                            "members": {i.name: _member(d) for i, d in _good()}})
    with pytest.raises(UnsafePack, match=expected):
        read_pack(pack, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_unlisted_or_missing_or_altered_member_is_refused(tmp_path: Path) -> None:
    """A member the manifest does not list, a listed member that is absent, a member that does
    not hash as listed, and a blob listed under another hash than its name are all refused."""
    base = {"format": "reproflow-pack", "format_version": "1.0", "run_id": RUN}
    listed = {i.name: _member(d) for i, d in _good()}
    cases = [
        (_good() + [_file(f"store/runs/{RUN}/end.json")], listed, "not listed"),
        (_good()[:1], listed, "missing"),
        ([_file(f"store/runs/{RUN}/run.json", RECORD.replace(b"1.2", b"9.9")), _good()[1]], listed, "hashes to"),
        (_good(), {**listed, BLOB_NAME: _member(b"other")}, "listed with another hash"),
        (_good(), {**listed, BLOB_NAME: {"size": MAX_MEMBER_BYTES + 1, "sha256": _member(BLOB)["sha256"]}}, "at most"),
        (_good(), {k: v for k, v in listed.items() if "runs" not in k}, "does not hold the record"),
    ]
    for i, (members, manifest_members, expected) in enumerate(cases):
        pack = _write(tmp_path / f"p{i}.tar", members, manifest={**base, "members": manifest_members})
        with pytest.raises(UnsafePack, match=expected):
            read_pack(pack, tmp_path / f"out{i}")
        assert list((tmp_path / f"out{i}").iterdir()) == []


def test_not_a_pack(tmp_path: Path) -> None:
    """A missing file, a file that is not a tar, a compressed tar, a tar without the manifest
    first, and a newer format each get a one-line PackError naming the next step."""
    with pytest.raises(PackError, match="no pack file"):
        read_pack(tmp_path / "nope.tar", tmp_path / "o1")
    (tmp_path / "text.tar").write_text("hello")
    with pytest.raises(PackError, match="not a plain tar"):
        read_pack(tmp_path / "text.tar", tmp_path / "o2")
    with tarfile.open(tmp_path / "z.tar.gz", "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("reproflow-pack.json"), io.BytesIO(b""))
    with pytest.raises(PackError, match="not a plain tar"):
        read_pack(tmp_path / "z.tar.gz", tmp_path / "o3")
    with tarfile.open(tmp_path / "other.tar", "w") as tar:
        info, data = _file("README")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(PackError, match="first member"):
        read_pack(tmp_path / "other.tar", tmp_path / "o4")
    newer = _write(tmp_path / "newer.tar", [], manifest={"format": "reproflow-pack", "format_version": "2.0",
                                                          "run_id": RUN})
    with pytest.raises(PackError, match="upgrade reproflow"):
        read_pack(newer, tmp_path / "o5")


def test_cli_refuses_a_bad_pack_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`reproflow replay FILE` and `reproflow unpack FILE` on a hostile pack: one error line,
    exit 5, no traceback."""
    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    pack = _write(tmp_path / "p.tar", _good() + [_file("../escape.json")],
                  manifest={"format": "reproflow-pack", "format_version": "1.0", "run_id": RUN,
                            "members": {i.name: _member(d) for i, d in _good()}})
    for args in (["replay", str(pack)], ["unpack", str(pack), "--store", str(tmp_path / "s")]):
        capsys.readouterr()
        assert run_cli(app, args) == 5
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: refusing the pack") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "s").exists()
    assert not (tmp_path / "escape.json").exists() and not (tmp_path.parent / "escape.json").exists()


@pytest.mark.parametrize("name", ["store/runs/x/run.json", "dists/numpy-2.0-cp311-cp311-linux_x86_64.whl",
                                  "store/runs/x/tasks/t-1.1.json", "store/runs/x/tasks/batch-0a1b.jsonl",
                                  "store/index/x.json", "ro-crate-metadata.json", "dists/a-1.0.tar.gz"])
def test_layout_names_are_accepted(name: str) -> None:
    assert member_problem(name) is None


def test_replay_of_a_pack_file_takes_no_store_and_no_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A pack holds its own store: `replay FILE --store URL` and `replay FILE --twice` are usage
    errors that name the way (unpack first), not a silent choice of one of the two."""
    from reproflow.cli._common import run_cli
    from reproflow.cli import app

    pack = _write(tmp_path / "p.tar", _good())
    for extra, named in ((["--store", str(tmp_path / "s")], "unpack"), (["--twice"], "unpack")):
        capsys.readouterr()
        assert run_cli(app, ["replay", str(pack), *extra]) == 2
        err = capsys.readouterr().err
        assert named in err and "Traceback" not in err, err
