"""Seeding: apply_seed makes Python's and numpy's draws repeat, seeds installed frameworks (now or
on first import, never importing them just to seed), validates seeds, reads PYTHONHASHSEED."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from reproflow.recorder import _seeds
from reproflow.recorder._seeds import apply_seed, pending_seeds, pythonhashseed, seed_from_env, validate_seed
from reproflow.errors import InvalidSeed


def _draws() -> tuple[float, float, list[float]]:
    return random.random(), random.randint(0, 10**9), np.random.rand(3).tolist()


def test_seeded_draws_repeat_identically() -> None:
    """With the same seed, random.random() and np.random.rand() repeat exactly across two calls."""
    assert apply_seed(1234) == {"random": 1234, "numpy": 1234}
    first = _draws()
    apply_seed(1234)
    second = _draws()
    apply_seed(1235)
    third = _draws()
    assert first == second
    assert third != first


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, True, "42", None])
def test_invalid_seeds_are_refused(bad: object) -> None:
    """Seeds outside 0..2**32-1, bools, floats and strings raise InvalidSeed (exit code 2)."""
    with pytest.raises(InvalidSeed) as info:
        apply_seed(bad)  # type: ignore[arg-type]
    assert info.value.exit_code == 2 and repr(bad) in str(info.value)


def test_validate_seed_accepts_the_full_range() -> None:
    """0 and 2**32-1 are valid seeds."""
    assert validate_seed(0) == 0 and validate_seed(2**32 - 1) == 2**32 - 1


def test_run_level_seed_from_environment() -> None:
    """REPROFLOW_SEED gives the run-level seed; unset or blank means none; junk is an error."""
    assert seed_from_env({"REPROFLOW_SEED": " 7 "}) == 7
    assert seed_from_env({}) is None and seed_from_env({"REPROFLOW_SEED": ""}) is None
    with pytest.raises(InvalidSeed, match="REPROFLOW_SEED"):
        seed_from_env({"REPROFLOW_SEED": "seven"})
    with pytest.raises(InvalidSeed):
        seed_from_env({"REPROFLOW_SEED": "-3"})


def test_pythonhashseed() -> None:
    """PYTHONHASHSEED is reported as set; unset or 'random' means randomised (None)."""
    assert pythonhashseed({"PYTHONHASHSEED": "0"}) == "0"
    assert pythonhashseed({"PYTHONHASHSEED": "123"}) == "123"
    assert pythonhashseed({"PYTHONHASHSEED": "random"}) is None
    assert pythonhashseed({}) is None
    env = {**os.environ, "PYTHONHASHSEED": "99"}
    out = subprocess.run(
        [sys.executable, "-c", "from reproflow.recorder._seeds import pythonhashseed; print(pythonhashseed())"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert out.stdout.strip() == "99"


def test_absent_frameworks_are_not_armed() -> None:
    """A framework that is not installed is neither imported nor waited for."""
    apply_seed(5)
    for name in ("torch", "tensorflow", "cupy"):
        if name not in sys.modules and not _seeds._installed(name):
            assert name not in pending_seeds()
            assert name not in sys.modules


FAKE_TORCH = """
seeds = []
def manual_seed(s):
    seeds.append(("cpu", s))
class cuda:
    @staticmethod
    def manual_seed_all(s):
        seeds.append(("cuda", s))
"""
FAKE_TF = """
class random:
    seeds = []
    @staticmethod
    def set_seed(s):
        random.seeds.append(s)
"""
SCRIPT = """
import json, sys
import tensorflow                       # imported before seeding: seeded at once
from reproflow.recorder._seeds import apply_seed, pending_seeds
now = apply_seed(11)
armed = pending_seeds()
assert "torch" not in sys.modules       # installed but not imported: not imported to seed it
import torch                            # first import: seeded by the hook
import importlib.resources
print(json.dumps({
    "now": now, "armed": armed, "torch": torch.seeds, "tf": tensorflow.random.seeds,
    "pending_after": pending_seeds(),
    "loader_is_real": type(torch.__spec__.loader).__name__ != "_SeedingLoader",
    "resources": importlib.resources.files("torch").joinpath("__init__.py").is_file(),
}))
"""


def test_frameworks_seeded_now_or_on_first_import(tmp_path: Path) -> None:
    """Imported frameworks are seeded at once; installed ones are seeded when first imported,
    with the module keeping its real loader (in a fresh interpreter with stand-in packages)."""
    for name, body in (("torch", FAKE_TORCH), ("tensorflow", FAKE_TF)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(textwrap.dedent(body), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["now"] == {"random": 11, "numpy": 11, "tensorflow": 11}
    assert out["armed"] == {"torch": 11}
    assert out["torch"] == [["cpu", 11], ["cuda", 11]]
    assert out["tf"] == [11]
    assert out["pending_after"] == {}
    assert out["loader_is_real"] and out["resources"]


def test_random_is_seeded_after_the_libraries_imports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Seeding imports numpy (and may import more); code that runs meanwhile and draws from the
    global `random` (another thread, an import) must not shift the seeded sequence: `random` is
    seeded last, so the first draw after apply_seed is the seed's first draw."""
    (tmp_path / "rf_draws_on_import.py").write_text("import random\nrandom.random()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "rf_draws_on_import", raising=False)
    monkeypatch.setattr(_seeds, "_LIBRARIES", (("rf_draws_on_import", lambda module, seed: None, True),
                                               *_seeds._LIBRARIES))
    seeded = apply_seed(1234)
    assert seeded["rf_draws_on_import"] == 1234 and "rf_draws_on_import" in sys.modules
    assert random.random() == random.Random(1234).random()
