"""The accuracy bench's intervals: Wilson for proportions, a bootstrap for F1."""

from __future__ import annotations

from bench.accuracy import f1_interval, wilson


def test_the_f1_interval_holds_the_point_estimate_and_narrows_with_more_labels() -> None:
    small = f1_interval(70, 5, 3, 1000)
    large = f1_interval(700, 50, 30, 10_000)
    assert small is not None and large is not None
    point = 2 * 70 / (2 * 70 + 5 + 3)
    assert small[0] < point < small[1]
    assert large[0] < point < large[1]
    assert large[1] - large[0] < small[1] - small[0]


def test_no_interval_without_a_true_positive() -> None:
    assert f1_interval(0, 4, 6, 100) is None
    assert wilson(0, 0) is None


def test_the_wilson_interval_of_a_proportion() -> None:
    lo, hi = wilson(90, 100) or (0.0, 0.0)
    assert 0.82 < lo < 0.9 < hi < 0.95
