"""The shared libraries this process has loaded, who owns them, and which BLAS/LAPACK/OpenMP/CUDA.

:func:`capture_system` reads the process's own memory map (``/proc/self/maps``), keeps the ELF
files mapped there, and gives each its SONAME, SHA-256 (the stat-keyed hash cache), and origin:
the dpkg or RPM package and version that owns it, the Python distribution that ships it, or
unknown. threadpoolctl names the BLAS and OpenMP libraries in use and their versions.

:func:`generation` is the cheap "did the set of loaded libraries change" signal checked at the end
of every task: glibc's (and musl's) ``dl_iterate_phdr`` counts objects added and removed by the
dynamic linker (``dlpi_adds``/``dlpi_subs``), one call of about 1.5 µs. Reading ``/proc/self/maps``
costs about 0.8 ms with Prefect and numpy loaded, so it is read again only when the count moved.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping
from importlib.machinery import EXTENSION_SUFFIXES
from typing import Any, Optional

from ..records import SharedLibrary, SystemLibraries, ThreadpoolInfo
from .. import _forksafe

#: (permissions, path) of a mapping of a file (an inode that is not 0) in ``/proc/PID/maps``
_MAPS_LINE = re.compile(rb"^\S+ (\S+) \S+ \S+ [1-9]\d* +(/.*)$", re.M)
_SO_VERSION = re.compile(r"\.so\.(\d+(?:\.\d+)+)$")  # two parts at least: libc.so.6 says only the ABI
#: auditwheel/delocate give bundled libraries a hash suffix (libgfortran-040039e1-0352e75f.so.5)
_WHEEL_HASH = re.compile(r"(?:-[0-9a-f]{8})+(?=\.so)")
_ROLES = (
    ("blas", re.compile(r"^lib(open)?blas|^libscipy_openblas|^libmkl_(rt|core)|^libflexiblas|^libblis|^libcblas|^libarmpl")),
    ("lapack", re.compile(r"^liblapack|^libopenblas|^libscipy_openblas|^libmkl_(rt|core)|^libflexiblas|^libarmpl")),
    ("openmp", re.compile(r"^libgomp|^libiomp|^libomp\.")),
    ("cuda", re.compile(r"^libcuda\.|^libcudart|^libcublas|^libcudnn|^libcufft|^libcurand|^libcusolver|^libcusparse"
                        r"|^libnccl|^libnvrtc|^libnvidia-ml")),
)  # fmt: skip
_EXT_SUFFIXES = tuple(s for s in EXTENSION_SUFFIXES if s != ".so")

_lock = _forksafe.lock()
_last: tuple[Any, frozenset[str], SystemLibraries] | None = None  # (generation, paths, result)


# ----------------------------------------------------------------------------- change signal
class _Loader:
    """``dl_iterate_phdr`` through ctypes, stopped at the first object: (adds, subs).

    The loader calls its callback while it holds its own lock, the one ``dlopen`` takes to add
    an object. So the callback runs no Python code: a Python function would let another thread
    take the GIL where its bytecode checks for a switch request (at its first instruction), and
    a thread that holds the GIL and imports an extension module (``dlopen``) would then wait for
    that lock while the callback waits for the GIL, both for ever: a flow whose task ended while
    another task imported pandas for the first time would hang (``tests/test_task_path.py``
    shows it within seconds with a short switch interval). The callback is
    ``functools.partial(memmove, buffer)``: C code alone, with ``memmove`` called through
    ``PYFUNCTYPE`` (which keeps the GIL, as ``PyDLL`` does for ``dl_iterate_phdr``: a call that
    let it go would have to take it back inside the loader's lock). It copies the object's
    ``struct dl_phdr_info`` (``size`` bytes, 64 with glibc) into the buffer; its return value (the
    buffer's address) stops the walk, and where its low 32 bits are 0 the walk goes on, copying
    each object's info over the last: the counters are the same in every one. The lock keeps the
    buffer to one caller at a time.
    """

    #: bytes for the loader's ``struct dl_phdr_info``: far more than any libc's (64 with glibc)
    BUFFER = 4096

    def __init__(self) -> None:
        import ctypes
        import functools

        class Info(ctypes.Structure):
            _fields_ = [("addr", ctypes.c_void_p), ("name", ctypes.c_char_p), ("phdr", ctypes.c_void_p),
                        ("phnum", ctypes.c_uint16), ("adds", ctypes.c_ulonglong), ("subs", ctypes.c_ulonglong)]  # fmt: skip

        callback_t = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
        memmove = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)(
            ctypes.cast(ctypes.memmove, ctypes.c_void_p).value)
        # A libc whose struct ends before the counters leaves their bytes as filled here: no
        # counters then (checked once, below)
        self.buffer = (ctypes.c_char * self.BUFFER).from_buffer(bytearray(b"\xff" * self.BUFFER))
        self.info = Info.from_buffer(self.buffer)
        # called as memmove(buffer, info, size, data): the callback's data (NULL here) goes on as
        # a fourth argument, which memmove never reads (the caller cleans up its arguments)
        self.callback = callback_t(functools.partial(memmove, ctypes.addressof(self.buffer)))
        self.fn = ctypes.PyDLL(None).dl_iterate_phdr
        self.fn.argtypes = [callback_t, ctypes.c_void_p]
        self.fn.restype = ctypes.c_int
        self.lock = _forksafe.lock()
        counters = slice(Info.adds.offset, Info.subs.offset + ctypes.sizeof(ctypes.c_ulonglong))
        self()
        if self.buffer.raw[counters] == b"\xff" * (counters.stop - counters.start):
            raise OSError("dl_iterate_phdr gives no adds/subs counters here")

    def __call__(self) -> tuple[int, int]:
        with self.lock:  # one caller of the buffer at a time
            self.fn(self.callback, None)  # (its value: the buffer's address, cut to an int)
            info = self.info
            return int(info.adds), int(info.subs)


_loader: _Loader | None | bool = None  # False: not available here


def generation() -> object | None:
    """A value that changes whenever the process loads or unloads a shared object; None where
    there is no way to tell (then :func:`changed` reads the memory map itself)."""
    global _loader
    if _loader is None:
        try:
            _loader = _Loader() if sys.platform.startswith("linux") else False
        except (OSError, AttributeError):
            _loader = False
    if _loader is False:
        return None
    return _loader()  # type: ignore[operator]


def mapped_files(maps_path: str = "/proc/self/maps", *, executable: bool = True) -> frozenset[str] | None:
    """Paths of the files mapped into this process to run (a program or a shared library maps
    its code executable; ``executable=False``: every mapped file); None when the map cannot be
    read.

    Only those are opened by the capture: the others are data, and some must not be opened at
    all. sqlite maps its WAL index (``X.db-shm``) and holds a POSIX lock on it while a
    connection is open, and POSIX drops every lock a process holds on a file when any descriptor
    of that file in the process closes: the capture reading it as a candidate library freed the
    lock, and the next process to open the database truncated the index under this one's mapping
    (a flow killed by SIGBUS, the hash cache's database shared with other processes)."""
    try:
        with open(maps_path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return frozenset(p.decode("utf-8", "surrogateescape") for perms, p in _MAPS_LINE.findall(data)
                     if (not executable or b"x" in perms) and not p.endswith(b" (deleted)"))  # fmt: skip


# ----------------------------------------------------------------------------- capture
def current(*, force: bool = False, pools: list[ThreadpoolInfo] | None = None) -> tuple[object, SystemLibraries]:
    """This process's libraries now, as ``(generation, SystemLibraries)``; captured again only
    when the loaded set changed since the last call (or with ``force``). ``pools``:
    threadpoolctl's view when the caller just asked it (the hardware capture does)."""
    global _last
    # What the capture itself imports loads shared libraries (the hash cache's sqlite3, the ELF
    # reader): load them before the map is read, or every process's first task would find them
    # new and capture again.
    from . import _files, _ospkg  # noqa: F401
    with _lock:
        gen = generation()
        if _last is not None and not force and gen is not None and gen == _last[0]:
            return _last[0], _last[2]
        paths = mapped_files()
        if _last is not None and not force and paths is not None and paths == _last[1]:
            _last = (gen, _last[1], _last[2])
            return gen, _last[2]
        if pools is None and _last is not None and paths is not None and not any(
                roles(os.path.basename(p)) for p in paths.symmetric_difference(_last[1])):
            pools = _last[2].threadpools  # no BLAS/OpenMP library came or went: threadpoolctl would say the same
        result = capture_system(paths=paths, pools=pools)
        _last = (gen, paths or frozenset(), result)
        return gen, result


def forget() -> None:
    """Drop the remembered capture (tests; a forked child)."""
    global _last
    with _lock:
        _last = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: globals().update(_last=None, _loader=None))


def capture_system(
    *,
    paths: Iterable[str] | None = None,
    pools: list[ThreadpoolInfo] | None = None,
    dpkg_root: str = "/var/lib/dpkg",
    rpm: Any = None,
    python_dirs: Mapping[str, Iterable[str]] | None = None,
) -> SystemLibraries:
    """The ELF files among ``paths`` (default: this process's memory map), with their owners.

    Args:
        paths: mapped file paths; None reads ``/proc/self/maps``.
        pools: threadpoolctl's view (default: asked now; it lists loaded libraries only).
        dpkg_root: dpkg's database folder.
        rpm: a runner for ``rpm`` arguments (see :func:`._ospkg.rpm_owners`); None uses the
            real ``rpm`` where it is installed.
        python_dirs: ``{"site": [...], "interpreter": [...], "libpython": [...]}``: folders whose
            files count as the Python environment's (default: this interpreter's site-packages,
            standard library and executable's folder, and the folder of its libpython).
    """
    from ._files import sha256_file
    from ._ospkg import dpkg_owners, elf_facts, rpm_owners

    if paths is None:
        paths = mapped_files()
        if paths is None:
            return SystemLibraries(absent_reason="no /proc/self/maps on this system")
    if pools is None:
        from .hardware import threadpools

        pools = threadpools()
    hashed: list[tuple[str, str, int]] = []
    for path in sorted(set(paths)):
        try:
            with open(path, "rb") as fh:
                if fh.read(4) != b"\x7fELF":
                    continue
            digest, size = sha256_file(path)
        except OSError:
            continue
        hashed.append((path, digest, size))
    facts = elf_facts((p, d) for p, d, _ in hashed)
    names = [p for p, _, _ in hashed]
    owners = dpkg_owners(names, dpkg_root)
    manager = "dpkg" if owners is not None else None
    origin_os = "dpkg"
    if owners is None:
        owners = rpm_owners(names, rpm)
        manager, origin_os = ("rpm", "rpm") if owners is not None else (None, "unknown")
    owners = owners or {}
    by_file = {os.path.realpath(p.filepath): p for p in pools if p.filepath}
    dirs = python_dirs if python_dirs is not None else _python_dirs()
    site = [os.path.join(d, "") for d in dirs.get("site", ())]
    interp = [os.path.join(d, "") for d in dirs.get("interpreter", ())]
    libpython = {os.path.join(d, "") for d in dirs.get("libpython", ())}
    executable = os.path.realpath(sys.executable)
    libs: list[SharedLibrary] = []
    for path, digest, size in hashed:
        soname, etype = facts.get(digest, (None, None))
        base = os.path.basename(path)
        lib = SharedLibrary(path=path, soname=soname, sha256=digest, size=size)
        if path == executable or (etype == "ET_EXEC"):
            lib.kind = "executable"
        elif base.endswith(_EXT_SUFFIXES):
            lib.kind = "extension"
        pool = by_file.get(path)
        lib.version = pool.version if pool is not None and pool.version else None
        lib.roles = roles(base, pool)
        owner = owners.get(path)
        if owner is not None:  # the package's version says it better than a file name's ABI number
            lib.origin, (lib.package, lib.package_version, lib.package_arch) = origin_os, owner  # type: ignore[assignment]
        elif any(path.startswith(s) for s in site):
            lib.origin = "python"
            dist = _distribution(path, site)
            if dist is not None:
                lib.package, lib.package_version = dist
        elif (any(path.startswith(s) for s in interp) or path == executable
              or (base.startswith("libpython") and os.path.join(os.path.dirname(path), "") in libpython)):
            lib.origin = "python"
            lib.package = "python"
            lib.package_version = "%d.%d.%d" % sys.version_info[:3]
        if owner is None:
            lib.version = lib.version or _file_version(base)
        libs.append(lib)
    return SystemLibraries(libraries=libs, threadpools=pools, package_manager=manager)


def roles(basename: str, pool: ThreadpoolInfo | None = None) -> list[str]:
    """What a library provides among BLAS, LAPACK, OpenMP and CUDA (threadpoolctl's word first)."""
    out = []
    if pool is not None and pool.user_api in ("blas", "openmp"):
        out.append(pool.user_api)
    for role, pattern in _ROLES:
        if role not in out and pattern.search(basename):
            out.append(role)
    return out


def _file_version(basename: str) -> Optional[str]:
    m = _SO_VERSION.search(basename)
    return m.group(1) if m else None


_dirs_memo: dict[str, list[str]] = {}


def _python_dirs() -> dict[str, list[str]]:
    if not _dirs_memo:
        _dirs_memo.update(_find_python_dirs())
    return _dirs_memo


def _find_python_dirs() -> dict[str, list[str]]:
    import site
    import sysconfig

    sites = {sysconfig.get_paths().get(k) for k in ("purelib", "platlib")}
    try:
        sites |= set(site.getsitepackages())
    except AttributeError:  # pragma: no cover - virtualenv's old site.py
        pass
    sites |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    stdlib = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib")}
    libdir = sysconfig.get_config_var("LIBDIR")
    interp = {*stdlib, os.path.dirname(os.path.realpath(sys.executable))}
    return {"site": sorted({os.path.realpath(s) for s in sites if s}),
            "interpreter": sorted({os.path.realpath(s) for s in interp if s}),
            "libpython": [os.path.realpath(libdir)] if isinstance(libdir, str) else []}  # fmt: skip


_dists: dict[str, dict[str, tuple[str, str]]] = {}


def _distribution(path: str, sites: list[str]) -> tuple[str, str] | None:
    """(name, version) of the distribution a file under site-packages belongs to, by its top
    folder (``numpy.libs/`` and ``numpy/`` are numpy's), where a dist-info of that name exists."""
    for s in sites:
        if not path.startswith(s):
            continue
        top = path[len(s):].split("/", 1)[0]
        if top.endswith(".libs"):
            top = top[: -len(".libs")]
        found = _dists.get(s)
        if found is None:
            found = {}
            try:
                for entry in os.listdir(s):
                    if entry.endswith(".dist-info"):
                        name, _, version = entry[: -len(".dist-info")].partition("-")
                        found[_canonical(name)] = (name, version)
            except OSError:
                pass
            _dists[s] = found
        return found.get(_canonical(top.split(".", 1)[0]))
    return None


def _canonical(name: str) -> str:
    """PEP 503's normalized name (packaging's canonicalize_name, without importing packaging)."""
    return re.sub(r"[-_.]+", "-", name).lower()


# ----------------------------------------------------------------------------- reading records
def library_key(lib: SharedLibrary) -> str:
    """What identifies a library across machines and environments: its SONAME (else file name),
    with a wheel's hash suffix removed."""
    return _WHEEL_HASH.sub("", lib.soname or os.path.basename(lib.path))


def merge(parts: Iterable[SystemLibraries]) -> SystemLibraries | None:
    """One view of several captures (a run's processes and tasks): every library seen, by path."""
    parts = list(parts)
    if not parts:
        return None
    libs: dict[str, SharedLibrary] = {}
    pools: dict[tuple[Any, ...], ThreadpoolInfo] = {}
    for p in parts:
        for lib in p.libraries:
            libs[lib.path] = lib
        for t in p.threadpools:
            pools[(t.user_api, t.internal_api, t.version, t.filepath)] = t
    first = parts[0]
    reason = first.absent_reason if all(p.absent_reason for p in parts) else None
    return SystemLibraries(source=first.source, absent_reason=reason,
                           package_manager=next((p.package_manager for p in parts if p.package_manager), None),
                           libraries=sorted(libs.values(), key=lambda x: x.path), threadpools=list(pools.values()))  # fmt: skip


def run_libraries(store: Any, run: Any) -> SystemLibraries | None:
    """Every library a run's processes had loaded at its start and at the end of each task (the
    contexts its records point at), merged; None for a run recorded before schema 1.3.

    ``store`` is a :class:`reproflow.store.Store` (blobs are verified against their names and
    validated as records); a context or blob that cannot be read is left out.
    """
    from ..errors import ReproflowError
    from ..records import ProcessContext

    contexts: dict[str, ProcessContext] = {}
    if run.context is not None:
        contexts[run.record.context] = run.context
    for t in run.final_tasks():
        if t.context and t.context not in contexts:
            try:
                contexts[t.context] = store.get_model_blob(t.context, ProcessContext)
            except ReproflowError:
                continue
    parts = []
    for blob in dict.fromkeys(c.system_blob for c in contexts.values() if c.system_blob):
        try:
            parts.append(store.get_model_blob(blob, SystemLibraries))
        except ReproflowError:
            continue
    return merge(parts)


def _describe_version(lib: SharedLibrary) -> str:
    return lib.version or lib.package_version or (lib.sha256 or "")[:12]


def drift(a: SystemLibraries | None, b: SystemLibraries | None) -> list[tuple[str, Optional[str], Optional[str], str]]:
    """Libraries that differ between two captures: ``(name, was, now, words)``, e.g.
    ``("libopenblas.so.0", "0.3.21", "0.3.27", "0.3.21 -> 0.3.27 (libopenblas0-pthread)")``.

    A library loaded by one run only is listed when it is a BLAS, LAPACK, OpenMP or CUDA library
    (which one a process loads depends on what it imported, so others would be noise). Python
    extension modules are left out (their distributions' versions say it), and so is the
    interpreter's own executable, compared as the Python version.
    """
    if a is None or b is None or a.absent_reason or b.absent_reason:
        return []

    def keyed(s: SystemLibraries) -> dict[str, SharedLibrary]:
        return {library_key(x): x for x in s.libraries if x.kind == "library"}

    ka, kb = keyed(a), keyed(b)
    out: list[tuple[str, Optional[str], Optional[str], str]] = []
    for key in sorted(ka.keys() | kb.keys()):
        x, y = ka.get(key), kb.get(key)
        if x is None and y is not None and y.roles:
            out.append((key, None, _describe_version(y), f"added {_describe_version(y)}{_owner(y)}"))
        elif y is None and x is not None and x.roles:
            out.append((key, _describe_version(x), None, f"removed (was {_describe_version(x)}{_owner(x)})"))
        elif x is not None and y is not None and (x.sha256 != y.sha256 or x.package_version != y.package_version):
            va, vb = _describe_version(x), _describe_version(y)
            if va == vb and x.package_version != y.package_version:  # another release of its package
                va, vb = x.package_version or "none", y.package_version or "none"
            elif va == vb:  # same versions, other bytes (a local rebuild, a file replaced by hand)
                va, vb = f"{va} sha256:{(x.sha256 or '')[:12]}", f"{vb} sha256:{(y.sha256 or '')[:12]}"
            pkg = y.package or x.package
            if x.package and y.package and x.package != y.package:
                pkg = f"{x.package} -> {y.package}"
            out.append((key, va, vb, f"{va} -> {vb}" + (f" ({pkg})" if pkg else "")))
    return out


def _owner(lib: SharedLibrary) -> str:
    if not lib.package:
        return ""
    shown = _describe_version(lib)
    return f" ({lib.package})" if shown == lib.package_version else f" ({lib.package} {lib.package_version})"

__all__ = ["capture_system", "current", "drift", "forget", "generation", "library_key", "mapped_files", "merge", "roles",
           "run_libraries"]
