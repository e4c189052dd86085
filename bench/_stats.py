"""How sure a benchmark's ratio is: a bootstrap interval for the ratio of two medians.

On the 2-core machine a single flow run of the same code moves by ±15% (``@task`` alone took
0.60-0.97 s within one run of ``bench_file_tasks.py``), so the median of 9 runs still moves by
about ±0.05 of the ratio between runs of the same code. A ratio printed with its interval says
whether a target such as "at most 1.10x" is met, missed, or inside the noise.

No third-party import and no side effect: the benchmarks import it, and so do the tests.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence


def ratio_of_medians(base: Sequence[float], other: Sequence[float]) -> float:
    """``median(other) / median(base)``."""
    return statistics.median(other) / statistics.median(base)


def ratio_interval(base: Sequence[float], other: Sequence[float], *, level: float = 0.95,
                   resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A percentile-bootstrap interval of :func:`ratio_of_medians`: each resample draws
    ``len(base)`` runs from ``base`` and ``len(other)`` from ``other``, with replacement
    (independently: the runs alternate, but run k of one variant is no closer to run k of
    another than to any other run). Deterministic for a given ``seed``."""
    if not base or not other:
        raise ValueError("ratio_interval needs at least one run of each variant")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    rng = random.Random(seed)
    ratios = sorted(
        statistics.median(rng.choices(other, k=len(other))) / statistics.median(rng.choices(base, k=len(base)))
        for _ in range(resamples)
    )
    tail = (1 - level) / 2
    lo = ratios[int(tail * (resamples - 1))]
    hi = ratios[int(round((1 - tail) * (resamples - 1)))]
    return lo, hi


def with_interval(base: Sequence[float], other: Sequence[float], *, level: float = 0.95) -> str:
    """``"1.103x [1.02-1.19]"``: the ratio of medians and its bootstrap interval."""
    lo, hi = ratio_interval(base, other, level=level)
    return f"{ratio_of_medians(base, other):.3f}x [{lo:.2f}-{hi:.2f}]"


__all__ = ["ratio_interval", "ratio_of_medians", "with_interval"]
