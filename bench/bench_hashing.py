"""File hashing against hashlib in the same run, and the cost of re-hashing an unchanged file.

    python bench/bench_hashing.py [--size-mib 1024]

Baseline: hashlib.sha256 over the same file in 1 MiB reads (target: reproflow >= 90% of it).
Re-hash: a second sha256_file on the unchanged file (target: <= 1% of the first hash).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time


def hashlib_baseline(path: str) -> tuple[str, float]:
    t0 = time.perf_counter()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest(), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-hash-")
    os.environ["REPROFLOW_CACHE_DIR"] = os.path.join(tmp, "cache")
    from reproflow.capture import _files as _hashing

    path = os.path.join(tmp, "big.bin")
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        for _ in range(args.size_mib):
            fh.write(block)
    old = time.time() - 60
    os.utime(path, (old, old))  # not "racily clean": the cache may keep it
    size = os.path.getsize(path)
    hashlib_baseline(path)  # warm the page cache for both
    base_digest, base_t = min((hashlib_baseline(path) for _ in range(3)), key=lambda r: r[1])
    ours_t = []
    for i in range(3):
        _hashing.clear_memory_cache()
        os.environ["REPROFLOW_CACHE_DIR"] = os.path.join(tmp, f"cache-{i}")  # a cold cache each time
        t0 = time.perf_counter()
        digest, _ = _hashing.sha256_file(path, progress=False)
        ours_t.append(time.perf_counter() - t0)
        assert digest == base_digest
    first = min(ours_t)
    t0 = time.perf_counter()
    _hashing.sha256_file(path)
    again_mem = time.perf_counter() - t0
    _hashing.clear_memory_cache()
    t0 = time.perf_counter()
    _hashing.sha256_file(path)
    again_disk = time.perf_counter() - t0
    gb = size / 1e9
    print(f"file: {size / 2**20:.0f} MiB (page cache warm)")
    print(f"  hashlib 1 MiB reads   {base_t:7.3f} s  {gb / base_t:5.2f} GB/s")
    print(f"  reproflow sha256_file {first:7.3f} s  {gb / first:5.2f} GB/s  = {100 * base_t / first:5.1f}% of hashlib (target >= 90%)")
    print(f"  re-hash, same process {1000 * again_mem:7.3f} ms = {100 * again_mem / first:.4f}% of the first hash (target <= 1%)")
    print(f"  re-hash, new process  {1000 * again_disk:7.3f} ms = {100 * again_disk / first:.4f}% of the first hash (on-disk stat cache)")
    os.unlink(path)


if __name__ == "__main__":
    main()
