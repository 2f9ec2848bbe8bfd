"""Significance across seeds: the Mann-Whitney U test, exact for the small seed counts sweeps have.

Rank-based, so it assumes nothing about how a metric is distributed over seeds (mode counts are
bounded and often tied; high-quality shares pile up near 0 or 100 %). With n1 + n2 seeds the null
distribution of U is enumerated over every way to split the pooled, mid-ranked values into groups of
n1 and n2 (252 splits for 5 vs 5, 184,756 for 10 vs 10), so ties are handled exactly as they are.
No scipy needed.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

MAX_SPLITS = 2_000_000
"""Beyond this many splits the normal approximation (with tie correction) is used instead."""


def midranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def mann_whitney_u(a, b) -> tuple[float, float]:
    """U of sample `a` against `b` and the two-sided p-value (NaN when either sample is empty)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan
    ranks = midranks(np.concatenate([a, b]))
    u = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    centre = n1 * n2 / 2
    if math.comb(n1 + n2, n1) <= MAX_SPLITS:
        # Every split of the pooled ranks is equally likely under the null hypothesis.
        extreme = total = 0
        for chosen in itertools.combinations(range(n1 + n2), n1):
            u_split = ranks[list(chosen)].sum() - n1 * (n1 + 1) / 2
            extreme += abs(u_split - centre) >= abs(u - centre) - 1e-9
            total += 1
        return float(u), extreme / total
    _, counts = np.unique(ranks, return_counts=True)
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - (counts**3 - counts).sum() / (n * (n - 1)))
    if variance <= 0:
        return float(u), 1.0
    z = max(abs(u - centre) - 0.5, 0.0) / math.sqrt(variance)  # with continuity correction
    return float(u), math.erfc(z / math.sqrt(2))


CLAIMED = {1: "higher", -1: "lower", 0: "alike", None: "no direction"}


def _supported(p: float, shift: float, direction: int | None, alpha: float) -> bool:
    if direction is None or p != p:
        return False
    if direction == 0:  # consistent with "no difference": the test found none (it cannot prove equality)
        return bool(p >= alpha)
    return bool(p < alpha and shift * direction > 0)


def against_baseline(final, metrics: dict[str, int], by: str = "unroll_steps", baseline=0, alpha: float = 0.05):
    """Each setting of `by` against the baseline setting, per metric, across seeds.

    `metrics` maps a metric to the direction the paper claims for it (+1: higher than the baseline,
    -1: lower, 0: no difference, None: no claim). Returns one row per (setting, metric): seeds on
    each side, medians, the two-sided Mann-Whitney p-value, and whether the data support the claim
    at `alpha` (for "no difference": p >= alpha, which is consistent with it but never proves it).
    """
    import pandas as pd

    rows = []
    reference = final[final[by] == baseline]
    for setting, group in final[final[by] != baseline].groupby(by):
        for metric, direction in metrics.items():
            a, b = group[metric].dropna().to_numpy(), reference[metric].dropna().to_numpy()
            _, p = mann_whitney_u(a, b)
            shift = (np.median(a) - np.median(b)) if len(a) and len(b) else math.nan
            rows.append({by: setting, "metric": metric, "seeds": len(a), "baseline_seeds": len(b),
                         "median": np.median(a) if len(a) else math.nan,
                         "baseline_median": np.median(b) if len(b) else math.nan, "p": p,
                         "claimed": CLAIMED[direction if direction is None else (direction > 0) - (direction < 0)],
                         "supported": _supported(p, shift, direction, alpha)})  # fmt: skip
    return pd.DataFrame(rows)


def unroll_against_none(final, metrics, axes: tuple[str, ...] = (), alpha: float = 0.05):
    """Each unroll setting against K = 0 across seeds, within each value of the grid's other `axes`
    (e.g. D size): the paper compares unrolling at a fixed model. `against_baseline`'s rows, plus the axes.

    `metrics` is `against_baseline`'s claims, or a function of K giving them where the paper claims
    different directions at different K (Color MNIST: K = 1 hurts, more steps help)."""
    import pandas as pd

    claims_at = metrics if callable(metrics) else (lambda k: metrics)
    groups = final.groupby(list(axes)) if axes else [((), final)]
    pieces = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        for k in sorted(set(group["unroll_steps"]) - {0}):
            pair = group[group["unroll_steps"].isin([0, k])]
            pieces.append(against_baseline(pair, claims_at(k), alpha=alpha).assign(**dict(zip(axes, key))))
    return pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame()
