"""Seed every random generator a task may use, and say which ones were seeded.

``apply_seed(42)`` seeds Python's :mod:`random`, numpy's global generator, torch (CPU and every
CUDA device), TensorFlow and CuPy, each only if it is installed. Heavy frameworks are never
imported just to be seeded: one already imported is seeded now; one installed but not imported
yet is seeded the moment it is first imported (a one-shot import hook), so a task that imports
torch inside its body still starts from the seed.

What cannot be set from inside a running process is ``PYTHONHASHSEED`` (string hashing, hence
set iteration order): :func:`pythonhashseed` reports it so a record can say whether it was fixed.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import random
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, Callable, Optional

from ..errors import InvalidSeed
from .. import _forksafe

#: The largest seed every library accepts (numpy's legacy seed is 32 bits).
MAX_SEED = 2**32 - 1
#: Environment variable holding a run-level seed.
SEED_ENV = "REPROFLOW_SEED"


def validate_seed(seed: object, source: str = "seed") -> int:
    """Return ``seed`` as an int, or raise :class:`InvalidSeed` (bools and floats are refused)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidSeed.for_value(seed, source)
    return seed


def seed_from_env(environ: Mapping[str, str] = os.environ) -> Optional[int]:
    """The run-level seed from ``REPROFLOW_SEED``, None when unset or empty."""
    raw = environ.get(SEED_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw, 10)
    except ValueError:
        raise InvalidSeed.for_value(raw, SEED_ENV) from None
    return validate_seed(value, SEED_ENV)


def pythonhashseed(environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """``PYTHONHASHSEED`` as this process was started with it, or None when hashing is random.

    ``"0"`` means hash randomisation is off; an integer string fixes string hashes.
    """
    value = environ.get("PYTHONHASHSEED")
    if value is None or value == "random":
        return None
    return value


_INSTALLED: dict[str, bool] = {}


def _installed(name: str) -> bool:
    """Whether a top-level package can be imported (looked up once per process)."""
    if name in sys.modules:
        return True
    if name not in _INSTALLED:
        try:
            _INSTALLED[name] = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            _INSTALLED[name] = False
    return _INSTALLED[name]


# -------------------------------------------------------------------------------------------
# Per-library seeding
# -------------------------------------------------------------------------------------------


def _seed_numpy(module: ModuleType, seed: int) -> None:
    module.random.seed(seed)


def _seed_torch(module: ModuleType, seed: int) -> None:
    module.manual_seed(seed)  # seeds CPU and, lazily, every CUDA device
    cuda = getattr(module, "cuda", None)
    if cuda is not None and hasattr(cuda, "manual_seed_all"):
        cuda.manual_seed_all(seed)


def _seed_tensorflow(module: ModuleType, seed: int) -> None:
    module.random.set_seed(seed)


def _seed_cupy(module: ModuleType, seed: int) -> None:
    module.random.seed(seed)


#: (import name, seeding function, import it to seed it when installed but not imported)
_LIBRARIES: Sequence[tuple[str, Callable[[ModuleType, int], None], bool]] = (
    ("numpy", _seed_numpy, True),  # cheap, and a task using numpy imports it anyway
    ("torch", _seed_torch, False),
    ("tensorflow", _seed_tensorflow, False),
    ("cupy", _seed_cupy, False),
)


class _SeedOnImport(importlib.abc.MetaPathFinder):
    """Seeds a framework right after its first import (a post-import hook).

    It wraps the real loader of the named top-level packages only; once a package is imported
    and seeded, it is dropped from the hook.
    """

    def __init__(self) -> None:
        self.pending: dict[str, tuple[int, Callable[[ModuleType, int], None]]] = {}
        self.lock = _forksafe.lock()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname not in self.pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _SeedingLoader(spec.loader, self)
        return spec

    def seeded(self, name: str, module: ModuleType) -> None:
        with self.lock:
            entry = self.pending.pop(name, None)
        if entry is not None:
            seed, seed_fn = entry
            seed_fn(module, seed)


class _SeedingLoader(importlib.abc.Loader):
    def __init__(self, inner: Any, hook: _SeedOnImport) -> None:
        self.inner = inner
        self.hook = hook

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[ModuleType]:
        return self.inner.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        # The module sees its real loader (importlib.resources and friends look at it).
        module.__loader__ = self.inner
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        self.inner.exec_module(module)
        self.hook.seeded(module.__name__, module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


_HOOK = _SeedOnImport()


def _arm(name: str, seed: int, seed_fn: Callable[[ModuleType, int], None]) -> None:
    with _HOOK.lock:
        _HOOK.pending[name] = (seed, seed_fn)
        if _HOOK not in sys.meta_path:
            sys.meta_path.insert(0, _HOOK)


def pending_seeds() -> dict[str, int]:
    """Frameworks installed but not imported yet, which will be seeded on first import."""
    with _HOOK.lock:
        return {name: seed for name, (seed, _) in _HOOK.pending.items()}


def apply_seed(seed: int) -> dict[str, int]:
    """Seed Python's ``random`` and every installed numerical library's global generator.

    Args:
        seed: an integer from 0 to 2**32 - 1.

    Returns:
        ``{library: seed}`` for the generators seeded now: ``"random"`` always, then
        ``"numpy"``, ``"torch"``, ``"tensorflow"``, ``"cupy"`` where installed and imported (numpy
        is imported to be seeded). Installed frameworks not imported yet are seeded when first
        imported; :func:`pending_seeds` lists them.

    Raises:
        InvalidSeed: ``seed`` is not an integer in range.
    """
    seed = validate_seed(seed)
    seeded = {"random": seed}
    for name, seed_fn, import_it in _LIBRARIES:
        module = sys.modules.get(name)
        if module is None and import_it and _installed(name):
            module = importlib.import_module(name)
        if module is not None:
            seed_fn(module, seed)
            seeded[name] = seed
            with _HOOK.lock:
                _HOOK.pending.pop(name, None)
        elif _installed(name):
            _arm(name, seed, seed_fn)
    # `random` last, right before the task's body: importing numpy above takes ~100 ms and lets
    # other threads run, and some draw from the global generator (the websockets library under
    # Prefect's event client takes a random ping payload from it when it connects).
    random.seed(seed)
    return seeded


__all__ = ["MAX_SEED", "SEED_ENV", "apply_seed", "pending_seeds", "pythonhashseed", "seed_from_env", "validate_seed"]
