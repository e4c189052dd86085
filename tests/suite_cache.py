"""The suite's shared bytecode cache kept tidy (used by tests/conftest.py; a module of its own
so a test can import it: ``conftest`` names a different module in each folder)."""

from __future__ import annotations

import os
import shutil


def prune_bytecode_cache(prefix: str, real: str, depth: int = 2) -> None:
    """Remove from the bytecode cache the folders mirroring temporary folders that are gone.

    Every flow, repository and replay environment the suite makes lives in the system temp
    dir, and each leaves its .pyc files under the cache's mirror of that folder, kept between
    sessions: 11 GB of them had gathered on a developer's machine after a day. A folder of the
    mirror whose source folder no longer exists is garbage (pytest's own ``pytest-of-<user>``
    keeps its last three ``pytest-N`` folders: one level deeper there)."""
    mirror = os.path.join(prefix, real.lstrip(os.sep))
    try:
        names = os.listdir(mirror)
    except OSError:
        return
    for name in names:
        source = os.path.join(real, name)
        if os.path.lexists(source):
            if depth > 1 and name.startswith("pytest-of-"):
                prune_bytecode_cache(prefix, source, depth - 1)
            continue
        shutil.rmtree(os.path.join(mirror, name), ignore_errors=True)
