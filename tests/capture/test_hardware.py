"""capture_hardware: CPU (fast paths + cache), memory, disks, GPUs (real and fake NVML), thread pools."""

from __future__ import annotations

import ctypes
import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Any

import psutil
import pytest

from reproflow.capture.hardware import (
    capture_hardware,
    cpu_cache_path,
    cpu_info,
    numeric_flags,
    refresh_cpu_cache,
)


def _has_nvml() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


HAS_NVML = _has_nvml()


class FakeNVML:
    """A small NVML-shaped object: two GPUs, the second one hiding its UUID."""

    class NVMLError(Exception):
        pass

    class _Mem:
        total = 80 * 1024**3

    def __init__(self, *, init_error: bool = False, count: int = 2) -> None:
        self.init_error = init_error
        self.count = count
        self.shutdown_called = False

    def nvmlInit(self) -> None:
        if self.init_error:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        self.shutdown_called = True

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"550.54.15"

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return 12040

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> str:
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetUUID(self, h: int) -> str:
        if h == 1:
            raise self.NVMLError("Not Supported")
        return f"GPU-0000-{h}"

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return self._Mem()

    def nvmlDeviceGetCudaComputeCapability(self, h: int) -> tuple[int, int]:
        return (9, 0)


def test_fake_nvml_gpu_present(tmp_path: pathlib.Path) -> None:
    """With an NVML that reports GPUs: name, uuid, memory, compute capability, driver and CUDA versions."""
    nvml = FakeNVML()
    hw = capture_hardware(nvml=nvml, cpu_cache_dir=tmp_path, refresh_cpu_cache=False)
    assert hw.gpu_absent_reason is None
    assert (hw.gpu_driver, hw.cuda_driver_version) == ("550.54.15", "12.4")
    assert [g.index for g in hw.gpus] == [0, 1]
    first, second = hw.gpus
    assert (first.name, first.uuid, first.memory_total_bytes, first.compute_capability) == (
        "NVIDIA H100 80GB HBM3", "GPU-0000-0", 80 * 1024**3, "9.0")
    assert second.uuid is None and second.name == "NVIDIA H100 80GB HBM3"  # one failing field is not fatal
    assert nvml.shutdown_called


def test_fake_nvml_failures_are_reasons_not_errors(tmp_path: pathlib.Path) -> None:
    """NVML that cannot initialise, or finds no device: gpus=[] and a reason."""
    hw = capture_hardware(nvml=FakeNVML(init_error=True), cpu_cache_dir=tmp_path, refresh_cpu_cache=False)
    assert hw.gpus == [] and hw.gpu_absent_reason is not None and "Driver Not Loaded" in hw.gpu_absent_reason
    hw = capture_hardware(nvml=FakeNVML(count=0), cpu_cache_dir=tmp_path, refresh_cpu_cache=False)
    assert hw.gpus == [] and hw.gpu_absent_reason == "NVML found no GPU"


@pytest.mark.skipif(HAS_NVML, reason="this machine has an NVIDIA driver")
def test_real_pynvml_without_gpu(tmp_path: pathlib.Path) -> None:
    """The real pynvml on a machine without the NVIDIA library: a reason naming LibraryNotFound."""
    import pynvml

    hw = capture_hardware(nvml=pynvml, cpu_cache_dir=tmp_path, refresh_cpu_cache=False)
    assert hw.gpus == []
    assert hw.gpu_absent_reason is not None and "LibraryNotFound" in hw.gpu_absent_reason


def test_default_gpu_path(tmp_path: pathlib.Path) -> None:
    """Default NVML: without the library the probe answers (no error); with it, GPUs or a reason."""
    hw = capture_hardware(cpu_cache_dir=tmp_path, refresh_cpu_cache=False)
    if HAS_NVML:
        assert hw.gpus or hw.gpu_absent_reason
    else:
        assert hw.gpus == [] and hw.gpu_absent_reason is not None and "libnvidia-ml" in hw.gpu_absent_reason


def test_memory_disks_cores(tmp_path: pathlib.Path) -> None:
    """Memory, physical/logical cores and mounted disks come from psutil."""
    hw = capture_hardware(nvml=FakeNVML(count=0), cpu_cache_dir=tmp_path, refresh_cpu_cache=False)
    assert hw.memory_total_bytes == psutil.virtual_memory().total
    assert hw.cpu.logical_cores == os.cpu_count()
    assert hw.cpu.physical_cores == psutil.cpu_count(logical=False)
    mounts = {p.mountpoint for p in psutil.disk_partitions(all=False)}
    assert {d.mountpoint for d in hw.disks} == mounts
    assert all(d.total_bytes is None or d.total_bytes > 0 for d in hw.disks)


def test_numeric_flags_filter() -> None:
    """Only numerics flags are kept: vector units, FMA, half/bfloat types; not security or misc flags."""
    flags = ["fpu", "sse", "sse4_2", "avx", "avx2", "avx512f", "avx512_bf16", "avx_vnni", "fma", "f16c",
             "amx_tile", "smep", "aes", "ht", "neon", "asimd", "sve2", "sme", "bmi2"]
    assert numeric_flags(flags) == sorted(["sse", "sse4_2", "avx", "avx2", "avx512f", "avx512_bf16", "avx_vnni",
                                           "fma", "f16c", "amx_tile", "neon", "asimd", "sve2", "sme"])


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="Linux only")
def test_proc_cpuinfo_agrees_with_py_cpuinfo_fast_reader(tmp_path: pathlib.Path) -> None:
    """On a cache miss the CPU comes from /proc/cpuinfo, with the same flags py-cpuinfo reads there."""
    from cpuinfo import cpuinfo as _cpuinfo

    info = cpu_info(cache_dir=tmp_path, refresh=False)
    assert info.source == "/proc/cpuinfo"
    reference = _cpuinfo._get_cpu_info_from_proc_cpuinfo()
    assert info.flags == numeric_flags(reference.get("flags", []))
    if reference.get("brand_raw"):
        assert info.model == reference["brand_raw"]
    assert not os.listdir(tmp_path)  # refresh=False writes nothing


@pytest.mark.slow
def test_cpu_cache_filled_in_background_then_used(tmp_path: pathlib.Path) -> None:
    """A miss starts the full py-cpuinfo in the background; the next capture reads its cache."""
    first = cpu_info(cache_dir=tmp_path, refresh=True)
    assert first.source in ("/proc/cpuinfo", "platform")
    path = pathlib.Path(cpu_cache_path(tmp_path))
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.exists(), "background refresh never wrote the cache"
    second = cpu_info(cache_dir=tmp_path, refresh=True)
    assert second.source == "py-cpuinfo (cached)"
    assert second.flags == numeric_flags(json.loads(path.read_text())["info"]["flags"])
    assert second.model and not pathlib.Path(str(path) + ".lock").exists()


def test_synchronous_refresh_and_corrupt_cache(tmp_path: pathlib.Path) -> None:
    """refresh_cpu_cache runs py-cpuinfo in full; a corrupt cache file is ignored, not fatal."""
    path = pathlib.Path(refresh_cpu_cache(tmp_path))
    assert cpu_info(cache_dir=tmp_path, refresh=False).source == "py-cpuinfo (cached)"
    path.write_text("{not json")
    assert cpu_info(cache_dir=tmp_path, refresh=False).source in ("/proc/cpuinfo", "platform")


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return out.stdout.strip()


def test_capture_imports_no_numerics_library(tmp_path: pathlib.Path) -> None:
    """capture_hardware never imports numpy, nor pynvml when the NVIDIA library is absent."""
    out = _run(
        "import sys\n"
        "from reproflow.capture.hardware import capture_hardware\n"
        f"capture_hardware(cpu_cache_dir={str(tmp_path)!r}, refresh_cpu_cache=False)\n"
        "print('numpy' in sys.modules, 'pynvml' in sys.modules)\n"
    )
    assert out == f"False {HAS_NVML}"


def test_threadpools_lists_loaded_blas(tmp_path: pathlib.Path) -> None:
    """BLAS shows up once numpy is loaded by the user's code, and not before."""
    out = _run(
        "import json\n"
        "from reproflow.capture.hardware import threadpools\n"
        "before = [t.internal_api for t in threadpools()]\n"
        "import numpy\n"
        "after = [t.model_dump() for t in threadpools()]\n"
        "print(json.dumps([before, after]))\n"
    )
    before, after = json.loads(out)
    assert before == []
    assert any(t["user_api"] == "blas" and t["num_threads"] for t in after)
