"""A small local file read with the GIL held (capture/_heldio.py): only where the read cannot
wait, and the same hashes whichever way a file is read."""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
from pathlib import Path

import pytest

from reproflow.capture import _files, _heldio

pytestmark = pytest.mark.skipif(_heldio._get_libc() is None, reason="no preadv2 here (Linux and glibc >= 2.26 only)")


def _local(path: Path) -> Path:
    """``path``'s folder is on a file system read with the GIL held, or the test skips."""
    st = os.stat(path)
    if _heldio._device_mode(_heldio._get_libc(), os.fsencode(str(path)), st.st_dev) is None:  # type: ignore[arg-type]
        pytest.skip(f"{path} is on a file system this machine does not read held")
    return path


def test_a_small_cached_file_is_read_held_and_hashes_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hash_local of a small file reads it through read_small (bytes in the page cache, just
    written), and the digest is the file's sha256."""
    f = tmp_path / "a.bin"
    data = os.urandom(3000)
    f.write_bytes(data)
    _local(tmp_path)
    calls: list[bool] = []
    real = _files.read_small

    def counted(path: str, st: os.stat_result) -> bytearray | None:
        got = real(path, st)
        calls.append(got is not None)
        return got

    monkeypatch.setattr(_files, "read_small", counted)
    _files.clear_memory_cache()
    assert _files.hash_local(f).sha256 == hashlib.sha256(data).hexdigest()
    assert calls == [True]


def test_the_libc_calls_keep_the_gil() -> None:
    """open, preadv2 and close go through PyDLL (the GIL kept through the call); statfs, which may
    wait on a remote server, through CDLL (the GIL let go)."""
    libc = _heldio._get_libc()
    assert libc is not None
    for fn in (libc.open, libc.preadv2, libc.close):
        assert fn._flags_ & ctypes._FUNCFLAG_PYTHONAPI, fn  # type: ignore[attr-defined]
    assert not libc.statfs._flags_ & ctypes._FUNCFLAG_PYTHONAPI  # type: ignore[attr-defined]


def test_bytes_not_in_the_page_cache_are_not_read_held(tmp_path: Path) -> None:
    """A file whose pages were dropped from the cache: RWF_NOWAIT refuses to wait for the disk,
    read_small gives None, and hash_local reads it the usual way to the same digest."""
    f = tmp_path / "cold.bin"
    data = os.urandom(8192)
    f.write_bytes(data)
    _local(tmp_path)
    if _heldio._devices[os.stat(f).st_dev] is False:
        pytest.skip("an in-memory file system (tmpfs): every byte is cached")
    fd = os.open(f, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    assert _heldio.read_small(str(f), os.stat(f)) is None
    _files.clear_memory_cache()
    assert _files.hash_local(f).sha256 == hashlib.sha256(data).hexdigest()


def test_what_is_never_read_held(tmp_path: Path) -> None:
    """A file over HELD_MAX, one grown or shrunk since its stat, a FIFO in the place of a file
    (no wait for a writer) and a file on a file system outside the list (procfs) all give None."""
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (_heldio.HELD_MAX + 1))
    small = tmp_path / "small.bin"
    small.write_bytes(b"y" * 100)
    _local(tmp_path)
    assert _heldio.read_small(str(big), os.stat(big)) is None
    st = os.stat(small)
    assert _heldio.read_small(str(small), st) == b"y" * 100
    small.write_bytes(b"y" * 101)  # grown since st
    assert _heldio.read_small(str(small), st) is None
    small.write_bytes(b"y" * 99)  # shrunk
    assert _heldio.read_small(str(small), st) is None
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done: list[object] = []
    reader = threading.Thread(target=lambda: done.append(_heldio.read_small(str(fifo), st)), daemon=True)
    reader.start()
    reader.join(10)
    assert done == [None]
    status = "/proc/self/status"
    assert _heldio.read_small(status, os.stat(status)) is None
    assert _heldio._devices[os.stat(status).st_dev] is None
