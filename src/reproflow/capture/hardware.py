"""Capture the hardware a process runs on: CPU, memory, disks, GPUs, BLAS/OpenMP thread pools.

Kept off the hot path, on purpose:

* ``cpuinfo.get_cpu_info()`` takes about a second (it starts a Python subprocess that sleeps to
  time the clock). Capture reads a per-machine cache file instead, keyed by the boot id, and on a
  miss reads ``/proc/cpuinfo`` directly (microseconds) and fills the cache in the background
  (:func:`refresh_cpu_cache`). :attr:`CPUInfo.source` says which one answered.
* ``pynvml`` is imported only when ``libnvidia-ml.so.1`` can be loaded at all; without it the
  record says so in :attr:`Hardware.gpu_absent_reason`. No GPU is a normal case, never an error.
* ``threadpoolctl`` only lists BLAS/OpenMP libraries already loaded: capture never imports
  numpy or any other library to find one.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from ..store._liveness import machine_key
from ..records import CPUInfo, DiskInfo, GPUInfo, Hardware, ThreadpoolInfo
from .. import _forksafe

#: CPU flags that change numerical results or speed (vector units, FMA, half/bfloat types).
_NUMERIC_FLAG = re.compile(
    r"^(sse\w*|ssse3|avx\w*|fma\w*|f16c|amx\w*|neon|asimd\w*|sve\w*|sme(?:\d\w*|[if]\w*|_\w+)?|fphp|fp16|bf16|i8mm|"
    r"vsx|altivec|vfp\w*|vnni\w*|avx_vnni\w*)$"
)
_MAX_DISKS = 64
#: How long a refresh lock is honoured before another process may retry.
_LOCK_STALE_S = 120.0


def capture_hardware(
    *,
    nvml: Any = None,
    cpu_cache_dir: str | os.PathLike[str] | None = None,
    refresh_cpu_cache: bool = True,
) -> Hardware:
    """CPU, memory, disks, GPUs and BLAS/OpenMP thread pools of this machine.

    Args:
        nvml: an NVML binding shaped like ``pynvml`` (``nvmlInit``, ``nvmlDeviceGetCount``, ...,
            and an ``NVMLError`` exception class). None uses the real ``pynvml``, imported only
            when the NVML library exists on this machine.
        cpu_cache_dir: folder of the per-machine py-cpuinfo cache (default
            ``$XDG_CACHE_HOME/reproflow`` or ``~/.cache/reproflow``).
        refresh_cpu_cache: on a cache miss, start filling the cache in the background.
    """
    cpu = cpu_info(cache_dir=cpu_cache_dir, refresh=refresh_cpu_cache)
    memory, disks = _memory_and_disks()
    if cpu.physical_cores is None:
        cpu.physical_cores = _physical_cores()
    hw = Hardware(cpu=cpu, memory_total_bytes=memory, disks=disks, threadpools=threadpools())
    _add_gpus(hw, nvml)
    return hw


# --------------------------------------------------------------------------------------------
# CPU
# --------------------------------------------------------------------------------------------


def numeric_flags(flags: Any) -> list[str]:
    """The numerics-relevant subset of CPU flags, sorted and de-duplicated."""
    return sorted({str(f).lower() for f in flags or () if _NUMERIC_FLAG.match(str(f).lower())})


def default_cache_dir(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CACHE_HOME/reproflow``, else ``~/.cache/reproflow``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "reproflow")


def cpu_cache_path(cache_dir: str | os.PathLike[str] | None = None) -> str:
    """Where the py-cpuinfo result for this machine and boot is cached."""
    folder = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
    return os.path.join(folder, f"cpuinfo-{machine_key()}.json")


def cpu_info(cache_dir: str | os.PathLike[str] | None = None, refresh: bool = True) -> CPUInfo:
    """The CPU, from the py-cpuinfo cache when present, else ``/proc/cpuinfo`` (fast paths only)."""
    path = cpu_cache_path(cache_dir)
    cached = _read_cache(path)
    if cached is not None:
        return cached
    if refresh:
        _start_refresh(path)
    return _proc_cpuinfo() or CPUInfo(
        model=platform.processor() or None,
        arch=platform.machine() or None,
        logical_cores=os.cpu_count(),
        source="platform",
    )


def _from_cpuinfo_dict(info: Mapping[str, Any], source: str) -> CPUInfo:
    count = info.get("count")
    return CPUInfo(
        model=info.get("brand_raw") or None,
        vendor=info.get("vendor_id_raw") or None,
        arch=info.get("arch_string_raw") or info.get("arch") or None,
        logical_cores=count if isinstance(count, int) else os.cpu_count(),
        flags=numeric_flags(info.get("flags")),
        source=source,
    )


def _read_cache(path: str) -> CPUInfo | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    info = data.get("info") if isinstance(data, dict) else None
    if not isinstance(info, dict) or not info.get("flags"):
        return None
    return _from_cpuinfo_dict(info, "py-cpuinfo (cached)")


def _proc_cpuinfo(path: str = "/proc/cpuinfo") -> CPUInfo | None:
    """First processor block of ``/proc/cpuinfo`` (Linux; x86 and ARM field names)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(1 << 16)
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        if not line.strip():
            if fields.get("flags") or fields.get("features"):
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    if not fields:
        return None
    model = fields.get("model name") or fields.get("hardware") or fields.get("cpu model") or fields.get("processor")
    if model is not None and model.isdigit():
        model = None  # "processor : 0" on x86 is an index, not a name
    return CPUInfo(
        model=model,
        vendor=fields.get("vendor_id") or fields.get("cpu implementer"),
        arch=platform.machine() or None,
        logical_cores=os.cpu_count(),
        flags=numeric_flags((fields.get("flags") or fields.get("features") or "").split()),
        source="/proc/cpuinfo",
    )


#: Run in a separate interpreter: the full, slow py-cpuinfo, written atomically to the cache.
_REFRESH_SCRIPT = """
import json, os, sys
path = sys.argv[1]
lock = path + ".lock"
try:
    import cpuinfo
    info = cpuinfo.get_cpu_info()
    if info:
        tmp = "%s.tmp-%d" % (path, os.getpid())
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"machine": os.path.basename(path), "info": info}, fh)
        os.replace(tmp, path)
finally:
    try:
        os.unlink(lock)
    except OSError:
        pass
"""


def refresh_cpu_cache(cache_dir: str | os.PathLike[str] | None = None, timeout: float = 60.0) -> str:
    """Run the full ``cpuinfo.get_cpu_info()`` now (about 1 s) and cache it; returns the path."""
    path = cpu_cache_path(cache_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if sys.executable:
        subprocess.run(
            [sys.executable, "-c", _REFRESH_SCRIPT, path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    return path


_refresh_started: set[str] = set()
_refresh_lock = _forksafe.lock()


def _start_refresh(path: str) -> None:
    """Fill the cache in a separate interpreter, started from a daemon thread (once per path).

    The child writes the file itself, so it completes even when this process exits first; a lock
    file keeps concurrent processes on the same machine from all starting one.
    """
    with _refresh_lock:
        if path in _refresh_started or not sys.executable:
            return
        _refresh_started.add(path)

    def run() -> None:
        lock = path + ".lock"
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if time.time() - os.path.getmtime(lock) < _LOCK_STALE_S:
                    return  # another process is on it
                os.unlink(lock)
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            os.close(fd)
            proc = subprocess.Popen(
                [sys.executable, "-c", _REFRESH_SCRIPT, path],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            proc.wait()
        except OSError:
            return  # a read-only home or a vanished lock: the fast path keeps working

    threading.Thread(target=run, name="reproflow-cpuinfo-cache", daemon=True).start()


def _physical_cores() -> int | None:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return None
    cores: int | None = psutil.cpu_count(logical=False)
    return cores


# --------------------------------------------------------------------------------------------
# Memory and disks
# --------------------------------------------------------------------------------------------


def _memory_and_disks() -> tuple[int | None, list[DiskInfo]]:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return None, []
    memory = int(psutil.virtual_memory().total)
    disks: list[DiskInfo] = []
    seen: set[str] = set()
    # all=False: physical devices only, so a hung network mount is never stat'ed
    for part in psutil.disk_partitions(all=False):
        if part.mountpoint in seen or len(disks) >= _MAX_DISKS:
            continue
        seen.add(part.mountpoint)
        try:
            total: int | None = int(psutil.disk_usage(part.mountpoint).total)
        except OSError:
            total = None
        disks.append(DiskInfo(mountpoint=part.mountpoint, fstype=part.fstype or None, total_bytes=total))
    return memory, disks


# --------------------------------------------------------------------------------------------
# BLAS / OpenMP
# --------------------------------------------------------------------------------------------


def threadpools() -> list[ThreadpoolInfo]:
    """BLAS/OpenMP libraries already loaded in this process (threadpoolctl; imports nothing)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return []
    out = []
    for info in threadpool_info():
        out.append(
            ThreadpoolInfo(
                user_api=str(info.get("user_api")),
                internal_api=str(info.get("internal_api")),
                version=info.get("version"),
                num_threads=info.get("num_threads"),
                filepath=info.get("filepath"),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# GPUs
# --------------------------------------------------------------------------------------------


def _load_nvml() -> tuple[Any, str | None]:
    """The real pynvml, or None and why not. Probes the shared library before importing pynvml."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libnvidia-ml.so.1")
        except OSError:
            return None, "NVML library not found (libnvidia-ml.so.1): no NVIDIA driver on this machine"
    try:
        import pynvml
    except ImportError:
        return None, "nvidia-ml-py (pynvml) is not installed"
    return pynvml, None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _add_gpus(hw: Hardware, nvml: Any) -> None:
    if nvml is None:
        nvml, reason = _load_nvml()
        if nvml is None:
            hw.gpu_absent_reason = reason
            return
    error: type[BaseException] = getattr(nvml, "NVMLError", OSError)
    try:
        nvml.nvmlInit()
    except error as exc:
        hw.gpu_absent_reason = f"NVML unavailable: {type(exc).__name__}: {exc}"
        return
    try:
        try:
            hw.gpu_driver = _text(nvml.nvmlSystemGetDriverVersion())
        except error:
            pass
        try:
            getter = getattr(nvml, "nvmlSystemGetCudaDriverVersion_v2", None) or nvml.nvmlSystemGetCudaDriverVersion
            cuda = int(getter())
            hw.cuda_driver_version = f"{cuda // 1000}.{(cuda % 1000) // 10}"
        except error:
            pass
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except error as exc:
            hw.gpu_absent_reason = f"NVML could not count devices: {exc}"
            return
        for index in range(count):
            hw.gpus.append(_gpu(nvml, error, index))
        if not hw.gpus:
            hw.gpu_absent_reason = "NVML found no GPU"
    finally:
        try:
            nvml.nvmlShutdown()
        except error:
            pass


def _gpu(nvml: Any, error: type[BaseException], index: int) -> GPUInfo:
    gpu = GPUInfo(index=index, name="unknown")
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except error:
        return gpu
    try:
        gpu.name = _text(nvml.nvmlDeviceGetName(handle))
    except error:
        pass
    try:
        gpu.uuid = _text(nvml.nvmlDeviceGetUUID(handle))
    except error:
        pass
    try:
        gpu.memory_total_bytes = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
    except error:
        pass
    try:
        major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
        gpu.compute_capability = f"{major}.{minor}"
    except error:
        pass
    return gpu


__all__ = [
    "capture_hardware",
    "cpu_cache_path",
    "cpu_info",
    "default_cache_dir",
    "machine_key",
    "numeric_flags",
    "refresh_cpu_cache",
    "threadpools",
]
