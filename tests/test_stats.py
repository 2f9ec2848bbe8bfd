"""The exact Mann-Whitney U test against values known in closed form."""

import math

import numpy as np
import pytest

from analysis import stats
from analysis.stats import mann_whitney_u


def test_separated_samples_have_the_smallest_exact_p():
    assert mann_whitney_u([1, 2, 3], [4, 5, 6]) == (0.0, 2 / 20)  # 2 of the C(6, 3) splits as extreme
    u, p = mann_whitney_u([6, 7, 8, 9, 10], [1, 2, 3, 4, 5])
    assert u == 25.0 and p == pytest.approx(2 / 252)


def test_ties_and_identical_samples():
    assert mann_whitney_u([8, 8, 8], [8, 8, 8]) == (4.5, 1.0)
    # 8 modes in every unrolled seed vs 0-1 in the plain ones: ties within groups are mid-ranked.
    u, p = mann_whitney_u([8, 8, 8, 8, 8], [0, 0, 1, 0, 1])
    assert u == 25.0 and p == pytest.approx(2 / 252)


def test_missing_values_are_left_out_and_empty_samples_give_nan():
    assert mann_whitney_u([1, 2, math.nan], [3, 4]) == mann_whitney_u([1, 2], [3, 4])
    assert math.isnan(mann_whitney_u([], [1.0])[1])


def test_the_normal_approximation_agrees_with_the_exact_test(monkeypatch):
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 9), rng.normal(0.8, 1, 8)
    exact = mann_whitney_u(a, b)[1]
    monkeypatch.setattr(stats, "MAX_SPLITS", 10)
    assert mann_whitney_u(a, b)[1] == pytest.approx(exact, abs=0.02)
