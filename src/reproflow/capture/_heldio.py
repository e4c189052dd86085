"""A small local file's bytes read without letting the GIL go, where the read cannot wait (issue 16).

In a flow Prefect runs each task in a thread of its own, and every system call that lets the GIL
go lets one of the other task threads take it: the caller then waits for it to come back, and
the hand-over costs both threads CPU (context switches, caches gone cold). A 1 KiB file's open,
read and close take a few microseconds each in the kernel; in a flow of 100 file tasks each one
cost its thread about ten times that (``bench/profile_file_tasks.py``), and reading the files a
task hashes this way cut reproflow's CPU by 0.04-0.13 ms a task (``bench/ablate_file_tasks.py
--modes full no-held-read``, 2026-12-06). Stats held the same way (``statx`` through ``PyDLL``)
saved nothing measurable: the stat's own cost, not the hand-over, is what a stat costs there.

Holding the GIL is right only for a call that cannot wait: a thread that waits while holding it
stops every thread of the process. So :func:`read_small` reads only

* a regular file of at most :data:`HELD_MAX` bytes (its stat says so, taken by the caller);
* on a file system the kernel serves from memory or a local disk (ext2/3/4, XFS, Btrfs, tmpfs,
  overlayfs...), told by ``statfs`` once per device, with the GIL let go: never FUSE (its server
  may be a thread of this very process, waiting for the GIL), NFS, SMB or any other;
* with ``preadv2(RWF_NOWAIT)``: the kernel answers ``EAGAIN`` instead of waiting for the disk when
  the bytes are not in the page cache (and the caller reads them the usual way);

and gives ``None`` for anything else, or for any failure: the caller then reads the file with the
GIL let go, as before, and reports the error that read meets. The file is opened ``O_NONBLOCK``
too: a path replaced by a FIFO since its stat neither waits for a writer nor is read.
"""

from __future__ import annotations

import errno
import os
import stat
import sys

#: the largest file read with the GIL held: a copy out of the page cache of this many bytes takes
#: well under a thread switch interval (5 ms)
HELD_MAX = 256 << 10

#: ``statfs``'s ``f_type`` of the file systems whose reads of cached bytes never wait on anything
#: but the kernel (linux/magic.h), and whether ``RWF_NOWAIT`` is needed to keep a read from
#: waiting for a disk (tmpfs and ramfs hold every byte in memory, and older kernels refuse the
#: flag there)
_LOCAL_FS: dict[int, bool] = {
    0xEF53: True,  # ext2, ext3, ext4
    0x58465342: True,  # XFS
    0x9123683E: True,  # Btrfs
    0xF2F52010: True,  # F2FS
    0x2FC12FC1: True,  # ZFS
    0xCA451A4E: True,  # bcachefs
    0x794C7630: True,  # overlayfs (containers)
    0x01021994: False,  # tmpfs
    0x858458F6: False,  # ramfs
}

#: the size of ``statfs``'s ``f_type`` (``__fsword_t``: a long, except on s390x's 4-byte word)
_FSWORD = 4 if os.uname().machine == "s390x" else (8 if sys.maxsize > 2**32 else 4)

#: st_dev -> True (read with RWF_NOWAIT), False (a plain read cannot wait), None (never held)
_devices: dict[int, bool | None] = {}


class _Libc:
    """``open``, ``preadv2``, ``close`` through ``PyDLL`` (which keeps the GIL through the call),
    and ``statfs`` through ``CDLL`` (which lets it go: it may wait on a remote server)."""

    def __init__(self) -> None:
        import ctypes

        class IOVec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

        held = ctypes.PyDLL(None, use_errno=True)
        self.open = held.open
        self.open.argtypes, self.open.restype = [ctypes.c_char_p, ctypes.c_int], ctypes.c_int
        self.preadv2 = held.preadv2
        self.preadv2.argtypes = [ctypes.c_int, ctypes.POINTER(IOVec), ctypes.c_int, ctypes.c_longlong, ctypes.c_int]
        self.preadv2.restype = ctypes.c_ssize_t
        self.close = held.close
        self.close.argtypes, self.close.restype = [ctypes.c_int], ctypes.c_int
        self.statfs = ctypes.CDLL(None, use_errno=True).statfs
        self.statfs.argtypes, self.statfs.restype = [ctypes.c_char_p, ctypes.c_void_p], ctypes.c_int
        self.IOVec = IOVec
        self.c_char = ctypes.c_char
        self.addressof = ctypes.addressof
        self.get_errno = ctypes.get_errno
        self.string_buffer = ctypes.create_string_buffer
        self.flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
        self.nowait = os.RWF_NOWAIT


_libc: _Libc | None | bool = None  # False: not available here


def _get_libc() -> _Libc | None:
    global _libc
    if _libc is None:
        try:
            _libc = _Libc() if sys.platform.startswith("linux") and hasattr(os, "RWF_NOWAIT") else False
        except (OSError, AttributeError):  # no preadv2 (glibc < 2.26, musl before 1.1.24)
            _libc = False
    return _libc or None


def _device_mode(libc: _Libc, path: bytes, dev: int) -> bool | None:
    """Whether files on ``dev`` may be read with the GIL held (see :data:`_devices`): its file
    system's type from ``statfs`` of ``path`` (the GIL let go), remembered per device."""
    buf = libc.string_buffer(512)  # struct statfs: 120 bytes on 64-bit Linux, f_type first
    mode: bool | None = None
    if libc.statfs(path, buf) == 0:
        f_type = int.from_bytes(buf.raw[: _FSWORD], sys.byteorder, signed=False)
        mode = _LOCAL_FS.get(f_type)
    _devices[dev] = mode
    return mode


def read_small(path: str, st: os.stat_result) -> bytearray | None:
    """The bytes of the regular file ``path`` whose stat is ``st``, read with the GIL held where
    that cannot wait (see the module's notes); None where it was not read so (then read it the
    usual way). Bytes of another length than ``st_size`` (the file changed since) give None too."""
    size = st.st_size
    if size > HELD_MAX or not stat.S_ISREG(st.st_mode):
        return None
    libc = _get_libc()
    if libc is None:
        return None
    encoded = os.fsencode(path)
    mode = _devices[st.st_dev] if st.st_dev in _devices else _device_mode(libc, encoded, st.st_dev)
    if mode is None:
        return None
    fd = libc.open(encoded, libc.flags)
    if fd < 0:
        return None
    try:
        buf = bytearray(size + 1)  # one more: a file grown since its stat reads longer
        iov = libc.IOVec(libc.addressof(libc.c_char.from_buffer(buf)), size + 1)
        n = libc.preadv2(fd, iov, 1, 0, libc.nowait if mode else 0)
    finally:
        libc.close(fd)
    if n != size:
        if n < 0 and mode and libc.get_errno() == errno.EOPNOTSUPP:
            _devices[st.st_dev] = None  # this kernel refuses RWF_NOWAIT here: never held
        return None
    del buf[size:]
    return buf
