"""Intervals of accuracies and recalls: Wilson score for 0/1 vectors (right at 0%, 100% and small n),
the percentile bootstrap for real-valued ones; the method is recorded beside the numbers."""
from __future__ import annotations

import numpy as np
import pytest

from negbench.evaluation import metrics


def naive_wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson (1927), written out from the textbook formula."""
    p = k / n
    den = 1 + z ** 2 / n
    centre = (p + z ** 2 / (2 * n)) / den
    half = z / den * (p * (1 - p) / n + z ** 2 / (4 * n ** 2)) ** 0.5
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(0, 1), (0, 8), (8, 8), (1, 4), (3, 10), (30, 100), (999, 1000), (0, 5000)])
def test_wilson_matches_textbook_and_fallback(k, n):
    lo, hi = metrics.wilson_interval(k, n)
    rlo, rhi = naive_wilson(k, n)
    assert (lo, hi) == pytest.approx((max(0.0, rlo), min(1.0, rhi)), abs=1e-9)
    assert metrics._wilson_formula(k, n, 0.95) == pytest.approx((lo, hi), abs=1e-12)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_zero_and_full_scores_get_a_real_interval():
    zero = metrics.mean_with_ci(np.zeros(8))
    full = metrics.mean_with_ci(np.ones(4))
    assert zero["ci_method"] == full["ci_method"] == "wilson"
    assert zero["value"] == zero["ci_low"] == 0.0 and zero["ci_high"] > 0.3  # bootstrap gave [0, 0]
    assert full["ci_high"] == 1.0 and full["ci_low"] < 0.52                 # 4 of 4 is weak evidence


def test_real_valued_vectors_keep_the_bootstrap():
    v = np.array([1.0, 0.5, 0.25, 0.0, 1.0, 1 / 3])  # tie-aware credit
    r = metrics.mean_with_ci(v, n_samples=200, seed=1)
    assert r["ci_method"] == "bootstrap"
    assert (r["ci_low"], r["ci_high"]) == metrics.bootstrap_ci(v, n_samples=200, seed=1)


def test_booleans_and_empty():
    assert metrics.mean_with_ci(np.array([True, False, True]))["ci_method"] == "wilson"
    empty = metrics.mean_with_ci(np.array([]))
    assert np.isnan(empty["value"]) and np.isnan(empty["ci_low"])
    with pytest.raises(ValueError, match="successes"):
        metrics.wilson_interval(5, 4)


def test_groups_carry_the_method():
    by = metrics.accuracy_by_group([1, 0, 0, 1, 1], ["a", "a", "b", "b", "b"])
    assert by["a"]["ci_method"] == "wilson" and by["b"]["n"] == 3
