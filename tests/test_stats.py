"""The exact Mann-Whitney U test against values known in closed form."""

import math

import numpy as np
import pandas as pd
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


def _final(groups: dict) -> pd.DataFrame:
    """Final rows from {(d_size, unroll_steps): per-seed values of `modes`}."""
    return pd.DataFrame(
        [
            {"d_size": d, "unroll_steps": k, "seed": s, "modes": v}
            for (d, k), vs in groups.items()
            for s, v in enumerate(vs)
        ]
    )


def test_unroll_settings_are_tested_against_k0_of_their_own_axis_value_only():
    final = _final(
        {
            (0.25, 0): [1, 2, 3, 4, 5],
            (0.25, 5): [6, 7, 8, 9, 10],  # above every K = 0 seed of its own D size
            (0.5, 0): [20, 21, 22, 23, 24],
            (0.5, 5): [6, 7, 8, 9, 10],  # below its own K = 0, though above D = 1/4's
        }
    )
    tests = stats.unroll_against_none(final, {"modes": +1}, axes=("d_size",)).set_index("d_size")
    assert tests.loc[0.25, "p"] == pytest.approx(2 / 252) and tests.loc[0.25, "supported"]
    assert tests.loc[0.5, "p"] == pytest.approx(2 / 252) and not tests.loc[0.5, "supported"]
    assert (tests["baseline_seeds"] == 5).all() and (tests["unroll_steps"] == 5).all()
    # Without the axis the two D sizes would be pooled into one (weaker) comparison.
    pooled = stats.unroll_against_none(final, {"modes": +1})
    assert len(pooled) == 1 and pooled["p"].iloc[0] > 0.05
