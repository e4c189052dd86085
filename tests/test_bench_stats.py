"""The benchmarks' interval for a ratio of medians (bench/_stats.py): what the README's
"wall x [95% interval]" figures rest on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("_bench_stats", Path(__file__).parents[1] / "bench" / "_stats.py")
assert _spec is not None and _spec.loader is not None
stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stats)

# bench_file_tasks.py's walls of one run (2026-12-03 11:42): @task and "declared, fresh"
TASK = [0.73, 0.76, 0.70, 0.71, 0.72, 0.67, 0.75, 0.91, 0.77]
DECLARED = [0.75, 0.67, 0.80, 0.93, 0.71, 0.85, 0.81, 0.82, 0.79]


def test_the_interval_holds_the_ratio_and_is_as_wide_as_the_runs_spread() -> None:
    ratio = stats.ratio_of_medians(TASK, DECLARED)
    assert ratio == pytest.approx(0.80 / 0.73)
    lo, hi = stats.ratio_interval(TASK, DECLARED)
    assert lo < ratio < hi
    assert hi - lo > 0.1  # single runs spread by ±15%: a median of 9 is not sure to ±0.01
    assert lo < 1.10 < hi  # this run cannot tell whether the 1.10x target was met


def test_runs_without_spread_give_the_ratio_itself() -> None:
    assert stats.ratio_interval([2.0] * 7, [3.0] * 7) == (1.5, 1.5)


def test_a_clear_difference_has_an_interval_away_from_one() -> None:
    base = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01]
    slower = [x * 1.5 for x in base]
    lo, hi = stats.ratio_interval(base, slower)
    assert 1.4 < lo <= 1.5 <= hi < 1.6


def test_a_wider_level_gives_a_wider_interval_and_the_seed_fixes_it() -> None:
    narrow = stats.ratio_interval(TASK, DECLARED, level=0.5)
    wide = stats.ratio_interval(TASK, DECLARED, level=0.99)
    assert wide[0] <= narrow[0] and narrow[1] <= wide[1]
    assert wide != narrow
    assert stats.ratio_interval(TASK, DECLARED, seed=3) == stats.ratio_interval(TASK, DECLARED, seed=3)


def test_the_printed_form() -> None:
    assert stats.with_interval([2.0] * 3, [3.0] * 3) == "1.500x [1.50-1.50]"


@pytest.mark.parametrize(("base", "other", "level"), [([], [1.0], 0.95), ([1.0], [], 0.95), ([1.0], [1.0], 1.0)])
def test_bad_input_is_refused(base: list[float], other: list[float], level: float) -> None:
    with pytest.raises(ValueError):
        stats.ratio_interval(base, other, level=level)
