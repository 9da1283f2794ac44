"""dlx.stats on numbers whose answers are known by hand or from tables."""

import math

import pytest

from dlx import stats


def test_spread_of_one_two_three():
    s = stats.spread([1.0, 2.0, 3.0])
    assert s["n"] == 3 and s["mean"] == 2.0 and s["std"] == pytest.approx(1.0)
    # t(0.975, df=2) = 4.303 (any t table): half width 4.303 * 1 / sqrt(3) = 2.484
    lo, hi = s["ci95"]
    assert lo == pytest.approx(2 - 4.302653 / math.sqrt(3), rel=1e-6)
    assert hi == pytest.approx(2 + 4.302653 / math.sqrt(3), rel=1e-6)
    assert s["values"] == [1.0, 2.0, 3.0] and s["min"] == 1.0 and s["max"] == 3.0


def test_interval_narrows_with_more_seeds_at_the_same_std():
    # Same sample std (ddof=1) with n = 2 and n = 8: t(0.975, 1) = 12.706, t(0.975, 7) = 2.365.
    two = stats.spread([0.0, math.sqrt(2)])
    eight = stats.spread([0.0, math.sqrt(2)] * 4)
    w2 = two["ci95"][1] - two["ci95"][0]
    assert two["std"] == pytest.approx(1.0)
    assert w2 == pytest.approx(2 * 12.7062 / math.sqrt(2), rel=1e-4)
    w8 = eight["ci95"][1] - eight["ci95"][0]
    assert w8 == pytest.approx(2 * 2.36462 * eight["std"] / math.sqrt(8), rel=1e-4)
    assert w8 < w2


def test_one_value_has_no_spread():
    s = stats.spread([0.25])
    assert s["mean"] == 0.25 and s["std"] is None and s["ci95"] is None
    assert stats.paired([1.0], [0.0])["p"] is None
    assert stats.direction(stats.paired([1.0], [0.0])) is None


def test_paired_differences_match_the_paired_t_test():
    from scipy.stats import ttest_rel

    a, b = [1.0, 2.0, 3.0, 4.0], [0.5, 1.5, 2.0, 3.0]
    d = stats.paired(a, b)
    assert d["values"] == [0.5, 0.5, 1.0, 1.0]
    assert d["mean"] == pytest.approx(0.75)
    assert d["p"] == pytest.approx(ttest_rel(a, b).pvalue, rel=1e-9)
    assert stats.direction(d) == 1
    assert stats.direction(stats.paired(b, a)) == -1


def test_pairing_removes_a_shared_seed_effect():
    # Each seed shifts both cells alike: unpaired, the intervals overlap; paired, b wins.
    a = [0.10, 0.50, 0.90]
    b = [0.12, 0.52, 0.925]
    lo_b, hi_b = stats.spread(b)["ci95"]
    lo_a, hi_a = stats.spread(a)["ci95"]
    assert lo_b < hi_a  # overlapping
    assert stats.direction(stats.paired(b, a)) == 1


def test_interval_holding_zero_is_no_direction_and_constant_differences_are_certain():
    assert stats.direction(stats.paired([1.0, 2.0, 3.0], [2.0, 1.0, 3.5])) == 0
    same = stats.paired([1.0, 2.0], [0.0, 1.0])  # differences 1, 1: std 0
    assert same["std"] == 0.0 and same["ci95"] == [1.0, 1.0] and same["p"] == 0.0
    assert stats.paired([1.0, 2.0], [1.0, 2.0])["p"] == 1.0


def test_non_finite_values_are_not_hidden():
    s = stats.spread([0.1, float("nan"), 0.2])
    assert math.isnan(s["mean"])
    d = stats.paired([0.1, float("inf")], [0.2, 0.3])
    assert d["p"] is None and stats.direction(d) is None


def test_bad_input():
    with pytest.raises(ValueError):
        stats.spread([])
    with pytest.raises(ValueError):
        stats.paired([1.0, 2.0], [1.0])
